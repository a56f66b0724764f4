"""Sort extension and keyset pagination: ordering on (sort keys..., collection, id).

Tokens hold the sort-key values of the row a page ends (or starts) at, so the next page is
"rows after that row in this order": correct while items are added, unlike offsets.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..bounds import MAX_BODY_BYTES, InputBoundError, load_json
from .errors import InvalidParameter
from .table import Table, property_name

CONFORMANCE = ["https://api.stacspec.org/v1.0.0/item-search#sort",
               "https://api.stacspec.org/v1.0.0/ogcapi-features#sort"]

_UNSORTABLE = {"geometry", "bbox", "assets", "links", "type", "stac_version", "stac_extensions", "properties"}


@dataclass(frozen=True)
class SortKey:
    field: str  # canonical: "id", "collection", or a property name without "properties."
    desc: bool = False


DEFAULT_SORT = (SortKey("datetime", True),)
TIE_BREAK = (SortKey("collection"), SortKey("id"))


def _field(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter("a sort field must be a non-empty string")
    field = property_name(name.strip())
    if field in _UNSORTABLE or not field:
        raise InvalidParameter(f"cannot sort by {name!r}")
    return field


MAX_SORT_KEYS = 16


def _bounded(keys: list[SortKey]) -> tuple[SortKey, ...]:
    if not keys:
        raise InvalidParameter("sortby is empty")
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidParameter(f"sortby has more than {MAX_SORT_KEYS} fields")
    return tuple(keys)


def parse_sort_get(value: str) -> tuple[SortKey, ...]:
    keys = []
    for part in value.split(","):
        if not part.strip():
            continue
        # A "+" in a query string often arrives decoded as a space: both mean ascending.
        desc = part.lstrip().startswith("-")
        keys.append(SortKey(_field(part.strip().lstrip("+-")), desc))
    return _bounded(keys)


def parse_sort_post(value: Any) -> tuple[SortKey, ...]:
    if isinstance(value, str):
        return parse_sort_get(value)
    if not isinstance(value, list) or not value:
        raise InvalidParameter('sortby must be a non-empty array of {"field", "direction"} objects')
    keys = []
    for entry in value:
        if not isinstance(entry, dict) or "field" not in entry:
            raise InvalidParameter('each sortby entry needs a "field"')
        direction = entry.get("direction", "asc")
        if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise InvalidParameter('sortby direction must be "asc" or "desc"')
        keys.append(SortKey(_field(entry["field"]), direction.lower() == "desc"))
    return _bounded(keys)


# -- columns ------------------------------------------------------------------------------
class Column:
    """One sort key over the parts' tables; global row = part offset (the rows of the parts before it)
    + table row.

    Values are gathered only for the rows asked for: tie-breaker keys are read for the few
    rows still tied, not for every match.
    """

    def __init__(self, field: str, kind: str, desc: bool, tables: Sequence[Table]) -> None:
        self.field, self.kind, self.desc = field, kind, desc
        self.tables = tables
        self.offsets = np.cumsum([0] + [t.n for t in tables])

    def _view(self, t: Table) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "bool":
            vals, ok = t.view(self.field, "bool")
            return vals.astype(np.float64), ok
        return t.view(self.field, self.kind)

    def _split(self, idx: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(part, table rows) for ascending global ``idx``."""
        cuts = np.searchsorted(idx, self.offsets)
        return [(p, idx[cuts[p]:cuts[p + 1]] - self.offsets[p]) for p in range(len(self.tables))
                if cuts[p + 1] > cuts[p]]

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals, oks = [], []
        for p, local in self._split(idx):
            t = self.tables[p]
            if self.kind == "str" and self.field in ("id", "collection"):  # tie-breakers: no column of every row
                names = t.id_list if self.field == "id" else t.coll_list
                picked = [names[r] for r in local.tolist()]
                vals.append(np.array(picked, dtype=str) if picked else np.zeros(0, dtype="U1"))
                oks.append(np.ones(len(picked), dtype=bool))
                continue
            v, ok = self._view(t)
            vals.append(v[local])
            oks.append(ok[local])
        if not vals:
            return (np.zeros(0, dtype="U1") if self.kind == "str" else np.zeros(0)), np.zeros(0, dtype=bool)
        return np.concatenate(vals), np.concatenate(oks)

    def global_rows(self, p: int, local: np.ndarray) -> np.ndarray:
        """Ascending global rows of table rows ``local`` of part ``p``."""
        return self.offsets[p] + np.sort(local)

    def cursor_value(self, i: int) -> Any:
        vals, ok = self.take(np.array([i]))
        if not ok[0]:
            return None
        return str(vals[0]) if self.kind == "str" else float(vals[0])


def _column_kind(tables: Sequence[Table], field: str) -> str:
    kinds = {kind for t in tables if t.n and (kind := t.kind_of(field)) is not None}
    if len(kinds) == 1:
        return kinds.pop()
    return "str" if not kinds or "str" in kinds else "num"


