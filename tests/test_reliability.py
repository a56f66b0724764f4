"""Reliability under load and faults (a quick version of ``bench/load.py``).

Several ``stacflow serve`` workers over one store take mixed STAC searches, tracking writes and model
registrations at once, while a share of their store requests fail as S3 fails (503 SlowDown, timeouts,
dropped connections, latency spikes, a crash after a write). Every call either succeeds or fails with a
retryable status, never with a wrong answer; once the faults stop and the events are replayed,
``stacflow check`` is clean and every acknowledged metric and version is there exactly once.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chalicelib import services
from chalicelib.cli import main
from chalicelib.store.local import LocalStore
from tests.helpers.faults import FaultPlan, inject
from tests.helpers.load import run_load, setup_world, verify, write_source_events
from tests.helpers.servers import LiveServer

QUICK_FAULTS = "0.08:7:slowdown,timeout,reset,latency,crash:0.4"  # share:seed:kinds:latency max (s)


def _check(store_uri: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    code = main(["check", "--store", store_uri])
    report = json.loads(capsys.readouterr().out)
    report["exit"] = code
    return report


def test_faults_under_load_give_no_wrong_answer_and_check_is_clean_after_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    store_uri = f"file://{tmp_path / 'store'}"
    env = {"STACFLOW_PUBLIC_URL": "http://stacflow.test"}
    monkeypatch.setenv("STACFLOW_PUBLIC_URL", env["STACFLOW_PUBLIC_URL"])  # check and replay: the service's settings
    with ThreadPoolExecutor(3) as pool:  # start the workers in parallel
        plain_f = pool.submit(LiveServer, store_uri, env)
        faulty_fs = [pool.submit(LiveServer, store_uri, dict(env, STACFLOW_TEST_FAULTS=QUICK_FAULTS.replace(
            ":7:", f":{7 + i}:")), "tests.helpers.faulty_serve") for i in range(2)]
        plain, faulty = plain_f.result(), [f.result() for f in faulty_fs]
    try:
        world = setup_world(plain.url, threads=3, tag="quick")
        # Bounded by calls, not time (the deadline only guards a hang), so a slow machine makes as many.
        result, ledger = run_load([w.url for w in faulty], world, seconds=30, max_calls=50, seed=1)
        injected = sum(Path(w.log.name).read_text().count("FAULT ") for w in faulty)
        for worker in faulty:
            worker.stop()
        assert result.wrong == []
        assert result.summary()["acknowledged"] > 20  # of 50: most calls got through the faults
        assert injected > 0
        assert result.retries > 0  # the faults reached the clients, as retryable answers

        events = tmp_path / "events.ndjson"
        assert write_source_events(LocalStore(tmp_path / "store"), events) > 0
        assert main(["replay-events", "--store", store_uri, str(events)]) == 0
        report = _check(store_uri, capsys)
        assert report["problems"] == []
        assert report["exit"] == 0
        accounted = verify(plain.url, world, ledger)
        assert accounted["metrics_checked"] == 3 * result.calls["log_batch"]
        # Every acknowledged metric once, every acknowledged version there. A create whose answer was
        # lost and that was retried may have registered twice (MLflow's API has no idempotency key):
        # only retried calls may have.
        assert (accounted["metrics_lost"], accounted["metrics_duplicated"], accounted["versions_lost"],
                accounted["versions_duplicated_without_retry"]) == (0, 0, 0, 0)
    finally:
        plain.stop()
        services.configure()
