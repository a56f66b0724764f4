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
@dataclass
class Column:
    """One sort key's values over the matched rows: values (float or str), valid mask, direction."""

    kind: str  # "num" or "str"
    values: np.ndarray
    ok: np.ndarray
    desc: bool

    def cursor_value(self, i: int) -> Any:
        if not self.ok[i]:
            return None
        v = self.values[i]
        return float(v) if self.kind == "num" else str(v)


def _column_kind(tables: Sequence[Table], field: str) -> str:
    kinds = {t.kind_of(field) for t in tables if t.n} - {None}
    if len(kinds) == 1:
        return kinds.pop()  # type: ignore[no-any-return]
    return "str" if not kinds or "str" in kinds else "num"


def columns(parts: Sequence[tuple[Table, np.ndarray]], keys: Sequence[SortKey]) -> list[Column]:
    """Sort columns for ``parts`` = (table, matched rows), concatenated in part order."""
    tables = [t for t, _ in parts]
    out = []
    for key in keys:
        kind = _column_kind(tables, key.field)
        vals, oks = [], []
        for t, rows in parts:
            if kind == "bool":
                v, ok = t.view(key.field, "bool")
                v = v.astype(np.float64)
            else:
                v, ok = t.view(key.field, kind)
            vals.append(v[rows])
            oks.append(ok[rows])
        values = np.concatenate(vals) if vals else np.zeros(0)
        ok = np.concatenate(oks) if oks else np.zeros(0, dtype=bool)
        out.append(Column("str" if kind == "str" else "num", values, ok, key.desc))
    return out


def compare_to(cols: Sequence[Column], cursor: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(after, equal) masks of each row relative to the cursor row in the sort order."""
    n = len(cols[0].values) if cols else 0
    after = np.zeros(n, dtype=bool)
    equal = np.ones(n, dtype=bool)
    for col, c in zip(cols, cursor):
        if c is None:  # nulls sort last ascending
            gt = np.zeros(n, dtype=bool)
            eq = ~col.ok
        else:
            if (col.kind == "num") != isinstance(c, (int, float)) or isinstance(c, bool):
                raise InvalidParameter("token does not match this search")
            with np.errstate(invalid="ignore"):
                gt = ~col.ok | (col.ok & (col.values > c))
                eq = col.ok & (col.values == c)
        if col.desc:
            gt = ~gt & ~eq
        after |= equal & gt
        equal &= eq
    return after, equal


def _lexsort_keys(cols: Sequence[Column], rows: np.ndarray) -> list[np.ndarray]:
    keys = []
    for col in cols:
        ok = col.ok[rows]
        vals = col.values[rows]
        if col.kind == "str":
            vals = np.unique(vals, return_inverse=True)[1].astype(np.float64)
        else:
            vals = np.where(ok, vals, 0.0)
        null = (~ok).astype(np.int8)
        sign = -1 if col.desc else 1
        keys.extend([sign * null, sign * vals])
    return keys[::-1]  # np.lexsort: last key is primary


def _primary(col: Column, rows: np.ndarray) -> np.ndarray | None:
    if col.kind != "num":
        return None
    vals = np.where(col.ok[rows], col.values[rows], math.inf)
    return -vals if col.desc else vals


def order(cols: Sequence[Column], rows: np.ndarray, k: int, *, last: bool = False) -> np.ndarray:
    """The first ``k`` of ``rows`` in sort order (``last``: the final ``k``, still in order)."""
    if len(rows) > 4 * k + 256:
        # Preselect with a partition on the (numeric) primary key; ties at the cut stay in.
        pk = _primary(cols[0], rows)
        if pk is not None:
            if last:
                cut = np.partition(pk, len(pk) - k)[len(pk) - k]
                rows = rows[pk >= cut]
            else:
                cut = np.partition(pk, k - 1)[k - 1]
                rows = rows[pk <= cut]
    ranked = rows[np.lexsort(_lexsort_keys(cols, rows))] if len(rows) else rows
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