def columns(parts: Sequence[tuple[Table, int]], keys: Sequence[SortKey]) -> list[Column]:
    """Sort columns for ``parts`` = (table, how many of its rows match), in part order."""
    tables = [t for t, _ in parts]
    matched = [t for t, count in parts if count]
    return [Column(key.field, _column_kind(matched, key.field), key.desc, tables) for key in keys]


def _check(col: Column, c: Any) -> None:
    if c is not None and ((col.kind == "str") != isinstance(c, str) or isinstance(c, bool)):
        raise InvalidParameter("token does not match this search")


def compare_to(cols: Sequence[Column], cursor: Sequence[Any], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(after, equal) masks of ascending global rows ``idx`` relative to the cursor row in the sort order."""
    after = np.zeros(len(idx), dtype=bool)
    tied = np.arange(len(idx))
    for col, c in zip(cols, cursor):
        _check(col, c)
        vals, ok = col.take(idx[tied])
        if c is None:  # nulls sort last ascending
            gt = np.zeros(len(tied), dtype=bool)
            eq = ~ok
        else:
            with np.errstate(invalid="ignore"):
                gt = ~ok | (ok & (vals > c))
                eq = ok & (vals == c)
        if col.desc:
            gt = ~gt & ~eq
        after[tied[gt]] = True
        tied = tied[eq]
        if not len(tied):
            break
    equal = np.zeros(len(idx), dtype=bool)
    equal[tied] = True
    return after, equal


def _members(seq: np.ndarray, member: np.ndarray, need: int, budget: int) -> np.ndarray | None:
    """The first ``need`` rows of ``seq`` that are members (fewer if it has fewer), probing growing prefixes;
    None once over ``budget`` rows probed without them."""
    end = min(len(seq), max(2 * need, 64))
    while True:
        head = seq[:end]
        hits = head[member[head]]
        if len(hits) >= need or end == len(seq):
            return hits[:need]
        if end >= budget:
            return None
        end = min(len(seq), end * 4)


def page(cols: Sequence[Column], masks: Sequence[np.ndarray], cursor: Sequence[Any] | None, k: int, *,
         backward: bool = False, counts: Sequence[int] | None = None) -> tuple[np.ndarray, bool, bool]:
    """The first ``k`` matched rows after ``cursor`` in sort order (``backward``: the last ``k`` before it,
    still in order) as global rows, whether more rows lie beyond them, and whether any matched row lies
    on the cursor's other side (or at it).

    ``masks`` are the parts' matched rows as masks (``counts``: how many each holds). Each part's cached
    order on the first key is entered at the cursor by binary search and walked from there: a page costs
    about its size, not the matches. Where the walk would cross much of the order (few matches, or
    matches far from the cursor: a filter on the sort key), they are taken from the mask instead."""
    first = cols[0]
    if cursor is not None:
        _check(first, cursor[0])
    if counts is None:
        counts = [int(np.count_nonzero(m)) for m in masks]
    picks: list[np.ndarray] = []
    skipped = False
    for p, (t, member, count) in enumerate(zip(first.tables, masks, counts)):
        if not count:
            continue
        up = backward == first.desc  # walks towards higher ranks
        got = None if count < WALK_FEW * (k + 1) else _walk(cols, p, member, cursor, k, up, backward)
        if got is None:
            got = _few(cols, p, np.flatnonzero(member), cursor, k, up, backward)
        picks.append(got[0])
        skipped = skipped or got[1]
    rows = np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.intp)
    ranked = order(cols, rows, k + 1, last=backward)
    return (ranked[-k:] if backward else ranked[:k]), len(ranked) > k, skipped


WALK_FEW = 8  # fewer matches than this many pages' worth: the walk would cross over 1/8 of the order
WALK_SHARE = 8  # a walk given up past 1/8 of the order (the matches lie far from the cursor)


def _walk(cols: Sequence[Column], p: int, member: np.ndarray, cursor: Sequence[Any] | None, k: int, up: bool,
          backward: bool) -> tuple[np.ndarray, bool] | None:
    """Part ``p``'s candidates for the page, from its order on the first key entered at the cursor: rows tied
    with the cursor that later keys put past it, then the next ``k + 1`` matches and every row tied with
    the last; and whether any matched row is not past the cursor. None once the walk crosses 1/8 of the
    order without them."""
    first = cols[0]
    t = first.tables[p]
    budget = max(1, t.n // WALK_SHARE)
    order_, ranks = t.sort_order(first.field, first.kind)
    if cursor is None:
        lo = hi = 0 if up else t.n
    else:
        lo, hi = t.rank_span(first.field, first.kind, cursor[0])
    ahead, behind = (order_[hi:], order_[:lo][::-1]) if up else (order_[:lo][::-1], order_[hi:])
    tied = order_[lo:hi]
    tied = first.global_rows(p, tied[member[tied]])
    picks, skipped = [], False
    if cursor is not None and len(tied):  # rows equal to the cursor on the first key: later keys decide
        after, equal = compare_to(cols, cursor, tied)
        keep = ~after & ~equal if backward else after
        skipped = not keep.all()
        tied = tied[keep]
        picks.append(tied)
    need = k + 1 - len(tied)  # one row past the page tells whether there are more
    if need > 0:
        hits = _members(ahead, member, need, budget)
        if hits is None:
            return None
        if len(hits) == need:  # rows tied with the last one are contiguous in the order: take them all
            r = t.rank(first.field, first.kind)[hits[-1]]
            hits = order_[hi:np.searchsorted(ranks, r, side="right")] if up else \
                order_[np.searchsorted(ranks, r, side="left"):lo]
            hits = hits[member[hits]]
        picks.append(first.global_rows(p, hits))
    if not skipped:
        before = _members(behind, member, 1, budget)
        if before is None:
            return None
        skipped = len(before) > 0
    return (np.concatenate(picks) if picks else np.zeros(0, dtype=np.intp)), skipped


def _few(cols: Sequence[Column], p: int, rows: np.ndarray, cursor: Sequence[Any] | None, k: int, up: bool,
         backward: bool) -> tuple[np.ndarray, bool]:
    """What the walk of ``page`` finds in part ``p`` (its matched table ``rows``, ascending), from the rows
    themselves: those past the cursor, then the ``k + 1`` first of them on the first key with every row
    tied with the last (later keys order them); and whether any matched row is not past the cursor."""
    first = cols[0]
    rows = first.offsets[p] + rows
    skipped = False
    if cursor is not None:
        after, equal = compare_to(cols, cursor, rows)
        keep = ~after & ~equal if backward else after
        skipped = not keep.all()
        rows = rows[keep]
    if len(rows) > k + 1:
        t = first.tables[p]
        ranks = t.rank(first.field, first.kind)[rows - first.offsets[p]]
        if not up:
            ranks = -ranks
        edge = np.partition(ranks, k)[k]  # the (k + 1)-th on the first key: keep it and its ties
        rows = rows[ranks <= edge]
    return rows, skipped


def order(cols: Sequence[Column], rows: np.ndarray, k: int, *, last: bool = False) -> np.ndarray:
    """The first ``k`` of ascending ``rows`` in sort order (``last``: the final ``k``, still in order).
    A key is read only for the rows the keys before it leave tied (ids and collections, the tie-breakers,
    are strings read one by one): the others' value for it is a placeholder that cannot move them."""
    if not len(rows):
        return rows
    n = len(rows)
    keys: list[np.ndarray] = []  # primary first
    need: np.ndarray = np.arange(n)
    for col in cols:
        vals, ok = col.take(rows[need])
        if col.kind == "str":
            vals = np.unique(vals, return_inverse=True)[1].astype(np.float64)
        else:
            vals = np.where(ok, vals, 0.0)
        sign = -1 if col.desc else 1
        nulls, values = np.zeros(n, dtype=np.int8), np.zeros(n)
        nulls[need] = sign * (~ok).astype(np.int8)
        values[need] = sign * vals
        keys.extend([nulls, values])
        ranked = np.lexsort(keys[::-1])  # np.lexsort: the last key is the primary one
        same = np.ones(n - 1, dtype=bool)
        for key in keys:
            same &= key[ranked[1:]] == key[ranked[:-1]]
        tied = np.zeros(n, dtype=bool)
        tied[ranked[1:][same]] = True
        tied[ranked[:-1][same]] = True
        need = np.flatnonzero(tied)
        if not len(need):
            break
    ranked = rows[ranked]
    return ranked[-k:] if last else ranked[:k]


# -- tokens -----------------------------------------------------------------------------------
# A cursor holds one value per sort key, and a sort key may be a long string property: tokens we hand
# out are as long as they need (only a request's own size bounds them); decoding is linear.
MAX_TOKEN_CHARS = MAX_BODY_BYTES


def encode_token(direction: str, cursor: list[Any]) -> str:
    raw = json.dumps({"d": direction, "k": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[str, list[Any]]:
    """(direction, cursor) of a token made by ``encode_token``; InvalidParameter for anything else,
    including cursors holding values no sort column has (objects, arrays, booleans, non-finite numbers)."""
    invalid = InvalidParameter("invalid pagination token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        doc = load_json(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), what="token", max_depth=2)
    except (InputBoundError, ValueError):  # ValueError: not base64 (binascii.Error), not ASCII
        raise invalid from None
    if not isinstance(doc, dict) or doc.get("d") not in ("next", "prev") or not isinstance(doc.get("k"), list):
        raise invalid
    cursor = [_cursor_value(v) for v in doc["k"]]
    if not cursor or any(v is _BAD for v in cursor):
        raise invalid
    return doc["d"], cursor


_BAD = object()


def _cursor_value(v: Any) -> Any:
    """``v`` as a sort column compares it (a number as a float), or ``_BAD``."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 2 ** 53:
        return float(v)
    if isinstance(v, float) and math.isfinite(v):
        return v
    return _BAD
