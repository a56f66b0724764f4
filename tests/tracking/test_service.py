"""The tracking service over both store adapters: concurrency, replays, compaction, MLflow's rules."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.tracking import eventlog
from chalicelib.tracking.service import TrackingService


def _run(svc: TrackingService, eid: str = "0", **extra) -> str:
    msg = {"experiment_id": eid, "start_time": int(time.time() * 1000), "user_id": "u", **extra}
    return svc.create_run(msg).info.run_id


def _metric(key: str, value: float, step: int, ts: int = 1000) -> dict:
    return {"key": key, "value": value, "timestamp": ts, "step": step}


def test_twenty_threads_log_batches_to_one_run_from_two_processes(store):
    # Two service instances stand for two Lambda instances sharing the store.
    a, b = TrackingService(store), TrackingService(store)
    run_id = _run(a)

    def log(i: int) -> None:
        svc = a if i % 2 else b
        svc.log_batch(run_id, [_metric("loss", float(i * 10 + s), s) for s in range(10)],
                      [{"key": f"p{i}", "value": str(i)}], [{"key": f"t{i}", "value": "x"}])

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(log, range(20)))
    for svc in (a, b, TrackingService(store)):
        hist = svc.get_metric_history(run_id, "loss", None, None).items
        assert sorted(m.value for m in hist) == sorted(float(i * 10 + s) for i in range(20) for s in range(10))
        run = svc.get_run(run_id).to_wire()
        assert {p["key"] for p in run["data"]["params"]} == {f"p{i}" for i in range(20)}
        assert {t["key"] for t in run["data"]["tags"]} >= {f"t{i}" for i in range(20)}
        found = svc.search_runs(["0"], "metrics.loss >= 0", None, None, [], None).items
        assert [r.info.run_id for r in found] == [run_id]
        # latest = greatest (step, timestamp, value): step 9 of the highest-valued batch
        assert found[0].to_wire()["data"]["metrics"] == [{"key": "loss", "value": 199.0, "timestamp": 1000, "step": 9}]


def test_experiment_names_are_unique_under_a_race(store):
    services = [TrackingService(store) for _ in range(4)]
    results: list[object] = []

    def create(i: int) -> None:
        try:
            results.append(services[i % 4].create_experiment("raced", None, []))
        except MlflowError as err:
            results.append(err.error_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r for r in results if r != "RESOURCE_ALREADY_EXISTS"]
    assert len(ids) == 1
    assert results.count("RESOURCE_ALREADY_EXISTS") == 11
    exps = services[0].search_experiments("ALL", None, "name = 'raced'", [], None).items
    assert [e.experiment_id for e in exps] == ids


def test_replayed_requests_do_not_duplicate(store):
    svc = TrackingService(store)
    run_id = _run(svc)
    batch = [_metric("m", 1.5, 0), _metric("m", 2.5, 1)]
    for _ in range(3):  # the client retried a log-batch whose first answer it never saw
        svc.log_batch(run_id, batch, [{"key": "p", "value": "1"}], [{"key": "t", "value": "1"}])
        svc.log_inputs(run_id, [{"dataset": {"name": "d", "digest": "x", "source_type": "s", "source": "{}"}}], [])
    hist = svc.get_metric_history(run_id, "m", None, None).items
    assert [(m.value, m.step) for m in hist] == [(1.5, 0), (2.5, 1)]
    run = svc.get_run(run_id).to_wire()
    assert len(run["inputs"]["dataset_inputs"]) == 1
    assert len(run["data"]["params"]) == 1
    svc.create_experiment("once", None, [])
    with pytest.raises(MlflowError) as err:
        svc.create_experiment("once", None, [])
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_identical_concurrent_creates_are_distinct_runs(store):
    svc = TrackingService(store)
    msg = {"experiment_id": "0", "start_time": 1700000000000, "user_id": "u"}
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: svc.create_run(dict(msg)).info.run_id, range(8)))
    assert len(set(ids)) == 8
    assert len(svc.search_runs(["0"], None, None, None, [], None).items) == 8


def test_compaction_keeps_every_entry(store, monkeypatch):
    # A write (entry, then tip) must land within MARGIN_S / 2 on a loaded machine's moto server.
    monkeypatch.setattr(eventlog, "MARGIN_S", 1.0)
    monkeypatch.setattr(eventlog, "COMPACT_AFTER", 5)
    writer, reader = TrackingService(store), TrackingService(store)
    run_id = _run(writer)
    for i in range(23):
        writer.log_batch(run_id, [_metric("m", float(i), i)], [], [])
        if i % 7 == 0:
            reader.get_run(run_id)  # a warm reader revalidating across compactions
        time.sleep(0.08)
    time.sleep(1.1)
    writer.get_run(run_id)
    writer.search_runs(["0"], None, None, None, [], None)
    assert store.exists(f"mlflow/runs/{run_id}/snapshot.json")
    assert store.exists("mlflow/experiment-runs/0/snapshot.json")
    for svc in (reader, writer, TrackingService(store)):
        hist = svc.get_metric_history(run_id, "m", None, None).items
        assert [m.value for m in hist] == [float(i) for i in range(23)]
        run = svc.search_runs(["0"], None, None, None, [], None).items[0]
        assert run.metrics[0].value == 22.0


def test_mlflow_rules(store):
    svc = TrackingService(store)
    run_id = _run(svc)
    svc.log_batch(run_id, [], [{"key": "p", "value": "1"}], [])
    with pytest.raises(MlflowError, match="Changing param values is not allowed"):
        svc.log_batch(run_id, [], [{"key": "p", "value": "2"}], [])
    with pytest.raises(MlflowError, match="at most 1000 metrics"):
        svc.log_batch(run_id, [_metric("m", 1, i) for i in range(1001)], [], [])
    with pytest.raises(MlflowError, match="at most 100 params"):
        svc.log_batch(run_id, [], [{"key": f"k{i}", "value": "v"} for i in range(101)], [])
    with pytest.raises(MlflowError, match="exceeds the maximum length"):
        svc.log_batch(run_id, [], [{"key": "long", "value": "x" * 6001}], [])
    svc.log_batch(run_id, [], [], [{"key": "long", "value": "x" * 8000}])
    svc.delete_run(run_id)
    with pytest.raises(MlflowError, match="must be in the 'active' state") as err:
        svc.log_batch(run_id, [_metric("m", 1, 0)], [], [])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowError) as err:
        svc.get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert svc.get_run(run_id).to_wire()["data"]["params"] == [{"key": "p", "value": "1"}]


def test_deleting_an_experiment_deletes_its_runs_and_restoring_restores_them(store):
    svc = TrackingService(store)
    eid = svc.create_experiment("with-runs", None, [])
    ids = [_run(svc, eid) for _ in range(3)]
    svc.delete_experiment(eid)
    assert {svc.get_run(r).info.lifecycle_stage for r in ids} == {"deleted"}
    assert svc.search_runs([eid], None, None, None, [], None).items == []
    with pytest.raises(MlflowError, match="must be in the 'active' state"):
        svc.log_batch(ids[0], [_metric("m", 1, 0)], [], [])
    svc.restore_experiment(eid)
    assert {svc.get_run(r).info.lifecycle_stage for r in ids} == {"active"}
    assert len(TrackingService(store).search_runs([eid], None, None, None, [], None).items) == 3


def test_warm_searches_get_only_records_that_changed(local_store):
    from tests.helpers.stores import InstrumentedStore
    hooked = InstrumentedStore(local_store)
    svc = TrackingService(hooked)
    eid = svc.create_experiment("models", None, [])
    ids = [svc.create_logged_model({"experiment_id": eid}).model_id for _ in range(20)]
    assert len(svc.search_logged_models([eid], None, [], None, [], None).items) == 20
    svc.search_experiments(None, None, None, [], None)
    svc.set_logged_model_tags(ids[3], [{"key": "k", "value": "v"}])
    hooked.log.clear()
    found = svc.search_logged_models([eid], None, [], None, [], None).items
    assert {m.model_id for m in found} == set(ids)
    svc.search_experiments(None, None, None, [], None)
    gets = [call.key for call in hooked.log if call.verb == "GET"]
    assert gets == [f"mlflow/logged-models/{ids[3]}.json"]  # plus one LIST each


def test_logged_models_are_filtered_and_ordered_by_their_timestamps(local_store):
    svc = TrackingService(local_store)
    eid = svc.create_experiment("timed", None, [])
    first = svc.create_logged_model({"experiment_id": eid})
    time.sleep(0.005)
    second = svc.create_logged_model({"experiment_id": eid})
    since = second.creation_timestamp_ms
    newer = svc.search_logged_models([eid], f"creation_timestamp >= {since}", [], None, [], None).items
    assert [m.model_id for m in newer] == [second.model_id]
    by_default = svc.search_logged_models([eid], None, [], None, [], None).items  # MLflow: newest first
    assert [m.model_id for m in by_default] == [second.model_id, first.model_id]
    oldest_first = svc.search_logged_models([eid], None, [], None,
                                            [{"field_name": "last_updated_timestamp", "ascending": True}], None).items
    assert [m.model_id for m in oldest_first] == [first.model_id, second.model_id]


def test_a_bad_step_range_names_both_steps(local_store):
    with pytest.raises(MlflowError, match=r"Found start_step=5 and end_step=1\."):
        TrackingService(local_store).get_metric_history_bulk_interval(["0" * 32], "m", 5, 1, None)
