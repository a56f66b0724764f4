"""Input bounds shared by the STAC and MLflow surfaces (chalicelib/bounds.py)."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.bounds import MAX_BODY_BYTES, MAX_JSON_DEPTH, InputBoundError, check_depth, load_json


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def test_load_json_within_bounds() -> None:
    assert load_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert load_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert load_json('"' + "é" * 100 + '"', max_bytes=202) == "é" * 100  # bytes, not characters
    with pytest.raises(InputBoundError):
        load_json('"' + "é" * 100 + '"', max_bytes=201)


@pytest.mark.parametrize("raw,message", [
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper than 100 levels"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 100 levels"),  # json's RecursionError
    (b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}', "over the limit of 6291456"),
    (b"{oops", "not JSON"), (b"\xff\xfe\x00", "not JSON"),
])
def test_load_json_refusals(raw: bytes, message: str) -> None:
    with pytest.raises(InputBoundError, match=message):
        load_json(raw)


def test_check_depth_is_iterative_and_counts_objects() -> None:
    with pytest.raises(InputBoundError, match="nested deeper than 5"):
        check_depth(_nested(100_000), max_depth=5)  # no RecursionError while checking
    check_depth(_nested(10), max_depth=10)
    with pytest.raises(InputBoundError, match="more than 3 objects"):
        check_depth([{}, {}, {"a": {}}], max_objects=3)
