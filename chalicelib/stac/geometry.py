"""Spatial matching: an item-bbox prefilter over numpy columns, then exact shapely predicates."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import InvalidParameter
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


def bbox_overlap(t: Table, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Rows whose item bbox overlaps ``bounds`` (antimeridian-crossing item boxes included)."""
    qminx, qminy, qmaxx, qmaxy = bounds
    minx, miny, maxx, maxy = t.box[:, 0], t.box[:, 1], t.box[:, 2], t.box[:, 3]
    wraps = minx > maxx
    with np.errstate(invalid="ignore"):
        x = np.where(wraps, (qmaxx >= minx) | (qminx <= maxx), (minx <= qmaxx) & (maxx >= qminx))
        return x & (miny <= qmaxy) & (maxy >= qminy)


def bbox_candidates(t: Table, geom: Any) -> np.ndarray:
    import shapely
    parts = shapely.get_parts(geom)
    out = np.zeros(t.n, dtype=bool)
    for part in parts:  # an antimeridian box is two parts: prune with each
        out |= bbox_overlap(t, part.bounds)
    return out


def spatial_mask(t: Table, predicate: str, geom: Any) -> tuple[np.ndarray, np.ndarray]:
    """(true, unknown) masks of ``predicate(item geometry, geom)``; unknown = no geometry."""
    import shapely
    present = t.present("geometry")
    if predicate == "disjoint":
        hit, _ = spatial_mask(t, "intersects", geom)
        return present & ~hit, ~present
    cand = bbox_candidates(t, geom) & present
    certain = np.zeros(t.n, dtype=bool)
    if predicate == "intersects" and geom.geom_type == "Polygon" and shapely.equals(geom, shapely.box(*geom.bounds)):
        # Items whose bbox lies inside a rectangle surely intersect it: skip their exact test.
        qminx, qminy, qmaxx, qmaxy = geom.bounds
        b = t.box
        with np.errstate(invalid="ignore"):
            certain = cand & (b[:, 0] <= b[:, 2]) & (b[:, 0] >= qminx) & (b[:, 2] <= qmaxx) \
                & (b[:, 1] >= qminy) & (b[:, 3] <= qmaxy)
    rows = np.flatnonzero(cand & ~certain)
    hit = certain.copy()
    if len(rows):
        shapes = t.shapes_for(rows)
        try:
            hit[rows] = np.asarray(getattr(shapely, predicate)(shapes, geom), dtype=bool)
        except shapely.errors.GEOSException as err:  # e.g. a self-intersecting query polygon
            raise InvalidParameter(f"cannot evaluate {predicate} with this geometry: {err}") from None
    return hit, ~present
