"""Table: the cached sort order and the binary search a paging cursor enters it by."""
from __future__ import annotations

import pytest

from chalicelib.stac.table import Record, Table


def table_of(values: list[object]) -> Table:
    return Table.from_records([Record("c", str(i), 1, "log", {"properties": {"v": v}}) for i, v in enumerate(values)])


@pytest.mark.parametrize("value,span", [
    ("a", (1, 1)), ("b", (1, 2)), ("c", (2, 2)), ("d", (2, 4)), ("e", (4, 4)), ("", (0, 1)), (None, (4, 6)),
])
def test_rank_span_of_strings(value: str | None, span: tuple[int, int]) -> None:
    t = table_of(["d", "b", None, "d", "", 7])  # 7 is no string: null in the string view
    order, _ = t.sort_order("v", "str")
    assert t.rank_span("v", "str", value) == span
    assert sorted(map(repr, (t.values("v")[r] for r in order[span[0]:span[1]]))) == \
        sorted(map(repr, [None, 7] if value is None else [value] * (span[1] - span[0])))


@pytest.mark.parametrize("value,span", [(0.5, (0, 0)), (1.0, (0, 2)), (2.0, (2, 2)), (3.5, (2, 3)), (9.0, (3, 3)),
                                        (None, (3, 5))])
def test_rank_span_of_numbers(value: float | None, span: tuple[int, int]) -> None:
    t = table_of([1, None, 3.5, 1.0, "x"])
    assert t.rank_span("v", "num", value) == span
