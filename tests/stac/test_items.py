"""Item validation and normalization: every rule has a rejecting case with its reason."""
from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stac_offline import validate_object

from chalicelib.stac.items import InvalidItem, normalize, parse

from tests.helpers.stac_items import make_item


def test_normalized_item_is_valid_stac_and_keeps_own_content() -> None:
    raw = make_item("x1", collection=None, size=1)
    raw["links"].append({"rel": "self", "href": "https://elsewhere/x1.json"})
    del raw["bbox"], raw["stac_extensions"], raw["stac_version"]
    item, summary = normalize(raw, "dataset")
    assert validate_object(item) == []
    assert item["collection"] == "dataset"
    assert item["bbox"] == [10, 50, 11, 51]
    assert [l["rel"] for l in item["links"]] == ["root", "parent", "collection", "self", "license"]
    assert item["assets"] == raw["assets"]
    assert item["properties"] == raw["properties"]
    assert summary == [10, 50, 11, 51, "2021-06-01T00:00:00.000000Z", "2021-06-01T00:00:00.000000Z"]
    assert normalize(item, "dataset")[0] == item  # idempotent: a rewrite's own event changes nothing


def test_null_geometry_and_ranges() -> None:
    raw = make_item("n", dt=None, start_datetime="2020-01-01T00:00:00.123456789+02:00",
                    end_datetime="2020-02-01T00:00:00Z")
    raw["geometry"] = None
    del raw["bbox"]
    _, summary = normalize(raw, "dataset")
    assert summary == [None] * 4 + ["2019-12-31T22:00:00.123456Z", "2020-02-01T00:00:00.000000Z"]


def test_antimeridian_item_extent_spans_all_longitudes() -> None:
    raw = make_item("am")
    raw["geometry"] = {"type": "MultiPolygon", "coordinates": [
        [[[179, 1], [180, 1], [180, 2], [179, 2], [179, 1]]], [[[-180, 1], [-179, 1], [-179, 2], [-180, 2], [-180, 1]]]]}
    raw["bbox"] = [179, 1, -179, 2]
    item, summary = normalize(raw, "dataset")
    assert item["bbox"] == [179, 1, -179, 2]
    assert summary[:4] == [-180, 1, 180, 2]


