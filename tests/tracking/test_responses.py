"""Paged tracking answers stop at a byte budget as well as a count, and lose nothing across pages."""
from __future__ import annotations

import json

import pytest

from chalicelib.mlflowapi import pages
from chalicelib.tracking.entities import Metric, Run
from chalicelib.tracking.service import TrackingService

BUDGET = 20_000


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "BUDGET", BUDGET)


def test_envelope_size_is_the_body_as_lambdas_envelope_carries_it() -> None:
    doc = {"a": 'say "hi" \\ \u00e9\n'}
    body = json.dumps(doc, separators=(",", ":"))
    assert pages.envelope_size(doc) == len(json.dumps({"body": body}, separators=(",", ":"))) - len('{"body":""}')


def test_run_search_pages_by_size_and_every_run_arrives(local_store, small_budget) -> None:
    svc = TrackingService(local_store)
    eid = svc.create_experiment("big", None, [])
    ids = {svc.create_run({"experiment_id": eid, "tags": [{"key": "blob", "value": f'"{i}"' + "x" * 3000}]})
           .info.run_id for i in range(30)}
    seen, token, n_pages = [], None, 0
    while True:
        out = svc.search_runs([eid], None, None, 1000, [], token).to_wire("runs", Run.to_wire)
        assert pages.envelope_size(out) <= BUDGET + 200
        seen += [r["info"]["run_id"] for r in out["runs"]]
        n_pages += 1
        token = out.get("next_page_token")
        if not token:
            break
    assert n_pages >= 4
    assert len(seen) == len(set(seen))
    assert set(seen) == ids


def test_metric_history_without_max_results_is_paged_by_size(local_store, small_budget) -> None:
    svc = TrackingService(local_store)
    run_id = svc.create_run({"experiment_id": "0"}).info.run_id
    key = "k" * 250
    svc.log_batch(run_id, [{"key": key, "value": float(i), "timestamp": i, "step": i} for i in range(1000)], [], [])
    values, token, n_pages = [], None, 0
    while True:
        out = svc.get_metric_history(run_id, key, None, token).to_wire("metrics", Metric.to_wire)
        assert pages.envelope_size(out) <= BUDGET + 200
        values += [m["value"] for m in out["metrics"]]
        n_pages += 1
        token = out.get("next_page_token")
        if not token:
            break
    assert n_pages > 5
    assert values == [float(i) for i in range(1000)]
    assert [m.value for m in svc.get_metric_history(run_id, key, 10, None).items] == [float(i) for i in range(10)]


def test_bulk_interval_thins_its_sample_to_fit(local_store, small_budget) -> None:
    svc = TrackingService(local_store)
    run_ids = [svc.create_run({"experiment_id": "0"}).info.run_id for _ in range(3)]
    key = "k" * 200
    for run_id in run_ids:
        svc.log_batch(run_id, [{"key": key, "value": 1.0, "timestamp": i, "step": i} for i in range(1000)], [], [])
    out = {"metrics": [m.to_wire() for m in svc.get_metric_history_bulk_interval(run_ids, key, None, None, None)]}
    assert pages.envelope_size(out) <= BUDGET
    steps = sorted({m["step"] for m in out["metrics"]})
    assert 5 < len(steps) < 1000  # a spread sample
    assert (steps[0], steps[-1]) == (0, 999)  # ends kept
    assert len(out["metrics"]) == 3 * len(steps)  # the same steps for every run


def test_a_run_cannot_grow_past_what_a_response_can_carry(local_store, monkeypatch) -> None:
    monkeypatch.setattr(pages, "RECORD_LIMIT", 60_000)
    svc = TrackingService(local_store)
    run_id = svc.create_run({"experiment_id": "0"}).info.run_id
    from chalicelib.mlflowapi.errors import MlflowError
    with pytest.raises(MlflowError, match="would exceed") as err:
        for i in range(100):
            svc.log_batch(run_id, [], [{"key": f"p{i}", "value": "x" * 1900 + '"' * 100}], [])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    run = svc.get_run(run_id).to_wire()
    assert 5 < len(run["data"]["params"]) < 100
    assert pages.envelope_size({"run": run}) <= 60_000
    svc.log_batch(run_id, [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}], [], [])  # small ones still fit
