"""Sort extension and keyset pagination: ordering on (sort keys..., collection, id).

Tokens hold the sort-key values of the row a page ends (or starts) at, so the next page is
"rows after that row in this order": correct while items are added, unlike offsets.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

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


def parse_sort_get(value: str) -> tuple[SortKey, ...]:
    keys = []
    for part in value.split(","):
        if not part.strip():
            continue
        # A "+" in a query string often arrives decoded as a space: both mean ascending.
        desc = part.lstrip().startswith("-")
        keys.append(SortKey(_field(part.strip().lstrip("+-")), desc))
    if not keys:
        raise InvalidParameter("sortby is empty")
    return tuple(keys)


def parse_sort_post(value: Any) -> tuple[SortKey, ...]:
    if isinstance(value, str):
        return parse_sort_get(value)
    if not isinstance(value, list) or not value:
        raise InvalidParameter('sortby must be a non-empty array of {"field", "direction"} objects')
    keys = []
    for entry in value:
        if not isinstance(entry, dict) or "field" not in entry:
            raise InvalidParameter('each sortby entry needs a "field"')
        direction = str(entry.get("direction", "asc")).lower()
        if direction not in ("asc", "desc"):
            raise InvalidParameter('sortby direction must be "asc" or "desc"')
        keys.append(SortKey(_field(entry["field"]), direction == "desc"))
    return tuple(keys)


# -- columns ------------------------------------------------------------------------------
class Column:
    """One sort key over the matched rows of all parts; global row = part offset + position.

    Values are gathered only for the rows asked for: tie-breaker keys are read for the few
    rows still tied, not for every match.
    """

    def __init__(self, field: str, kind: str, desc: bool, parts: Sequence[tuple[Table, np.ndarray]]) -> None:
        self.field, self.kind, self.desc = field, kind, desc
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(rows) for _, rows in parts])

    def _view(self, t: Table) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "bool":
            vals, ok = t.view(self.field, "bool")
            return vals.astype(np.float64), ok
        return t.view(self.field, self.kind)

    def _split(self, idx: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(part, local rows) for ascending global ``idx``."""
        cuts = np.searchsorted(idx, self.offsets)
        out = []
        for p, (_, rows) in enumerate(self.parts):
            if cuts[p + 1] == cuts[p]:
                continue
            whole = cuts[p + 1] - cuts[p] == len(rows)  # ``idx`` is unique and ascending
            out.append((p, rows if whole else rows[idx[cuts[p]:cuts[p + 1]] - self.offsets[p]]))
        return out

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals, oks = [], []
        for p, local in self._split(idx):
            v, ok = self._view(self.parts[p][0])
            vals.append(v[local])
            oks.append(ok[local])
        if not vals:
            return (np.zeros(0, dtype="U1") if self.kind == "str" else np.zeros(0)), np.zeros(0, dtype=bool)
        return np.concatenate(vals), np.concatenate(oks)

    def cursor_value(self, i: int) -> Any:
        vals, ok = self.take(np.array([i]))
        if not ok[0]:
            return None
        return str(vals[0]) if self.kind == "str" else float(vals[0])

    def preselect(self, idx: np.ndarray, k: int, last: bool) -> np.ndarray:
        """A subset of ascending ``idx`` sure to hold its first (or last) ``k`` rows in sort order."""
        keep = []
        for p, local in self._split(idx):
            start = np.searchsorted(idx, self.offsets[p])
            chunk = idx[start:start + len(local)]
            if len(local) <= k:
                keep.append(chunk)
                continue
            picked = _first_k(self.parts[p][0], self.field, self.kind, local, k, backward=self.desc != last)
            keep.append(chunk[np.searchsorted(local, picked)])  # ``local`` ascends, as ``idx`` does
        return np.concatenate(keep) if keep else idx


def _first_k(table: Table, field: str, kind: str, local: np.ndarray, k: int, *, backward: bool) -> np.ndarray:
    """The rows of ``local`` (ascending) ranking first on ``field`` (last if ``backward``), ties at the
    k-th included, ascending: walks the table's cached order instead of partitioning every match."""
    order, ranks = table.sort_order(field, kind)
    member = np.zeros(table.n, dtype=bool)
    member[local] = True
    walk = order[::-1] if backward else order
    pos, step, found = 0, 2 * k, 0
    while found < k and pos < len(walk):
        found += int(member[walk[pos:pos + step]].sum())
        pos, step = pos + step, step * 2
    head = walk[:pos]
    kth = table.rank(field, kind)[head[member[head]][k - 1]]
    # Rows tied with the k-th are contiguous in the order: take them all (later keys decide).
    span = order[np.searchsorted(ranks, kth, side="left"):] if backward else \
        order[:np.searchsorted(ranks, kth, side="right")]
    return np.sort(span[member[span]])


def _column_kind(tables: Sequence[Table], field: str) -> str:
    kinds = {kind for t in tables if t.n and (kind := t.kind_of(field)) is not None}
    if len(kinds) == 1:
        return kinds.pop()
    return "str" if not kinds or "str" in kinds else "num"


def columns(parts: Sequence[tuple[Table, np.ndarray]], keys: Sequence[SortKey]) -> list[Column]:
    """Sort columns for ``parts`` = (table, matched rows), in part order."""
    tables = [t for t, rows in parts if len(rows)]
    return [Column(key.field, _column_kind(tables, key.field), key.desc, parts) for key in keys]


def compare_to(cols: Sequence[Column], cursor: Sequence[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(after, equal) masks of the ``n`` rows relative to the cursor row in the sort order."""
    after = np.zeros(n, dtype=bool)
    tied = np.arange(n)
    for col, c in zip(cols, cursor):
        vals, ok = col.take(tied)
        if c is None:  # nulls sort last ascending
            gt = np.zeros(len(tied), dtype=bool)
            eq = ~ok
        else:
            if (col.kind == "str") != isinstance(c, str) or isinstance(c, bool):
                raise InvalidParameter("token does not match this search")
            with np.errstate(invalid="ignore"):
                gt = ~ok | (ok & (vals > c))
                eq = ok & (vals == c)
        if col.desc:
            gt = ~gt & ~eq
        after[tied[gt]] = True
        tied = tied[eq]
        if not len(tied):
            break
    equal = np.zeros(n, dtype=bool)
    equal[tied] = True
    return after, equal


def order(cols: Sequence[Column], rows: np.ndarray, k: int, *, last: bool = False) -> np.ndarray:
    """The first ``k`` of ascending ``rows`` in sort order (``last``: the final ``k``, still in order)."""
    if len(rows) > 4 * k + 256:
        rows = cols[0].preselect(rows, k, last)
    if not len(rows):
        return rows
    keys = []
    for col in cols:
        vals, ok = col.take(rows)
        if col.kind == "str":
            vals = np.unique(vals, return_inverse=True)[1].astype(np.float64)
        else:
            vals = np.where(ok, vals, 0.0)
        sign = -1 if col.desc else 1
        keys.extend([sign * (~ok).astype(np.int8), sign * vals])
    ranked = rows[np.lexsort(keys[::-1])]  # np.lexsort: the last key is the primary one
    return ranked[-k:] if last else ranked[:k]


# -- tokens -----------------------------------------------------------------------------------
def encode_token(direction: str, cursor: list[Any]) -> str:
    raw = json.dumps({"d": direction, "k": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[str, list[Any]]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        direction, cursor = doc["d"], doc["k"]
        if direction not in ("next", "prev") or not isinstance(cursor, list):
            raise ValueError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InvalidParameter("invalid pagination token") from None
    return direction, cursor
