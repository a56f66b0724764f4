"""The spatial grid (chalicelib/stac/grid.py) and the bbox search through it, against brute force: hypothesis
draws items and queries on cell borders, across the antimeridian, without geometry, with datetime intervals."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.stac import geometry, search
from chalicelib.stac.grid import BoxGrid, overlap
from chalicelib.stac.index import Snapshot
from chalicelib.stac.table import Record, Table

from tests.helpers import oracle

# Coordinates on the borders of cells of several levels (360 / 2**level degrees), and near them.
BORDERS = [-180.0, -90.0, -45.0, -22.5, -0.3515625, 0.0, 0.3515625, 0.703125, 11.25, 45.0, 90.0, 179.6484375, 180.0]
SIZES = [0.0, 0.3515625, 0.5, 0.703125, 1.40625, 5.0, 45.0, 90.0, 180.0, 360.0]
lon = st.one_of(st.sampled_from(BORDERS), st.floats(-180, 180), st.sampled_from([b + 1e-9 for b in BORDERS[:-1]]))
lat = st.one_of(st.sampled_from([v for v in BORDERS if -90 <= v <= 90]), st.floats(-90, 90))
size = st.one_of(st.sampled_from(SIZES), st.floats(0, 40))
INSTANTS = ["2020-01-01T00:00:00Z", "2020-06-01T00:00:00Z", "2021-01-01T00:00:00Z", "2021-01-01T00:00:01Z"]


@st.composite
def items(draw: Any, i: int) -> dict[str, Any]:
    x, y, w, h = draw(lon), draw(lat), draw(size), draw(size)
    x1, y1 = min(180.0, x + w), min(90.0, y + h)
    shape = draw(st.sampled_from(["box", "point", "triangle", "antimeridian", "none"]))
    item: dict[str, Any] = {"type": "Feature", "stac_version": "1.0.0", "id": f"i{i}",
                            "collection": draw(st.sampled_from(["a", "b"])), "links": [], "assets": {}}
    if shape == "point":
        item["geometry"] = {"type": "Point", "coordinates": [x, y]}
        item["bbox"] = [x, y, x, y]
    elif shape == "antimeridian":
        west = draw(st.floats(-180, -170))
        item["geometry"] = {"type": "MultiPolygon", "coordinates": [
            [[[179.0, y], [180.0, y], [180.0, y1], [179.0, y1], [179.0, y]]],
            [[[-180.0, y], [west, y], [west, y1], [-180.0, y1], [-180.0, y]]]]}
        item["bbox"] = [179.0, y, west, y1]
    elif shape == "triangle" and x1 > x and y1 > y:
        item["geometry"] = {"type": "Polygon", "coordinates": [[[x, y], [x1, y], [x, y1], [x, y]]]}
        item["bbox"] = [x, y, x1, y1]
    elif shape == "box" and x1 > x and y1 > y:
        item["geometry"] = {"type": "Polygon", "coordinates": [[[x, y], [x1, y], [x1, y1], [x, y1], [x, y]]]}
        item["bbox"] = [x, y, x1, y1]
    else:
        item["geometry"] = None
    when = draw(st.sampled_from(INSTANTS))
    if draw(st.booleans()):
        item["properties"] = {"datetime": when}
    else:
        item["properties"] = {"datetime": None, "start_datetime": when, "end_datetime": draw(st.sampled_from(INSTANTS))}
        if oracle.ts(item["properties"]["end_datetime"]) < oracle.ts(when):
            item["properties"]["start_datetime"], item["properties"]["end_datetime"] = \
                item["properties"]["end_datetime"], when
    return item


@st.composite
def corpora(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 40))
    return [draw(items(i)) for i in range(n)]


@st.composite
def bboxes(draw: Any) -> list[float]:
    x0, x1 = draw(lon), draw(lon)
    y0, y1 = sorted([draw(lat), draw(lat)])
    if draw(st.booleans()):  # mostly not crossing: small and mid-sized boxes
        x0, x1 = sorted([x0, x1])
        x1 = min(x1, x0 + draw(size))
    return [x0, y0, x1, y1]


def table_of(items: list[dict[str, Any]]) -> Table:
    return Table.from_records([Record(it["collection"], it["id"], 1, "k", it) for it in items])


def brute(t: Table, bbox: list[float]) -> set[int]:
    """Rows whose bbox overlaps the query, every row tested (the query split at the antimeridian)."""
    parts = [(bbox[0], bbox[1], 180.0, bbox[3]), (-180.0, bbox[1], bbox[2], bbox[3])] if bbox[0] > bbox[2] \
        else [tuple(bbox)]
    return {r for part in parts for r in np.flatnonzero(overlap(t.box, part)).tolist()}  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora(), bbox=bboxes())
def test_the_grid_lists_every_row_whose_bbox_overlaps_a_query(corpus: list[dict[str, Any]], bbox: list[float]) -> None:
    t = table_of(corpus)
    grid = BoxGrid(t.box)
    parts = [(bbox[0], bbox[1], 180.0, bbox[3]), (-180.0, bbox[1], bbox[2], bbox[3])] if bbox[0] > bbox[2] \
        else [tuple(bbox)]
    listed: set[int] = set()
    for part in parts:
        count, rows = grid.candidates(part)  # type: ignore[arg-type]
        got = rows()
        assert len(got) == count
        assert len(set(got.tolist())) == len(got)  # each row once
        listed |= set(got.tolist())
    assert brute(t, bbox) <= listed


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(corpus=corpora(), bbox=bboxes(), within=st.one_of(st.none(), st.integers(0, 2 ** 60)))
def test_bbox_rows_through_the_grid_are_the_rows_a_scan_finds(monkeypatch: pytest.MonkeyPatch,
                                                              corpus: list[dict[str, Any]], bbox: list[float],
                                                              within: int | None) -> None:
    monkeypatch.setattr(geometry, "GRID_ROWS", 0)  # the grid even for these small tables
    t = table_of(corpus)
    mask = None if within is None else np.array([(within >> (r % 60)) & 1 == 1 for r in range(t.n)], dtype=bool)
    got = geometry.bbox_rows(t, geometry.bbox_geometry(bbox), mask)
    want = brute(t, bbox) if mask is None else {r for r in brute(t, bbox) if mask[r]}
    assert sorted(got.tolist()) == sorted(want)


@pytest.mark.parametrize("grid_rows", [0, 10 ** 9], ids=["grid", "scan"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(corpus=corpora(), bbox=st.one_of(st.none(), bboxes()),
       interval=st.one_of(st.none(), st.tuples(st.sampled_from(INSTANTS + [".."]), st.sampled_from(INSTANTS + [".."]))),
       limit=st.integers(1, 7))
def test_bbox_and_datetime_searches_answer_as_brute_force(monkeypatch: pytest.MonkeyPatch, grid_rows: int,
                                                          corpus: list[dict[str, Any]], bbox: list[float] | None,
                                                          interval: tuple[str, str] | None, limit: int) -> None:
    monkeypatch.setattr(geometry, "GRID_ROWS", grid_rows)
    body: dict[str, Any] = {"limit": limit}
    if bbox is not None:
        body["bbox"] = bbox
    lo, hi = -np.inf, np.inf
    if interval is not None and interval != ("..", ".."):
        a, b = interval
        if a != ".." and b != ".." and oracle.ts(a) > oracle.ts(b):
            a, b = b, a
        body["datetime"] = f"{a}/{b}"
        lo = -np.inf if a == ".." else oracle.ts(a)
        hi = np.inf if b == ".." else oracle.ts(b)
    want = [it["id"] for it in oracle.order(corpus, [(oracle.sort_instant, True)])
            if (bbox is None or oracle.in_bbox(it, bbox)) and oracle.in_datetime(it, lo, hi)]
    t = table_of(corpus)
    snapshot = Snapshot(parts=((t, np.ones(t.n, dtype=bool)),), generation="g")
    got: list[str] = []
    token = None
    while True:  # every page, so the walk past a cursor is checked too
        page = search.execute(snapshot, search.parse_post(dict(body, **({"token": token} if token else {}))),
                              known_collections={"a", "b"})
        assert page.number_matched == len(want)
        got.extend(it["id"] for it in page.items)
        token = page.next_token
        if token is None:
            break
    assert got == want
