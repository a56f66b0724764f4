"""A store that fails for now (S3's 503 SlowDown, a timeout, a dropped connection) gives the client a
retryable 503 in its protocol's format, never a 500 or a wrong answer."""
from __future__ import annotations

from typing import Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.store.local import LocalStore
from tests.helpers.faults import raise_fault
from tests.helpers.stores import Call, InstrumentedStore


@pytest.fixture
def failing(local_store: LocalStore) -> Iterator[tuple[Client, list[str]]]:
    store = InstrumentedStore(local_store)
    kind: list[str] = []

    def hook(when: str, call: Call) -> None:
        if when == "before" and kind:
            raise_fault(kind[0], call)
    store.hooks.append(hook)
    services.configure(store=store)
    from app import app
    with Client(app) as client:
        yield client, kind
    services.configure()


@pytest.mark.parametrize("fault", ["slowdown", "timeout", "reset"])
def test_stac_answers_503_service_unavailable(failing: tuple[Client, list[str]], fault: str) -> None:
    client, kind = failing
    assert client.http.get("/stac/collections/dataset").status_code == 200
    kind.append(fault)
    resp = client.http.get("/stac/collections/dataset")
    assert (resp.status_code, resp.json_body["code"], resp.headers["Retry-After"]) == (503, "ServiceUnavailable", "1")


@pytest.mark.parametrize("fault", ["slowdown", "timeout", "reset"])
def test_mlflow_answers_503_temporarily_unavailable(failing: tuple[Client, list[str]], fault: str) -> None:
    client, kind = failing
    kind.append(fault)
    resp = client.http.get("/mlflow/api/2.0/mlflow/experiments/get?experiment_id=0")
    assert (resp.status_code, resp.json_body["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")


def test_a_bug_is_still_a_500(failing: tuple[Client, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = failing

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug, not the store")
    monkeypatch.setattr(services.tracking(), "get_experiment", broken)
    resp = client.http.get("/mlflow/api/2.0/mlflow/experiments/get?experiment_id=0")
    assert resp.status_code == 500
