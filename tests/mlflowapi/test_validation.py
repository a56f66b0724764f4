"""The typed request-field accessor: any JSON value gives the declared type or MLflow's 400, nothing else."""
from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.mlflowapi import validation as v
from chalicelib.mlflowapi.errors import MlflowError

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except MlflowError as err:
        assert err.error_code == "INVALID_PARAMETER_VALUE"
        assert err.status == 400
        assert len(err.message) < 400  # the rejected value is echoed, but truncated
        return err


@settings(max_examples=300, deadline=None)
@given(value=JSON)
def test_every_accessor_returns_its_type_or_rejects(value: Any) -> None:
    f = v.Fields({"f": value})
    checks = {
        "string": lambda r: isinstance(r, str),
        "integer": lambda r: isinstance(r, int) and not isinstance(r, bool),
        "number": lambda r: isinstance(r, float),
        "boolean": lambda r: isinstance(r, bool),
        "strings": lambda r: isinstance(r, list) and all(isinstance(x, str) for x in r),
        "objects": lambda r: isinstance(r, list) and all(isinstance(x, v.Fields) for x in r),
        "object": lambda r: isinstance(r, v.Fields),
    }
    for accessor, ok in checks.items():
        got = _call(getattr(f, accessor), "f")
        assert got is None or isinstance(got, MlflowError) or ok(got), (accessor, value, got)
    got = _call(f.enum, "f", v.RUN_STATUS)
    assert got is None or isinstance(got, MlflowError) or got in v.RUN_STATUS


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["key", "value", "timestamp", "step", "model_id", "dataset_name",
                                            "dataset_digest"]), JSON))
def test_metric_param_tag_and_dataset_validators_never_raise_anything_else(doc: dict[str, Any]) -> None:
    f = v.Fields(doc, "metrics[0].")
    metric = _call(v.metric, f)
    if not isinstance(metric, MlflowError):
        key, value, ts, step, model_id, ds_name, ds_digest = metric
        assert isinstance(key, str)
        assert isinstance(value, float)
        assert isinstance(ts, int)
        assert isinstance(step, int)
        assert all(x is None or isinstance(x, str) for x in (model_id, ds_name, ds_digest))
        assert ts >= 0
        assert math.isnan(value) or isinstance(value, float)
    for fn in (v.param, v.tag):
        got = _call(fn, f)
        assert isinstance(got, MlflowError) or all(isinstance(x, str) for x in got)
    got = _call(v.dataset_input, v.Fields({"dataset": doc, "tags": [doc]}))
    assert isinstance(got, (MlflowError, dict))


def _outcome(fn: Any, f: v.Fields) -> Any:
    got = _call(fn, f)
    return ("error", got.message) if isinstance(got, MlflowError) else ("ok", repr(got))


METRIC_DOC = st.fixed_dictionaries({}, optional={
    "key": st.sampled_from(["m", "loss", "", "a/../b"]) | JSON,
    "value": st.floats() | st.integers() | JSON, "timestamp": st.integers(min_value=-5) | JSON,
    "step": st.integers() | JSON, "model_id": st.text(max_size=3) | JSON,
    "dataset_name": st.text(max_size=3) | JSON, "dataset_digest": st.text(max_size=3) | JSON})


@settings(max_examples=400, deadline=None)
@given(doc=METRIC_DOC)
@example(doc={"key": "m", "value": 1.0, "timestamp": 1, "model_id": "x"})  # four fields, the fourth not the step
@example(doc={"key": "m", "value": 1, "timestamp": 1, "step": 2, "dataset_name": "d"})
def test_a_metrics_inline_check_agrees_with_the_field_by_field_one(doc: dict[str, Any]) -> None:
    v.name("m", "key", "Metric")  # a key seen before: the inline check applies to it
    v.name("loss", "key", "Metric")
    f = v.Fields(doc, "metrics[0].")
    assert _outcome(v.metric, f) == _outcome(v.checked_metric, f)


@settings(max_examples=300, deadline=None)
@given(docs=st.lists(METRIC_DOC | st.fixed_dictionaries({
    "key": st.sampled_from(["m", "loss"]), "value": st.floats() | st.integers(), "timestamp": st.integers(min_value=-2),
    "step": st.none() | st.integers()}), max_size=4), wrapped=st.booleans())
def test_a_batchs_inline_check_agrees_with_the_field_by_field_one(docs: list[dict[str, Any]], wrapped: bool) -> None:
    """``metrics`` (a whole batch, as the route hands it: the message's own dicts, or ``Fields``) gives
    what checking each metric field by field gives, or the same first error."""
    v.name("m", "key", "Metric")
    v.name("loss", "key", "Metric")
    given_docs = [v.Fields(d, f"metrics[{i}].") for i, d in enumerate(docs)] if wrapped else docs

    def one_by_one() -> list[list[Any]]:
        return [v.checked_metric(v.Fields(d, f"metrics[{i}].")) for i, d in enumerate(docs)]
    got, expected = _call(v.metrics, given_docs), _call(one_by_one)
    shown = [("error", x.message) if isinstance(x, MlflowError) else ("ok", repr(x)) for x in (got, expected)]
    assert shown[0] == shown[1]


@pytest.mark.parametrize("value,expected", [("7", 7), (7, 7), (7.0, 7), ("-3", -3)])
def test_int64_accepts_proto_json_spellings(value: Any, expected: int) -> None:
    assert v.Fields({"n": value}).integer("n") == expected


@pytest.mark.parametrize("value", [True, 7.5, "7.5", "", " ", {}, [], "seven"])
def test_int64_rejects_everything_else(value: Any) -> None:
    with pytest.raises(MlflowError, match="'n'"):
        v.Fields({"n": value}).integer("n")


def test_enum_by_name_or_number() -> None:
    assert v.Fields({"s": 3}).enum("s", v.RUN_STATUS) == "FINISHED"
    assert v.Fields({"s": "3"}).enum("s", v.RUN_STATUS) == "FINISHED"
    assert v.Fields({"s": "KILLED"}).enum("s", v.RUN_STATUS) == "KILLED"
    for bad in (9, "DANCING", {}, [], True):
        with pytest.raises(MlflowError):
            v.Fields({"s": bad}).enum("s", v.RUN_STATUS)
