"""Input bounds shared by the STAC and MLflow surfaces (chalicelib/bounds.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import bounds
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


def _shape(value: Any) -> Any:
    """``value`` with its types spelled out: 1 and 1.0, 0.0 and -0.0, NaN and NaN compare as they read."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [(k, _shape(v)) for k, v in value.items()]}
    return ("str", value)


def _as_json_reads(raw: bytes | str, max_depth: int) -> Any:
    """What ``load_json`` answers by the rule it keeps: ``json.loads``, then the walk of ``check_depth``."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return "deep"
    except (ValueError, UnicodeDecodeError):
        return "not JSON"
    try:
        check_depth(value, max_depth=max_depth)
    except InputBoundError:
        return "deep"
    return _shape(value)


def _as_load_json_reads(raw: bytes | str, max_depth: int) -> Any:
    try:
        return _shape(load_json(raw, max_bytes=None, max_depth=max_depth))
    except InputBoundError as err:
        return "deep" if "nested deeper" in str(err) else "not JSON"


_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats() | st.text(alphabet=st.characters(codec=None) | st.sampled_from('[]{}"\\,:')))
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(alphabet='ab[]{}"\\\u00e9', max_size=3), kids, max_size=4),
                       max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(value=_values, ascii_only=st.booleans(), as_text=st.booleans(), max_depth=st.integers(0, 8),
       cut=st.none() | st.integers(0, 200), insert=st.sampled_from(["", "[", "]", "{", '"', "\\", ",", "1e999", "\ud800"]))
def test_load_json_reads_what_json_reads_and_refuses_the_same_depths(
        value: Any, ascii_only: bool, as_text: bool, max_depth: int, cut: int | None, insert: str) -> None:
    """orjson first and the depth check from the text (both C speed) read every document, valid or
    spoiled (a character inserted), as ``json.loads`` and the walk of its value do: the same value and
    types (big integers stay integers, NaN and infinities read), the same refusals."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    if cut is not None:
        text = text[:cut % (len(text) + 1)] + insert + text[cut % (len(text) + 1):]
    raw: bytes | str = text if as_text else text.encode("utf-8", "surrogatepass")
    assert _as_load_json_reads(raw, max_depth) == _as_json_reads(raw, max_depth)


@given(raw=st.binary(max_size=60), max_depth=st.integers(0, 4))
def test_load_json_reads_any_bytes_as_json_reads_them(raw: bytes, max_depth: int) -> None:
    assert _as_load_json_reads(raw, max_depth) == _as_json_reads(raw, max_depth)


def test_a_large_utf8_body_is_read_and_depth_checked_at_c_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log-batch of 500 metrics (~40 KB, 500 objects): neither ``json``'s reader nor the Python walk
    of its value (~1.3 ms together here, of a ~10 ms request); a body orjson would read differently
    (NaN) still goes to ``json``."""
    metrics = [{"key": f"m{k}", "value": 1 / (s + 1), "timestamp": 1_700_000_000_000 + s, "step": s}
               for k in range(5) for s in range(100)]
    body = json.dumps({"run_id": "a" * 32, "metrics": metrics}).encode()

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the slow path")
    monkeypatch.setattr(bounds.json, "loads", refused)
    monkeypatch.setattr(bounds, "check_depth", refused)
    assert load_json(body)["metrics"] == metrics
    with pytest.raises(InputBoundError, match="nested deeper than 100"):
        load_json(b'{"a": "[", "b": ' + b"[" * 100 + b"]" * 100 + b"}")
    with pytest.raises(AssertionError, match="the slow path"):
        load_json(body.replace(b"1.0,", b"NaN,", 1))


@pytest.mark.parametrize("raw", [b"[18446744073709551616]", b"[-9223372036854775809]", "[123456789012345678901234567890]"])
def test_an_integer_beyond_64_bits_stays_an_integer(raw: bytes | str) -> None:
    """orjson would read it as a float; ``json`` keeps it an integer (a step or timestamp out of range
    is then refused as MLflow refuses it, not rounded)."""
    assert _shape(load_json(raw)) == _shape(json.loads(raw))
