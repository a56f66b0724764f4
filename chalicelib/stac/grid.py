"""A spatial grid over item bounding boxes: the rows a bbox query must test, without scanning them all.

Each row goes to one cell of one level: the finest level whose cells (``360 / 2**level`` degrees wide
and high) are at least as large as its box, the cell holding its lower-left corner. A box of such a
level reaches at most one cell size beyond its corner, so a query only visits, per level, the cells
from one size (plus a cell of slack for rounding) below and left of its lower-left corner to its
upper-right one. Rows are kept sorted by (level, cell row, cell column): each visited row of cells is
one slice. Boxes the grid cannot place (crossing the antimeridian, larger than the world, not finite)
are listed apart and always tested. 8 bytes per row (the sorted rows and their cell keys, int32).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

LEVELS = 11  # cell sizes 360 / 2**level: 360° down to ~0.35°
_SIZES = 360.0 / 2.0 ** np.arange(LEVELS)
_WIDE = (2 ** np.arange(LEVELS)).astype(np.int64)  # cell columns per level (longitudes -180..180)
_HIGH = np.maximum(1, np.ceil(180.0 / _SIZES)).astype(np.int64)  # cell rows (latitudes -90..90)
_FIRST = np.concatenate([[0], np.cumsum(_WIDE * _HIGH)])  # key of each level's first cell


def overlap(box: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Which rows of ``box`` (n, 4: minx, miny, maxx, maxy; minx > maxx crosses the antimeridian)
    overlap ``bounds`` (a box that does not cross it). NaN bounds never overlap."""
    qminx, qminy, qmaxx, qmaxy = bounds
    minx, miny, maxx, maxy = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
    wraps = minx > maxx
    with np.errstate(invalid="ignore"):
        x = np.where(wraps, (qmaxx >= minx) | (qminx <= maxx), (minx <= qmaxx) & (maxx >= qminx))
        return x & (miny <= qmaxy) & (maxy >= qminy)  # type: ignore[no-any-return]


def _cells(x: np.ndarray | float, y: np.ndarray | float, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) of the cells holding points (x, y) at ``level``, clipped to the grid. Monotonic in
    x and y (floating-point operations round monotonically), which is what the query relies on."""
    size = _SIZES[level]
    cx = np.clip(np.floor((x + 180.0) / size), 0, _WIDE[level] - 1).astype(np.int64)
    cy = np.clip(np.floor((y + 90.0) / size), 0, _HIGH[level] - 1).astype(np.int64)
    return cx, cy


class BoxGrid:
    def __init__(self, box: np.ndarray) -> None:
        n = len(box)
        with np.errstate(invalid="ignore", over="ignore"):
            minx, miny, maxx, maxy = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
            size = np.maximum(maxx - minx, maxy - miny)
            placed = np.isfinite(box).all(axis=1) & (minx <= maxx) & (size <= _SIZES[0])
        rows = np.flatnonzero(placed)
        size = size[rows]
        # The finest level whose cells are at least this large (a point: the finest of all).
        with np.errstate(divide="ignore"):
            level = np.clip(np.floor(np.log2(_SIZES[0] / size)), 0, LEVELS - 1).astype(np.int64)
        while True:  # log2 may round up: step back where a box is larger than its level's cells
            big = size > _SIZES[level]
            if not big.any():
                break
            level[big] -= 1
        cx, cy = _cells(minx[rows], miny[rows], level)
        keys = _FIRST[level] + cy * _WIDE[level] + cx
        order = np.argsort(keys, kind="stable")
        self.n = n
        self.keys = keys[order].astype(np.int32)
        self.rows = rows[order].astype(np.int32)
        self.others = np.flatnonzero(~placed).astype(np.int32)  # always tested
        self.levels = np.unique(level) if len(level) else np.zeros(0, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.rows.nbytes + self.others.nbytes)

    def slices(self, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """([start, stop) positions in ``rows``) of the cells a query box must visit."""
        qminx, qminy, qmaxx, qmaxy = bounds
        levels = self.levels
        size = _SIZES[levels]
        lo_x, lo_y = _cells(qminx - size, qminy - size, levels)
        hi_x, hi_y = _cells(np.full(len(levels), qmaxx), np.full(len(levels), qmaxy), levels)
        firsts, lasts = [], []
        for level, cx0, cy0, cx1, cy1 in zip(levels.tolist(), (lo_x - 1).tolist(), (lo_y - 1).tolist(),
                                             hi_x.tolist(), hi_y.tolist()):
            cx0, cy0 = max(0, cx0), max(0, cy0)  # a cell of slack below and left: rounding
            if cx1 < cx0 or cy1 < cy0:
                continue
            wide, first = int(_WIDE[level]), int(_FIRST[level])
            if cx0 == 0 and cx1 == wide - 1:  # whole rows of cells: one slice
                firsts.append(np.array([first + cy0 * wide]))
                lasts.append(np.array([first + cy1 * wide + cx1]))
            else:
                row_keys = first + np.arange(cy0, cy1 + 1) * wide
                firsts.append(row_keys + cx0)
                lasts.append(row_keys + cx1)
        if not firsts:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        keys = self.keys  # searched with its own dtype (else numpy converts the whole column per call)
        return (np.searchsorted(keys, np.concatenate(firsts).astype(keys.dtype), side="left"),
                np.searchsorted(keys, np.concatenate(lasts).astype(keys.dtype), side="right"))

    def candidates(self, bounds: tuple[float, float, float, float]) -> tuple[int, Callable[[], np.ndarray]]:
        """(how many rows may overlap ``bounds``, a function listing them: each once, in no particular
        order, a superset of those that do)."""
        lo, hi = self.slices(bounds)
        lengths = hi - lo
        total = int(lengths.sum())

        def rows() -> np.ndarray:
            # Positions lo[i] .. hi[i]-1 of every slice, without a Python loop over slices.
            starts = np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
            picked = self.rows[starts + np.arange(total)] if total else np.zeros(0, dtype=np.int32)
            return np.concatenate([picked, self.others])
        return total + len(self.others), rows
