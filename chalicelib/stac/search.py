"""Item search (STAC API 1.0.0 item-search + filter, sort, fields, free-text): parse, then execute.

``parse_get``/``parse_post`` turn request parameters into a validated ``SearchRequest``
(InvalidParameter on any bad input); ``execute`` runs it on an index ``Snapshot``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from ..auth.access import EVERYTHING, ReadScope
from ..bounds import InputBoundError, load_json
from . import fields as fields_ext
from . import filter as filter_ext
from . import freetext, sort
from .datetimes import parse_instant
from .errors import InvalidParameter
from .geometry import bbox_geometry, literal_geometry, spatial_mask
from .index import Snapshot
from .queryables import queryables
from .table import Table

DEFAULT_LIMIT = 10
MAX_LIMIT = 10000


@dataclass(frozen=True)
class SearchRequest:
    ids: tuple[str, ...] | None = None
    collections: tuple[str, ...] | None = None
    bbox: tuple[float, ...] | None = None
    intersects: dict[str, Any] | None = None
    datetime: tuple[float, float] | None = None  # epoch seconds, +-inf when open
    limit: int = DEFAULT_LIMIT
    q: str | None = None
    sortby: tuple[sort.SortKey, ...] = ()
    fields: fields_ext.Fields | None = None
    filter: dict[str, Any] | bool | None = None  # CQL2 JSON
    token: str | None = None
    _q_node: Any = field(default=None, compare=False, repr=False)


@dataclass
class SearchPage:
    hits: list[tuple[Table, int]]  # (table, row) of each returned item, in order
    number_matched: int
    next_token: str | None
    prev_token: str | None
    fields: fields_ext.Fields | None = None
    backward: bool = False  # a "prev" page: it ends at its cursor
    cursor_of: Callable[[int], list[Any]] | None = field(default=None, compare=False, repr=False)  # of hits[i]

    def truncated(self, n: int) -> SearchPage:
        """The page cut to its ``n`` hits nearest to its cursor (n >= 1), with a token for the rest,
        so that a page can end early (e.g. on its size) and paging still visits every match once."""
        if n >= len(self.hits) or self.cursor_of is None:
            return self
        if self.backward:
            first = len(self.hits) - n
            return replace(self, hits=self.hits[first:],
                           prev_token=sort.encode_token("prev", self.cursor_of(first)))
        return replace(self, hits=self.hits[:n], next_token=sort.encode_token("next", self.cursor_of(n - 1)))

    @property
    def items(self) -> list[dict[str, Any]]:
        """The returned items as stored (with their own links), ``fields`` applied."""
        items = [table.item(row) for table, row in self.hits]
        if self.fields is None:
            return items
        return [fields_ext.apply_fields(item, self.fields) for item in items]


# == parsing ===================================================================================
def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(f"parameter {name!r} given more than once")
    return values[0]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_get(params: Mapping[str, list[str]], *, collection: str | None = None) -> SearchRequest:
    """GET /search (or /collections/{collection}/items) query parameters."""
    get = lambda name: _one(params, name)  # noqa: E731
    raw: dict[str, Any] = {}
    for name in ("ids", "collections"):
        if (value := get(name)) is not None:
            raw[name] = _csv(value)
    if (value := get("bbox")) is not None:
        try:
            raw["bbox"] = [float(v) for v in value.split(",")]
        except ValueError:
            raise InvalidParameter("bbox must be 4 or 6 comma-separated numbers") from None
    if (value := get("intersects")) is not None:
        try:
            raw["intersects"] = load_json(value, what="intersects")
        except InputBoundError as err:
            raise InvalidParameter(f"intersects must be a GeoJSON geometry: {err}") from None
    for name in ("datetime", "limit", "q", "token"):
        if (value := get(name)) is not None:
            raw[name] = value
    if (value := get("sortby")) is not None:
        raw["sortby"] = sort.parse_sort_get(value)
    if (value := get("fields")) is not None:
        raw["fields"] = fields_ext.parse_fields_get(value)
    if (value := get("filter")) is not None:  # cql2-json arrives as JSON text
        raw["filter"] = filter_ext.parse_filter(value, get("filter-lang"), get("filter-crs"), default_lang="cql2-text")
    if collection is not None:
        raw["collections"] = [collection]
    return _build(raw)


def parse_post(body: Any) -> SearchRequest:
    """POST /search JSON body."""
    if not isinstance(body, dict):
        raise InvalidParameter("the search body must be a JSON object")
    raw: dict[str, Any] = {}
    for name in ("ids", "collections"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, str):  # seen from clients (and the API validator): one id as a string
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidParameter(f"{name} must be an array of strings")
        raw[name] = value
    if body.get("bbox") is not None:
        raw["bbox"] = body["bbox"]
    if body.get("intersects") is not None:
        raw["intersects"] = body["intersects"]
    for name in ("datetime", "limit", "token"):
        if body.get(name) is not None:
            raw[name] = body[name]
    if body.get("q") is not None:
        q = body["q"]
        if isinstance(q, list) and all(isinstance(v, str) for v in q):
            q = ",".join(f'"{v}"' if " " in v else v for v in q)
        raw["q"] = q
    if body.get("sortby") is not None:
        raw["sortby"] = sort.parse_sort_post(body["sortby"])
    if "fields" in body:  # null is not a fields object
        raw["fields"] = fields_ext.parse_fields_post(body["fields"])
    if body.get("filter") is not None:
        lang = body.get("filter-lang")
        if lang is None and isinstance(body["filter"], str):
            lang = "cql2-text"
        raw["filter"] = filter_ext.parse_filter(body["filter"], lang, body.get("filter-crs"),
                                                default_lang="cql2-json")
    return _build(raw)


def _build(raw: dict[str, Any]) -> SearchRequest:
    if "bbox" in raw and "intersects" in raw:
        raise InvalidParameter("bbox and intersects cannot be used together")
    q = raw.get("q")
    if q is not None and not isinstance(q, str):
        raise InvalidParameter("q must be a string")
    token = raw.get("token")
    if token is not None:
        if not isinstance(token, str):
            raise InvalidParameter("token must be a string")
        sort.decode_token(token)
    if raw.get("filter") is not None:
        filter_ext.compile_filter(raw["filter"])  # validates operators and operands
    intersects = raw.get("intersects")
    if intersects is not None:
        literal_geometry(intersects)
    return SearchRequest(
        ids=tuple(raw["ids"]) if raw.get("ids") else None,
        collections=tuple(raw["collections"]) if raw.get("collections") else None,
        bbox=_bbox(raw["bbox"]) if "bbox" in raw else None,
        intersects=intersects,
        datetime=parse_datetime(raw["datetime"]) if "datetime" in raw else None,
        limit=parse_limit(raw["limit"]) if "limit" in raw else DEFAULT_LIMIT,
        q=q, sortby=raw.get("sortby", ()), fields=raw.get("fields"), filter=raw.get("filter"),
        token=token, _q_node=freetext.parse_q(q) if q is not None else None)


def parse_limit(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidParameter("limit must be a positive integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidParameter("limit must be a positive integer") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise InvalidParameter("limit must be a positive integer")
    return min(value, MAX_LIMIT)


def _bbox(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) not in (4, 6) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise InvalidParameter("bbox must be 4 or 6 numbers")
    box = [float(v) for v in value]
    half = len(box) // 2
    minx, miny, maxx, maxy = box[0], box[1], box[half], box[half + 1]
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidParameter("bbox latitudes must be within [-90, 90]")
    if miny > maxy:
        raise InvalidParameter("bbox minimum latitude is above its maximum")
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidParameter("bbox longitudes must be within [-180, 180]")
    if len(box) == 6 and box[2] > box[5]:
        raise InvalidParameter("bbox minimum elevation is above its maximum")
    return tuple(box)


# Request datetimes are strict RFC 3339 (date, time, offset); stored items are read leniently.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_datetime(value: Any) -> tuple[float, float]:
    """An instant or an interval (``a/b``, ``../b``, ``a/..``) as (start, end) epoch seconds."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter("datetime must be an RFC 3339 timestamp or interval")
    parts = value.strip().split("/")
    if len(parts) > 2:
        raise InvalidParameter(f"invalid datetime interval: {value!r}")
    bounds = []
    for i, part in enumerate(parts):
        if part in ("", ".."):
            if len(parts) == 1:
                raise InvalidParameter(f"invalid datetime: {value!r}")
            bounds.append(-math.inf if i == 0 else math.inf)
            continue
        try:
            if not _RFC3339.match(part):
                raise ValueError(part)
            bounds.append(parse_instant(part))
        except ValueError:
            raise InvalidParameter(f"invalid RFC 3339 datetime: {part!r}") from None
    if len(bounds) == 1:
        return bounds[0], bounds[0]
    start, end = bounds
    if math.isinf(start) and math.isinf(end):
        raise InvalidParameter("a datetime interval needs at least one bound")
    if start > end:
        raise InvalidParameter("datetime interval starts after it ends")
    return start, end


