"""Item validation and normalization: what the catalog accepts, and the form it stores.

The deployed function has no schema mirror, so the essentials are checked here: a small bundled
JSON Schema (structure; compiled by fastjsonschema, ~15x faster than jsonschema, which matters
when bulk publishing 100,000 items) plus the rules a schema cannot express (bbox covers the geometry,
datetime or a start/end range, the id and collection agree with the key).
"""
from __future__ import annotations

import json
from math import isfinite
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from ..bounds import MAX_JSON_DEPTH, InputBoundError, check_depth, load_json
from . import catalog

# Ids become object keys and relative hrefs as they are: no characters that need escaping
# (matched whole: ``$`` would let a trailing newline through).
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@~+=,-]*")
_STRUCTURAL_RELS = {"root", "parent", "collection", "self"}
_BBOX_TOLERANCE = 1e-9
_FRACTION = re.compile(r"(\.\d{6})\d+")  # Python keeps microseconds; RFC 3339 allows more digits
# orjson reads integers beyond 64 bits as floats, where json keeps them exact: texts with a run of 20
# digits go through json (found with translate + find, ~15x faster than a regular expression).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 20


class InvalidItem(ValueError):
    """The item is rejected; ``str(err)`` is the reason."""


@lru_cache(maxsize=1)
def _check_schema() -> Any:
    import fastjsonschema
    return fastjsonschema.compile(json.loads(Path(__file__).with_name("item.schema.json").read_text()))


@lru_cache(maxsize=1)
def _schema_error() -> type[Exception]:
    from fastjsonschema import JsonSchemaValueException
    return JsonSchemaValueException


def _check_structure(item: dict[str, Any]) -> None:
    """The schema check (``item.schema.json``), raising InvalidItem with the schema's reason. The common
    item is seen through by ``_plainly_valid`` (a third of the compiled schema's time, which a bulk load
    feels per item); any other goes through the compiled schema, which words the reason."""
    if _plainly_valid(item):
        return
    try:
        _check_schema()(item)
    except _schema_error() as err:  # evaluated only when the check raises
        raise InvalidItem(re.sub(r"^data", "item", getattr(err, "message", str(err)))) from None
    # Accepted: its stac_version and extensions passed the schema's pattern and uri format.
    if len(_ACCEPTED) < _ACCEPTED_MAX:
        extensions = item.get("stac_extensions")
        fresh: list[tuple[str, Any]] = [("stac_version", item.get("stac_version"))]
        if type(extensions) is list:
            fresh += [("stac_extensions", uri) for uri in extensions]
        for name, value in fresh:
            if len(_ACCEPTED) >= _ACCEPTED_MAX:
                break
            if type(value) is str and len(value) <= _ACCEPTED_LEN:
                _ACCEPTED.add((name, value))


# (field, string) pairs the compiled schema accepted, so ``_plainly_valid`` needs no copy of its
# pattern and uri format; bounded in count and length (a load's items share a few short versions and
# extension URIs; a server must not keep what hostile items send: ~1 MB at most).
_ACCEPTED: set[tuple[str, str]] = set()
_ACCEPTED_MAX = 4096
_ACCEPTED_LEN = 256
_GEOMETRY_TYPES = frozenset({"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
                             "GeometryCollection"})
_STRING_OR_NONE = (str, type(None))
_LIST_OR_ABSENT = (list, tuple)  # the tuple: the default of an absent array, never in parsed JSON
_NOTHING = object()
_NO_ASSETS: dict[str, Any] = {}


def _plainly_valid(item: dict[str, Any]) -> bool:
    """True only if the schema accepts ``item``: each rule tested by exact type (stricter than the schema's
    isinstance), strings with a pattern or format only if accepted before (``_ACCEPTED``). False: not
    sure, the compiled schema decides. (Loops, not ``all`` over generators: half the time.)"""
    get = item.get
    if get("type") != "Feature" or type(item["type"]) is not str:
        return False
    iid, props, geometry = get("id"), get("properties"), get("geometry", _NOTHING)
    if type(iid) is not str or not 1 <= len(iid) <= 200 or type(props) is not dict:
        return False
    if geometry is not None and (type(geometry) is not dict or type(kind := geometry.get("type")) is not str
                                 or kind not in _GEOMETRY_TYPES):
        return False
    if type(props.get("datetime", _NOTHING)) not in _STRING_OR_NONE:
        return False
    for name in ("start_datetime", "end_datetime"):
        if name in props and type(props[name]) is not str:
            return False
    if "collection" in item and type(item["collection"]) is not str:
        return False
    if "stac_version" in item and (type(version := item["stac_version"]) is not str
                                   or ("stac_version", version) not in _ACCEPTED):
        return False
    extensions = get("stac_extensions", ())
    if type(extensions) not in _LIST_OR_ABSENT:
        return False
    for uri in extensions:
        if type(uri) is not str or ("stac_extensions", uri) not in _ACCEPTED:
            return False
    if len(extensions) > 1 and len(set(extensions)) != len(extensions):
        return False
    if "bbox" in item:
        bbox = item["bbox"]
        if type(bbox) is not list or not 4 <= len(bbox) <= 6:
            return False
        for v in bbox:
            if type(v) not in _NUMBER:
                return False
    links = get("links", ())
    if type(links) not in _LIST_OR_ABSENT:
        return False
    for link in links:
        if type(link) is not dict or type(link.get("rel")) is not str or type(link.get("href")) is not str:
            return False
    assets = get("assets", _NO_ASSETS)
    if type(assets) is not dict:
        return False
    for asset in assets.values():
        if type(asset) is not dict or type(href := asset.get("href")) is not str or not href:
            return False
    return True