def _breaks(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    item = copy.deepcopy(make_item("bad", size=1))
    change(item)
    return item


BAD: dict[str, tuple[Any, str]] = {
    "not an object": ([1, 2], "JSON object"),
    "wrong type": (_breaks(lambda i: i.update(type="Collection")), "item.type must be same as const definition: Feature"),
    "no id": (_breaks(lambda i: i.pop("id")), r"item must contain \['id'\]"),
    "id with slash": (_breaks(lambda i: i.update(id="a/b")), "must match"),
    "id ending in a newline": (_breaks(lambda i: i.update(id="bad\n")), "must match"),  # "$" let it through
    "id with a control character": (_breaks(lambda i: i.update(id="b\x01ad")), "must match"),
    "id with a tab": (_breaks(lambda i: i.update(id="bad\t")), "must match"),
    "geometry junk": (_breaks(lambda i: i.update(geometry={"type": "Point", "coordinates": "x"})), "geometry"),
    "bbox too short": (_breaks(lambda i: i.update(bbox=[1, 2, 3])), "item.bbox must contain at least 4 items"),
    "bbox of five": (_breaks(lambda i: i.update(bbox=[1, 2, 3, 4, 5])), "4 or 6 numbers"),
    "bbox misses geometry": (_breaks(lambda i: i.update(bbox=[0, 0, 1, 1])), "does not contain"),
    "bbox without geometry": (_breaks(lambda i: i.update(geometry=None)), "geometry is null"),
    "no datetime": (_breaks(lambda i: i["properties"].pop("datetime")), r"item.properties must contain \['datetime'\]"),
    "null datetime, no range": (_breaks(lambda i: i["properties"].update(datetime=None)), "start_datetime"),
    "bad datetime": (_breaks(lambda i: i["properties"].update(datetime="yesterday")), "RFC 3339"),
    "date only": (_breaks(lambda i: i["properties"].update(datetime="2020-01-01")), "RFC 3339"),
    "no time zone": (_breaks(lambda i: i["properties"].update(datetime="2020-01-01T00:00:00")), "time zone"),
    "range reversed": (_breaks(lambda i: i["properties"].update(
        datetime=None, start_datetime="2021-01-01T00:00:00Z", end_datetime="2020-01-01T00:00:00Z")), "after"),
    "other collection": (_breaks(lambda i: i.update(collection="ai-model")), "differs from the collection"),
    "asset without href": (_breaks(lambda i: i["assets"].update(x={})), r"item.assets.x must contain \['href'\]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_items_are_rejected_with_a_reason(case: str) -> None:
    doc, reason = BAD[case]
    with pytest.raises(InvalidItem, match=reason):
        normalize(doc, "dataset")


def test_key_and_collection_rules() -> None:
    with pytest.raises(InvalidItem, match="differs from the id in the object key"):
        normalize(make_item("a"), "dataset", "b")
    with pytest.raises(InvalidItem, match="unknown collection"):
        normalize(make_item("a", collection=None), "nope")
    with pytest.raises(InvalidItem, match="not JSON"):
        parse(b"{nope")
    with pytest.raises(InvalidItem, match="nested deeper"):  # was a RecursionError, which aborted a bulk publish
        parse(b'{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}")


_coord = st.one_of(st.integers(-180, 180), st.floats(-180, 180, allow_nan=False), st.just(float("nan")), st.text(max_size=1))
_position = st.lists(_coord, min_size=1, max_size=4)
_ring = st.lists(_position, min_size=0, max_size=6).map(lambda r: r + r[:1] if r and len(r) % 2 else r)


@given(st.one_of(st.fixed_dictionaries({"type": st.just("Point"), "coordinates": _position}),
                 st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": st.lists(_ring, max_size=3)})))
@example({"type": "Polygon", "coordinates": [[[0, 0], [1, 0, 0], [1, 1], [0, 0]]]})  # mixed dimensions: shapely refuses it
@settings(max_examples=300, deadline=None)
def test_plain_bounds_agree_with_shapely_or_defer_to_it(geometry) -> None:
    import shapely.geometry
    from chalicelib.stac.items import _plain_bounds
    bounds = _plain_bounds(geometry)
    if bounds is not None:
        assert bounds == [float(v) for v in shapely.geometry.shape(geometry).bounds]


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_utc_text_is_strftimes_for_naive_and_utc_instants(dt: datetime, aware: bool) -> None:
    from chalicelib.stac.items import utc_text
    at = dt.replace(tzinfo=timezone.utc) if aware else dt
    assert utc_text(at) == dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30)),
       st.integers(-23 * 60, 23 * 60), st.integers(0, 9), st.sampled_from(["T", "t"]), st.sampled_from(["Z", "z", ""]))
@settings(max_examples=300, deadline=None)
def test_an_rfc3339_datetime_is_read_to_the_microsecond_whatever_its_digits_and_offset(
        dt: datetime, minutes: int, digits: int, sep: str, zulu: str) -> None:
    offset = timezone(timedelta(minutes=minutes))
    fraction = f"{dt.microsecond:06d}{dt.microsecond % 1000:03d}"[:digits]
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{fraction}" if digits else "")
    text += zulu if zulu and minutes == 0 else dt.replace(tzinfo=offset).strftime("%z")[:3] + ":" + \
        dt.replace(tzinfo=offset).strftime("%z")[3:]
    raw = make_item("t", dt=text)
    _, summary = normalize(raw, "dataset")
    micro = int(fraction[:6].ljust(6, "0")) if digits else 0
    expected = dt.replace(microsecond=micro, tzinfo=offset).astimezone(timezone.utc)
    assert summary[4] == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the schema check's fast path ------------------------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, width=16)
                     | st.sampled_from(["", "x", "Feature", "Point", "Polygon", "1.1.0", "1.0", "https://x.org/v1.json",
                                        "not a uri", "2021-06-01T00:00:00Z"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["type", "href", "rel", "datetime", "x"]), inner, max_size=3), max_leaves=6)
# Where an item differs from a valid one: each place the schema says something about, and some it does not.
_PLACES = [("type",), ("id",), ("collection",), ("stac_version",), ("stac_extensions",), ("stac_extensions", 0),
           ("stac_extensions", 1), ("geometry",), ("geometry", "type"), ("bbox",), ("bbox", 0), ("bbox", 5),
           ("properties",), ("properties", "datetime"), ("properties", "start_datetime"),
           ("properties", "end_datetime"), ("properties", "title"), ("links",), ("links", 0), ("links", 0, "rel"),
           ("links", 0, "href"), ("links", 1), ("assets",), ("assets", "data"), ("assets", "data", "href"),
           ("assets", "x"), ("x",)]


def _changed(item: dict[str, Any], path: tuple[Any, ...], value: Any, drop: bool) -> None:
    node: Any = item
    for step in path[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return
    last = path[-1]
    if isinstance(node, dict):
        if drop:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int):
        if drop and last < len(node):
            del node[last]
        elif not drop:
            node[last:last + 1] = [value]


# Values at the edges of the schema's rules, drawn half the time.
_EDGES = st.sampled_from(["", "x", "Nope", "Point", True, False, None, 0, 1.5, [], {}, ["x", "x"], {"href": ""},
                          {"href": 1}, {"rel": "x"}, {"type": "Nope"}, {"type": "Point"}, "1.0", "1.1.0", "a b", "x" * 200, "x" * 201])


@given(st.lists(st.tuples(st.sampled_from(_PLACES), st.one_of(_EDGES, _EDGES, _json), st.booleans()), max_size=2),
       st.sampled_from([["https://x.org/v1.json"], ["https://x.org/v1.json", "https://x.org/v1.json"], ["a b"], []]),
       st.sampled_from(["1.1.0", "1.0.0", "2.0.0", "1.1"]))
@example([(("id",), "x" * 201, False)], [], "1.1.0")
@example([(("id",), "", False)], [], "1.1.0")
@example([(("bbox", 0), True, False)], [], "1.1.0")
@example([(("assets", "data", "href"), "", False)], [], "1.1.0")
@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
def test_the_schema_fast_path_accepts_only_what_the_schema_accepts(changes: list[tuple[tuple[Any, ...], Any, bool]],
                                                                   extensions: list[str], version: str) -> None:
    """``_plainly_valid`` may only say yes when the compiled schema does: every other item gets the
    compiled schema's verdict and reason (its verdicts on earlier items taught it their versions and
    extensions: some of these are known to it, some not)."""
    from chalicelib.stac import items
    schema = items._check_schema()
    items._check_structure(make_item("seen", size=1))  # "1.1.0" and no extension: accepted before
    item = make_item("i", size=1, collection="dataset")
    item["stac_extensions"], item["stac_version"] = list(extensions), version
    for path, value, drop in changes:
        _changed(item, path, copy.deepcopy(value), drop)
    try:
        schema(copy.deepcopy(item))
        reason = None
    except Exception as err:
        reason = re.sub(r"^data", "item", err.message)  # type: ignore[attr-defined]
    if items._plainly_valid(item):
        assert reason is None, item
    try:
        items._check_structure(item)
        got = None
    except InvalidItem as err:
        got = str(err)
    assert got == reason


def test_the_schema_fast_path_sees_through_a_bulk_loads_items() -> None:
    """Worth having: the items a load is made of pass it (once their version and extensions were seen)."""
    from chalicelib.stac import items
    plain = make_item("a", size=1)
    mlm = make_item("m", stac_extensions=["https://stac-extensions.github.io/mlm/v1.4.0/schema.json"])
    mlm["stac_extensions"] = ["https://stac-extensions.github.io/mlm/v1.4.0/schema.json"]
    for item in (plain, mlm):
        normalize(item, "dataset")
        assert items._plainly_valid(item)


def test_what_the_schema_fast_path_remembers_is_bounded_in_count_and_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """Items a server is sent may carry long or ever new extension URIs: the accepted strings kept are short
    and at most ``_ACCEPTED_MAX``, and an item whose URI was not kept still passes (through the schema)."""
    from chalicelib.stac import items
    monkeypatch.setattr(items, "_ACCEPTED", set())
    monkeypatch.setattr(items, "_ACCEPTED_MAX", 10)
    long = "https://example.org/" + "a" * 10_000 + "/schema.json"
    item = make_item("long", size=1)
    item["stac_extensions"] = [long]
    for _ in range(2):
        normalize(item, "dataset")
    assert ("stac_extensions", long) not in items._ACCEPTED
    assert not items._plainly_valid(item)
    item["stac_extensions"] = [f"https://example.org/{n}/schema.json" for n in range(50)]
    normalize(item, "dataset")
    assert len(items._ACCEPTED) == 10


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(["", ".", "6"]),
       st.sampled_from(["Z", "z", "+00:00", "+01:00"]), st.sampled_from(["T", "t", " "]))
@settings(max_examples=500, deadline=None)
def test_an_instants_summary_text_taken_from_its_text_is_the_formatted_one(dt: datetime, fraction: str, zone: str,
                                                                           sep: str) -> None:
    from chalicelib.stac.items import _instant, _utc_text_of, utc_text
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S").rjust(19, "0") + {"": "", ".": f".{dt.microsecond}",
                                                                   "6": f".{dt.microsecond:06d}"}[fraction] + zone
    try:
        at = _instant(text, "datetime")
    except InvalidItem:
        return
    assert _utc_text_of(at, text) == utc_text(at)
