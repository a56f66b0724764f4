"""The unmodified mlflow client gets answers bigger than a Lambda response (6 MB) complete, over pages.

The data is written through the tracking service on the server's store (fast); the reads go
through ``stacflow serve`` and MLflow's own client, which follows the next-page tokens. Every
response body is measured as Lambda's proxy envelope would carry it.
"""
from __future__ import annotations

import pytest

from chalicelib.mlflowapi import pages
from chalicelib.store.local import LocalStore
from chalicelib.tracking.service import TrackingService

pytestmark = pytest.mark.slow


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Envelope sizes of every response the mlflow client receives."""
    import json

    from mlflow.utils import rest_utils
    sizes: list[int] = []
    real = rest_utils.http_request

    def http_request(*args, **kwargs):  # type: ignore[no-untyped-def]
        response = real(*args, **kwargs)
        sizes.append(pages.envelope_size(json.loads(response.text)) if response.text else 0)
        return response

    monkeypatch.setattr(rest_utils, "http_request", http_request)
    return sizes


def test_big_run_search_and_metric_history_arrive_complete_in_pages(live_server_factory, tmp_path, measured):
    import mlflow
    from mlflow import MlflowClient

    store = LocalStore(tmp_path / "store", fsync=False)
    svc = TrackingService(store)
    eid = svc.create_experiment("big", None, [])
    # 240 runs of ~28 KB (quotes count twice in the envelope): ~7.5 MB of search results.
    blob = 'say "hi" ' * 700
    run_ids = {svc.create_run({"experiment_id": eid, "tags": [{"key": f"t{j}", "value": f"{i}:{blob}"}
                                                            for j in range(4)]}).info.run_id
               for i in range(240)}
    # 32,000 points of a 250-character metric: ~11 MB of history; the client asks 25,000 per page.
    run_id = min(run_ids)
    key = "k" * 250
    for start in range(0, 32_000, 1000):
        svc.log_batch(run_id, [{"key": key, "value": float(i), "timestamp": i, "step": i}
                               for i in range(start, start + 1000)], [], [])

    server = live_server_factory(store.uri)
    mlflow.set_tracking_uri(server.url + "/mlflow")
    try:
        found = mlflow.search_runs(experiment_ids=[eid], output_format="list")
        assert {r.info.run_id for r in found} == run_ids
        assert len(found) == len(run_ids)
        search_calls = len(measured)
        assert search_calls >= 2  # more than one page
        history = MlflowClient().get_metric_history(run_id, key)
        assert [m.value for m in history] == [float(i) for i in range(32_000)]
        assert len(measured) - search_calls >= 2
    finally:
        mlflow.set_tracking_uri(None)
    assert max(measured) <= pages.BUDGET + 1024 < pages.LAMBDA_RESPONSE_LIMIT, measured