# == execution ===================================================================================
def _matches(t: Table, alive: np.ndarray, req: SearchRequest, compiled: Any, geom: Any,
             scope: ReadScope) -> np.ndarray:
    # What the caller may not read is gone before anything counts, sorts or pages.
    readable = t.readable(scope)
    mask = alive.copy() if readable is None else alive & readable
    if req.ids is not None:
        mask &= t.id_mask(req.ids)
    if req.collections is not None:
        mask &= t.collection_mask(req.collections)
    if req.datetime is not None and mask.any():
        start, end = req.datetime
        with np.errstate(invalid="ignore"):
            mask &= (t.times[:, 0] <= end) & (t.times[:, 1] >= start)
    if geom is not None and mask.any():
        mask = spatial_mask(t, "intersects", geom, within=mask)[0]
    if req._q_node is not None and mask.any():
        mask &= freetext.match(t, req._q_node)
    if compiled is not None and mask.any():
        mask &= compiled(t)[0]
    return mask


def execute(snapshot: Snapshot, req: SearchRequest, *, known_collections: set[str],
            scope: ReadScope = EVERYTHING) -> SearchPage:
    """The page of ``req`` among the items ``scope`` may read: ``numberMatched`` counts only those, and
    page tokens hold the sort values of a returned (so readable) item."""
    for coll in req.collections or ():
        if coll not in known_collections:
            raise InvalidParameter(f"unknown collection: {coll!r}")
    compiled = filter_ext.compile_filter(req.filter, known_collections) if req.filter is not None else None
    geom = None
    if req.bbox is not None:
        geom = bbox_geometry(list(req.bbox))
    elif req.intersects is not None:
        geom = literal_geometry(req.intersects)
    masks = [_matches(t, alive, req, compiled, geom, scope) for t, alive in snapshot.parts]
    counts = [int(np.count_nonzero(mask)) for mask in masks]
    tables = [t for t, _ in snapshot.parts]
    keys = (req.sortby or sort.DEFAULT_SORT) + sort.TIE_BREAK
    cols = sort.columns(list(zip(tables, counts)), keys)
    direction, cursor = "next", None
    if req.token is not None:
        direction, cursor = sort.decode_token(req.token)
        if len(cursor) != len(cols):
            raise InvalidParameter("token does not match this search")
    page, more, skipped = sort.page(cols, masks, cursor, req.limit, backward=direction == "prev", counts=counts)
    # ``more``: rows beyond the page, in its direction; ``skipped``: rows on the other side of the cursor.
    has_next, has_prev = (more, skipped) if direction == "next" else (skipped, more)
    cursor_of = lambda i: [c.cursor_value(int(i)) for c in cols]  # noqa: E731
    next_token = sort.encode_token("next", cursor_of(page[-1])) if has_next and len(page) else None
    prev_token = sort.encode_token("prev", cursor_of(page[0])) if has_prev and len(page) else None
    offsets = cols[0].offsets  # global row = rows of the tables before + table row
    which = np.searchsorted(offsets, page, side="right") - 1  # the part of each returned row
    rows = page - offsets[which]
    return SearchPage(hits=[(tables[p], r) for p, r in zip(which.tolist(), rows.tolist())], number_matched=sum(counts),
                      next_token=next_token, prev_token=prev_token, fields=req.fields,
                      backward=direction == "prev", cursor_of=lambda k: cursor_of(page[k]))


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "SearchPage", "SearchRequest", "execute", "parse_datetime", "parse_get",
           "parse_limit", "parse_post", "queryables"]
