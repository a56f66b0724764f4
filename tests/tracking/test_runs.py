"""Run records: how entries fold into a run's state."""
from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.tracking.runs import _newer, apply_entry, latest_only

RECORD = st.tuples(st.floats(allow_nan=True) | st.sampled_from([math.nan, 0.0, 1.0]),
                   st.integers(0, 3), st.integers(-1, 2)).map(list)


def _mlflow_order(rec: list[Any]) -> tuple[Any, ...]:
    """MLflow's latest value: the greatest (step, timestamp, value), NaN the largest value."""
    return rec[2], rec[1], math.inf if math.isnan(rec[0]) else rec[0]


@settings(max_examples=400, deadline=None)
@given(mine=RECORD, theirs=RECORD)
def test_a_metric_is_newer_as_mlflows_step_timestamp_value_order_says(mine: list[Any], theirs: list[Any]) -> None:
    assert _newer(mine, theirs) == (_mlflow_order(mine) >= _mlflow_order(theirs))
    assert _newer(["k", *mine], ["k", *theirs], at=1, latest_at=1) == _newer(mine, theirs)
    assert _newer(["k", *mine], theirs, at=1) == _newer(mine, theirs)


@settings(max_examples=200, deadline=None)
@given(records=st.lists(st.tuples(st.sampled_from(["a", "b"]), RECORD), max_size=8))
def test_a_batch_folds_to_each_keys_latest_and_keeps_its_whole_history(records: list[tuple[str, list[Any]]]) -> None:
    metrics = [[key, *rec, None, None, None] for key, rec in records]
    runs: dict[str, Any] = {}
    apply_entry(runs, {"run": "r", "create": {"run_id": "r"}}, history=True)
    apply_entry(runs, {"run": "r", "metrics": metrics}, history=True)
    expected = {}
    for key, rec in records:
        if key not in expected or _mlflow_order(rec) >= _mlflow_order(expected[key]):
            expected[key] = rec
    assert repr(runs["r"]["metrics"]) == repr(expected)
    assert repr(runs["r"]["history"]) == repr({key: [m[1:] for m in metrics if m[0] == key]
                                               for key in dict.fromkeys(k for k, _ in records)})
    assert repr({m[0]: m[1:4] for m in latest_only({"metrics": metrics}).get("metrics", [])}) == repr(
        expected if len(metrics) > 1 else {m[0]: m[1:4] for m in metrics})