def parse(body: bytes | str) -> Any:
    """JSON of an item (or a file of items): any size, nested at most ``MAX_JSON_DEPTH`` levels.

    orjson first (half json's time, which bulk loads feel per item); a text it refuses or could read
    differently (NaN, lone surrogates, integers beyond 64 bits) takes json's path, so both give the
    same values and the same reasons."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    if raw.translate(_DIGITS_TO_ZERO).find(_LONG_DIGITS) < 0:
        try:
            value = orjson.loads(body)
        except ValueError:  # JSONDecodeError, or a str holding lone surrogates
            pass
        else:
            if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
                try:
                    check_depth(value, what="the item")
                except InputBoundError as err:
                    raise InvalidItem(str(err)) from None
            return value
    try:
        return load_json(body, what="the item", max_bytes=None)
    except InputBoundError as err:
        raise InvalidItem(str(err)) from None


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidItem(f"properties.{name} must be an RFC 3339 string")
    text = value.upper()
    try:
        if "T" not in text:
            raise ValueError
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", text) if "." in text else text)
    except ValueError:
        raise InvalidItem(f"properties.{name} is not an RFC 3339 date-time: {value!r}") from None
    if dt.tzinfo is None:
        raise InvalidItem(f"properties.{name} needs a time zone (e.g. 'Z'): {value!r}")
    return dt.astimezone(timezone.utc)


def utc_text(dt: datetime) -> str:
    """Fixed-width UTC text: orders as the instants do (``dt`` in UTC)."""
    if dt.year >= 1000:  # isoformat: a fifth of strftime's time, the same text for 4-digit years (less its offset)
        return dt.isoformat(timespec="microseconds")[:26] + "Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# An RFC 3339 UTC instant already as ``utc_text`` writes it (but for a missing fraction): its text needs no
# formatting (isoformat: ~1.5 us, twice an item in a bulk load).
_PLAIN_UTC = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")


def _utc_text_of(dt: datetime, text: Any) -> str:
    """``utc_text(dt)`` of ``dt`` as ``_instant`` read it from ``text``."""
    if type(text) is str and _PLAIN_UTC.fullmatch(text):
        return text[:19] + (text[19:26] if len(text) == 27 else ".000000") + "Z"
    return utc_text(dt)


def _interval(props: dict[str, Any]) -> tuple[datetime, datetime, datetime]:
    """(start, end, the instant the item sorts by: its datetime, else its start)."""
    dt = props.get("datetime")
    start, end = props.get("start_datetime"), props.get("end_datetime")
    if dt is None and (start is None or end is None):
        raise InvalidItem("properties.datetime is null, so start_datetime and end_datetime are required")
    lo = _instant(start, "start_datetime") if start is not None else None
    hi = _instant(end, "end_datetime") if end is not None else None
    if lo and hi and lo > hi:
        raise InvalidItem("properties.start_datetime is after end_datetime")
    if dt is not None:
        at = _instant(dt, "datetime")
        return lo or at, hi or at, at
    assert lo is not None and hi is not None
    return lo, hi, lo


def _bbox(item: dict[str, Any]) -> list[float] | None:
    geometry, bbox = item.get("geometry"), item.get("bbox")
    if geometry is None:
        if bbox is not None:
            raise InvalidItem("bbox is given but geometry is null")
        return None
    bounds = _plain_bounds(geometry)
    if bounds is None:
        import shapely.geometry
        try:
            shape = shapely.geometry.shape(geometry)
        except Exception as err:  # shapely raises several types for malformed coordinates
            raise InvalidItem(f"geometry is not valid GeoJSON: {err}") from None
        if shape.is_empty:
            raise InvalidItem("geometry is empty")
        bounds = [float(v) for v in shape.bounds]
    if bbox is None:
        return bounds
    if len(bbox) not in (4, 6):
        raise InvalidItem(f"bbox must have 4 or 6 numbers: {bbox}")
    flat = [bbox[0], bbox[1], bbox[3], bbox[4]] if len(bbox) == 6 else list(bbox)
    if not (-180 <= flat[0] <= 180 and -180 <= flat[2] <= 180 and -90 <= flat[1] <= flat[3] <= 90):
        raise InvalidItem(f"bbox is outside longitude/latitude bounds: {bbox}")
    antimeridian = flat[0] > flat[2]
    tol = _BBOX_TOLERANCE
    inside_lat = flat[1] - tol <= bounds[1] and bounds[3] <= flat[3] + tol
    inside_lon = antimeridian or (flat[0] - tol <= bounds[0] and bounds[2] <= flat[2] + tol)
    if not (inside_lat and inside_lon):
        raise InvalidItem(f"bbox {bbox} does not contain the geometry (bounds {bounds})")
    return flat


_NUMBER = (int, float)


def _positions(ring: list[Any]) -> bool:
    """Whether every element of ``ring`` (not empty) is a position of one dimension: a list of 2 or 3
    finite numbers, as many in each (shapely refuses a ring mixing them). One loop, no call per
    position: a bulk load checks ~5 positions an item."""
    dims = len(ring[0]) if type(ring[0]) is list else 0
    if not 2 <= dims <= 3:
        return False
    for p in ring:
        if type(p) is not list or len(p) != dims:
            return False
        for v in p:
            if type(v) not in _NUMBER or not isfinite(v):
                return False
    return True


def _plain_bounds(geometry: Any) -> list[float] | None:
    """Bounds of a Point, or of a Polygon whose rings are closed with 4+ finite positions, read
    straight from the coordinates (the common case of bulk loads: shapely costs ~70 us an item);
    None: anything else, which shapely checks and measures."""
    if not isinstance(geometry, dict):
        return None
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point" and isinstance(coords, list) and _positions([coords]):
        return [float(coords[0]), float(coords[1]), float(coords[0]), float(coords[1])]
    if kind != "Polygon" or not isinstance(coords, list) or not coords:
        return None
    for ring in coords:
        if not (isinstance(ring, list) and len(ring) >= 4 and _positions(ring) and ring[0] == ring[-1]):
            return None
    xs = [p[0] for p in coords[0]]
    ys = [p[1] for p in coords[0]]
    return [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]


# An item's (start, end, sort instant) in epoch seconds: the search index's time columns.
Times = tuple[float, float, float]


def normalize(item: Any, collection: str, item_id: str | None = None) -> tuple[dict[str, Any], catalog.Summary]:
    """The item as the catalog stores it, and its extent summary; raises InvalidItem.

    ``item_id`` is the id the key gives (events); the item's ``id`` must match it.
    """
    out, summary, _ = normalize_timed(item, collection, item_id)
    return out, summary


def normalize_timed(item: Any, collection: str, item_id: str | None = None) \
        -> tuple[dict[str, Any], catalog.Summary, Times]:
    """``normalize``, and the item's ``Times`` (read once here: a bulk load's index rows take them)."""
    if not isinstance(item, dict):
        raise InvalidItem("an item must be a JSON object")
    _check_structure(item)
    iid = item["id"]
    if not _ID.fullmatch(iid):
        raise InvalidItem(f"id {iid!r} must match {_ID.pattern}")
    if item_id is not None and iid != item_id:
        raise InvalidItem(f"id {iid!r} differs from the id in the object key ({item_id!r})")
    if catalog.config().category(collection) is None:
        raise InvalidItem(f"unknown collection {collection!r} (known: "
                          f"{', '.join(sorted(catalog.config().collection_ids))})")
    if item.get("collection", collection) != collection:
        raise InvalidItem(f"collection {item['collection']!r} differs from the collection of the key ({collection!r})")
    props = item["properties"]
    start, end, at = _interval(props)
    bbox = _bbox(item)

    out = dict(item)
    out.setdefault("stac_version", catalog.STAC_VERSION)
    out.setdefault("stac_extensions", [])
    out.setdefault("assets", {})
    if bbox is not None and "bbox" not in item:
        out["bbox"] = bbox
    out["collection"] = collection
    own = [link for link in item.get("links", []) if link.get("rel") not in _STRUCTURAL_RELS]
    out["links"] = catalog.item_links(iid) + own
    if bbox and bbox[0] > bbox[2]:  # crosses the antimeridian: the extent spans all longitudes
        bbox = [-180.0, bbox[1], 180.0, bbox[3]]
    start_text = props["start_datetime"] if props.get("start_datetime") is not None else props["datetime"]
    end_text = props["end_datetime"] if props.get("end_datetime") is not None else props["datetime"]
    summary: catalog.Summary = (list(bbox) if bbox else [None] * 4) + [_utc_text_of(start, start_text),
                                                                        _utc_text_of(end, end_text)]
    return out, summary, (start.timestamp(), end.timestamp(), at.timestamp())

