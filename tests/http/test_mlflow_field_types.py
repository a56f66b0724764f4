"""Every field of every tracking request, given a JSON value of the wrong type: 400, nothing written.

Each request below is valid; the test replaces one field at a time (leaves, lists, list elements,
nested objects) with values of other JSON types than its proto type, and checks MLflow's
INVALID_PARAMETER_VALUE naming that field, and that the store is byte-for-byte unchanged.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from tests.helpers.stores import etags

A = "/mlflow/api/2.0/mlflow"
RUN, EXP, MODEL = "<run>", "<experiment>", "<model>"
ENUMS = {"view_type", "run_view_type", "status"}

_METRIC = {"key": "m", "value": 1.5, "timestamp": 1, "step": 0, "model_id": MODEL, "dataset_name": "d",
           "dataset_digest": "x"}
_KV = {"key": "k", "value": "v"}
_MODEL_JSON = json.dumps({"artifact_path": "a", "flavors": {}, "utc_time_created": "t", "run_id": "r"})

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/experiments/create", {"name": "fresh", "artifact_location": "s3://b/x", "tags": [_KV]}),
    ("POST", "/experiments/search", {"view_type": "ALL", "max_results": 10, "filter": "name = 'x'",
                                     "order_by": ["name"], "page_token": ""}),
    ("POST", "/experiments/update", {"experiment_id": EXP, "new_name": "renamed"}),
    ("POST", "/experiments/delete", {"experiment_id": EXP}),
    ("POST", "/experiments/restore", {"experiment_id": EXP}),
    ("POST", "/experiments/set-experiment-tag", {"experiment_id": EXP, "key": "k", "value": "v"}),
    ("POST", "/experiments/delete-experiment-tag", {"experiment_id": EXP, "key": "k"}),
    ("POST", "/runs/create", {"experiment_id": EXP, "user_id": "u", "run_name": "r", "start_time": 1,
                              "tags": [_KV]}),
    ("POST", "/runs/update", {"run_id": RUN, "status": "FINISHED", "end_time": 5, "run_name": "n"}),
    ("POST", "/runs/delete", {"run_id": RUN}),
    ("POST", "/runs/restore", {"run_id": RUN}),
    ("POST", "/runs/log-metric", {"run_id": RUN, **_METRIC}),
    ("POST", "/runs/log-parameter", {"run_id": RUN, "key": "p2", "value": "v"}),
    ("POST", "/runs/set-tag", {"run_id": RUN, "key": "t", "value": "v"}),
    ("POST", "/runs/delete-tag", {"run_id": RUN, "key": "t"}),
    ("POST", "/runs/log-batch", {"run_id": RUN, "metrics": [_METRIC], "params": [_KV], "tags": [_KV]}),
    ("POST", "/runs/log-inputs", {"run_id": RUN, "models": [{"model_id": MODEL}], "datasets": [{
        "tags": [_KV], "dataset": {"name": "d", "digest": "x", "source_type": "s", "source": "{}",
                                   "schema": "{}", "profile": "{}"}}]}),
    ("POST", "/runs/outputs", {"run_id": RUN, "models": [{"model_id": MODEL, "step": 1}]}),
    ("POST", "/runs/log-model", {"run_id": RUN, "model_json": _MODEL_JSON}),
    ("POST", "/runs/search", {"experiment_ids": [EXP], "filter": "", "run_view_type": "ALL", "max_results": 5,
                              "order_by": ["start_time"], "page_token": ""}),
    ("POST", "/logged-models", {"experiment_id": EXP, "name": "m", "model_type": "t", "source_run_id": RUN,
                                "params": [_KV], "tags": [_KV]}),
    ("POST", "/logged-models/search", {
        "experiment_ids": [EXP], "filter": "", "max_results": 5, "page_token": "",
        "datasets": [{"dataset_name": "d", "dataset_digest": "x"}],
        "order_by": [{"field_name": "name", "ascending": True, "dataset_name": "d", "dataset_digest": "x"}]}),
    ("PATCH", f"/logged-models/{MODEL}", {"status": "LOGGED_MODEL_READY"}),
    ("PATCH", f"/logged-models/{MODEL}/tags", {"tags": [_KV]}),
    ("POST", f"/logged-models/{MODEL}/params", {"params": [_KV]}),
]


def _wrong_values(value: Any, name: str) -> list[Any]:
    """JSON values of other types than the field's (the lenient proto-JSON spellings excluded)."""
    if name in ENUMS:
        return [{}, [], True, 1.5, "NOT_A_VALUE", 99]
    if isinstance(value, bool):
        return [{}, [], 1, "maybe"]
    if isinstance(value, int):
        return [{}, [], True, "ten", 1.5]
    if isinstance(value, float):
        return [{}, [], True, "high"]
    if isinstance(value, str):
        return [{"a": 1}, ["a"], 7, 2.5, True]
    if isinstance(value, list):
        return [{}, "x", 3, True] + ([[{}], [1]] if value and isinstance(value[0], str) else [["x"], [1], [[]]])
    if isinstance(value, dict):
        return ["x", 3, [], True]
    raise AssertionError(value)


def mutations(doc: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path of the rejected field, the request with that one field replaced) for every field."""
    for name, value in doc.items():
        here = path + name
        for wrong in _wrong_values(value, name):
            yield here, {**doc, name: wrong}
        if isinstance(value, dict):
            for inner_path, inner in mutations(value, here + "."):
                yield inner_path, {**doc, name: inner}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for inner_path, inner in mutations(value[0], f"{here}[0]."):
                yield inner_path, {**doc, name: [inner, *value[1:]]}


@pytest.fixture
def api(local_store):  # type: ignore[no-untyped-def]
    services.configure(store=local_store)
    with Client(app) as client:
        def call(method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
            resp = getattr(client.http, method.lower())(f"{A}{path}", body=json.dumps(body),
                                                         headers={"Content-Type": "application/json"})
            return resp.status_code, json.loads(resp.body or b"{}")
        yield call
    services.configure()


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, str):
        for placeholder, real in ids.items():
            value = value.replace(placeholder, real)
    return value


@pytest.mark.parametrize("method,path,body", REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_a_field_of_the_wrong_json_type_is_rejected_and_nothing_is_written(api, local_store, method, path, body):
    status, exp = api("POST", "/experiments/create", {"name": "holder", "tags": [_KV]})
    assert status == 200, exp
    eid = exp["experiment_id"]
    status, run = api("POST", "/runs/create", {"experiment_id": eid})
    assert status == 200, run
    status, model = api("POST", "/logged-models", {"experiment_id": eid})
    assert status == 200, model
    ids = {RUN: run["run"]["info"]["run_id"], EXP: eid, MODEL: model["model"]["info"]["model_id"]}
    assert api("POST", "/runs/set-tag", {"run_id": ids[RUN], "key": "t", "value": "v"})[0] == 200
    before = etags(local_store)
    cases = list(mutations(body))
    assert len(cases) >= 4
    for field, wrong in cases:
        status, got = api(method, _fill(path, ids), _fill(wrong, ids))
        assert (status, got.get("error_code")) == (400, "INVALID_PARAMETER_VALUE"), (field, wrong, got)
        assert f"'{field}'" in got["message"], (field, got["message"])
    assert etags(local_store) == before
