"""Spatial matching: an item-bbox prefilter (through the table's grid at scale), then exact shapely predicates."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import InvalidParameter
from .grid import overlap
from .table import Table


def bbox_geometry(box: list[float]) -> Any:
    """A [minx, miny, maxx, maxy] (or 6-number) box; minx > maxx crosses the antimeridian."""
    import shapely
    if len(box) == 6:
        box = [box[0], box[1], box[3], box[4]]
    minx, miny, maxx, maxy = box
    if minx > maxx:
        return shapely.MultiPolygon([shapely.box(minx, miny, 180.0, maxy), shapely.box(-180.0, miny, maxx, maxy)])
    return shapely.box(minx, miny, maxx, maxy)


def literal_geometry(node: Any) -> Any:
    """A shapely geometry from GeoJSON or ``{"bbox": [...]}``; InvalidParameter when malformed."""
    import shapely
    if isinstance(node, dict) and "bbox" in node and "type" not in node:
        box = node["bbox"]
        if not isinstance(box, list) or len(box) not in (4, 6) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            raise InvalidParameter("a bbox has 4 or 6 numbers")
        return bbox_geometry([float(v) for v in box])
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise InvalidParameter("a geometry must be a GeoJSON geometry object")
    if node["type"] in ("Feature", "FeatureCollection"):
        raise InvalidParameter("intersects takes a GeoJSON geometry, not a Feature")
    try:
        geom = shapely.from_geojson(json.dumps(node))
    except Exception as err:
        raise InvalidParameter(f"invalid GeoJSON geometry: {err}") from None
    if geom is None or geom.is_empty:
        raise InvalidParameter("invalid GeoJSON geometry: empty")
    return geom


GRID_ROWS = 4096  # tables from this size answer bbox queries through their grid (smaller: a scan is as fast)


def _overlapping(t: Table, bounds: tuple[float, float, float, float], within: np.ndarray | None,
                 count: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of ``within`` (None: all rows; ``count``: how many it holds) whose bbox overlaps ``bounds``,
    each once, in no particular order, and their bboxes where read, from whichever is smallest: the grid's
    candidates, the rows of ``within``, or a scan of every row. Rows outside ``within`` are dropped before
    any bbox is read."""
    if t.n >= GRID_ROWS:
        estimate, listed = t.grid.candidates(bounds)
        # A candidate costs a mask lookup, a row of ``within`` a bbox read (~3x more): the grid unless it
        # lists far more rows than ``within`` holds.
        if estimate <= min(2 * count, t.n // 2):
            cand = listed()
            if within is not None:
                cand = cand[within[cand]]
            return _kept(t, cand, bounds)
    if within is not None and count <= t.n // 4:
        return _kept(t, np.flatnonzero(within), bounds)
    rows = np.flatnonzero(overlap(t.box, bounds))
    return (rows if within is None else rows[within[rows]]), None


def _kept(t: Table, cand: np.ndarray, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of ``cand`` whose bbox overlaps ``bounds``, their bboxes)."""
    boxes = np.take(t.box, cand, axis=0)  # indexing the (n, 4) array with a row list is ~10x slower
    keep = overlap(boxes, bounds)
    return cand[keep], boxes[keep]


def _hits(t: Table, geom: Any, within: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(``bbox_rows``, their bboxes)."""
    import shapely
    count = t.n if within is None else int(np.count_nonzero(within))
    found = [_overlapping(t, part.bounds, within, count) for part in shapely.get_parts(geom)]
    if len(found) == 1 and found[0][1] is not None:
        return found[0]  # type: ignore[return-value]
    rows = np.unique(np.concatenate([r for r, _ in found])) if found else np.zeros(0, dtype=np.intp)
    return rows, np.take(t.box, rows, axis=0)


def bbox_rows(t: Table, geom: Any, within: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``within`` (None: any) whose bbox overlaps a part of ``geom`` (an antimeridian box is two
    parts: each prunes), each once, in no particular order."""
    return _hits(t, geom, within)[0]


def spatial_mask(t: Table, predicate: str, geom: Any,
                 within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(true, unknown) masks of ``predicate(item geometry, geom)``; unknown = no geometry. ``within``:
    only these rows are evaluated (true is False elsewhere)."""
    import shapely
    present = t.present("geometry")
    if predicate == "disjoint":
        hit, _ = spatial_mask(t, "intersects", geom)
        out = present & ~hit
        return (out if within is None else out & within), ~present
    rows, b = _hits(t, geom, present if within is None else within & present)
    hit = np.zeros(t.n, dtype=bool)
    if predicate == "intersects" and geom.geom_type == "Polygon" and shapely.equals(geom, shapely.box(*geom.bounds)):
        # Items whose bbox lies inside a rectangle surely intersect it: skip their exact test.
        qminx, qminy, qmaxx, qmaxy = geom.bounds
        with np.errstate(invalid="ignore"):
            certain = (b[:, 0] <= b[:, 2]) & (b[:, 0] >= qminx) & (b[:, 2] <= qmaxx) \
                & (b[:, 1] >= qminy) & (b[:, 3] <= qmaxy)
        hit[rows[certain]] = True
        rows = rows[~certain]
    rows = np.sort(rows)  # the exact test's geometries are read in row order (adjacent chunks together)
    if len(rows):
        shapes = t.shapes_for(rows)
        shapely.prepare(geom)  # one query geometry against many rows
        try:
            hit[rows] = np.asarray(getattr(shapely, predicate)(shapes, geom), dtype=bool)
        except shapely.errors.GEOSException as err:  # e.g. a self-intersecting query polygon
            raise InvalidParameter(f"cannot evaluate {predicate} with this geometry: {err}") from None
    return hit, ~present
