"""Bad input to every tracking endpoint: MLflow's error code and status, never a 500, nothing changed."""
from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from chalice.test import Client

from app import app
from chalicelib import services

A = "/mlflow/api/2.0/mlflow"
BAD = "INVALID_PARAMETER_VALUE"
MISSING = "RESOURCE_DOES_NOT_EXIST"
RUN = "RUNID"  # replaced by a real run id
GONE = "f" * 32


@pytest.fixture
def api(local_store):  # type: ignore[no-untyped-def]
    services.configure(store=local_store)
    with Client(app) as client:
        def call(method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
            if method == "GET":
                query = urlencode(body or {}, doseq=True)
                resp = client.http.get(f"{A}{path}?{query}" if query else f"{A}{path}")
            else:
                raw = body if isinstance(body, str) else json.dumps(body or {})
                resp = getattr(client.http, method.lower())(f"{A}{path}", body=raw,
                                                             headers={"Content-Type": "application/json"})
            return resp.status_code, json.loads(resp.body or b"{}")
        yield call
    services.configure()


def _token(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _fill(value: object, run_id: str) -> object:
    if isinstance(value, dict):
        return {k: _fill(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, run_id) for v in value]
    if isinstance(value, str) and RUN in value and value != RUN:  # a raw body
        return value.replace(RUN, run_id)
    return run_id if value == RUN else value


CASES = [
    ("POST", "/experiments/create", {}, 400, BAD),
    ("POST", "/experiments/create", {"name": 5}, 400, BAD),
    ("POST", "/experiments/create", {"name": "x" * 501}, 400, BAD),
    ("POST", "/experiments/create", {"name": "exists"}, 400, "RESOURCE_ALREADY_EXISTS"),
    ("POST", "/experiments/create", "{not json", 400, "MALFORMED_REQUEST"),
    ("GET", "/experiments/get", {}, 400, BAD),
    ("GET", "/experiments/get", {"experiment_id": "999"}, 404, MISSING),
    ("GET", "/experiments/get", {"experiment_id": "../x"}, 400, BAD),
    ("GET", "/experiments/get-by-name", {}, 400, BAD),
    ("GET", "/experiments/get-by-name", {"experiment_name": "absent"}, 404, MISSING),
    ("POST", "/experiments/search", {"max_results": 50001}, 400, BAD),
    ("POST", "/experiments/search", {"filter": "name = "}, 400, BAD),
    ("POST", "/experiments/search", {"order_by": ["bogus.x"]}, 400, BAD),
    ("POST", "/experiments/search", {"view_type": "SOME"}, 400, BAD),
    ("POST", "/experiments/search", {"page_token": "!!"}, 400, BAD),
    ("POST", "/experiments/update", {"experiment_id": "999", "new_name": "n"}, 404, MISSING),
    ("POST", "/experiments/update", {"experiment_id": "0"}, 400, BAD),
    ("POST", "/experiments/delete", {}, 400, BAD),
    ("POST", "/experiments/delete", {"experiment_id": "999"}, 404, MISSING),
    ("POST", "/experiments/restore", {"experiment_id": "0"}, 400, BAD),
    ("POST", "/experiments/set-experiment-tag", {"experiment_id": "0"}, 400, BAD),
    ("POST", "/experiments/set-experiment-tag", {"experiment_id": "0", "key": "../k", "value": "v"}, 400, BAD),
    ("POST", "/experiments/delete-experiment-tag", {"experiment_id": "0", "key": "nope"}, 404, MISSING),
    ("POST", "/runs/create", {"experiment_id": "999"}, 404, MISSING),
    ("POST", "/runs/create", {"experiment_id": "0", "start_time": "soon"}, 400, BAD),
    ("POST", "/runs/create", {"experiment_id": "0", "run_name": "a",
                              "tags": [{"key": "mlflow.runName", "value": "b"}]}, 400, BAD),
    ("GET", "/runs/get", {}, 400, BAD),
    ("GET", "/runs/get", {"run_id": GONE}, 404, MISSING),
    ("GET", "/runs/get", {"run_id": "../../etc"}, 400, BAD),
    ("POST", "/runs/update", {"run_id": RUN, "status": "DANCING"}, 400, BAD),
    ("POST", "/runs/update", {"run_id": GONE, "status": "FINISHED"}, 404, MISSING),
    ("POST", "/runs/delete", {}, 400, BAD),
    ("POST", "/runs/restore", {"run_id": GONE}, 404, MISSING),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "m", "timestamp": 1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "m", "value": "high", "timestamp": 1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "m", "value": 1, "timestamp": -1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "m", "value": 1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "a/../b", "value": 1, "timestamp": 1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": GONE, "key": "m", "value": 1, "timestamp": 1}, 404, MISSING),
    ("POST", "/runs/log-parameter", {"run_id": RUN}, 400, BAD),
    ("POST", "/runs/log-parameter", {"run_id": RUN, "key": "fixed", "value": "other"}, 400, BAD),
    ("POST", "/runs/log-parameter", {"run_id": RUN, "key": "k" * 251, "value": "v"}, 400, BAD),
    ("POST", "/runs/set-tag", {"run_id": RUN, "key": "t", "value": "x" * 8001}, 400, BAD),
    ("POST", "/runs/set-tag", {"run_id": RUN, "key": "bad\u0001key", "value": "x"}, 400, BAD),
    ("POST", "/runs/delete-tag", {"run_id": RUN, "key": "nope"}, 404, MISSING),
    ("POST", "/runs/log-batch", {"run_id": RUN, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001},
     400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
     400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
     400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "2"}]},
     400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "metrics": "many"}, 400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "params": [{"key": "v", "value": "x" * 6001}]}, 400, BAD),
    ("POST", "/runs/log-inputs", {"run_id": RUN, "datasets": [{"dataset": {"name": "d"}}]}, 400, BAD),
    ("POST", "/runs/outputs", {"run_id": RUN, "models": [{"step": 1}]}, 400, BAD),
    ("POST", "/runs/log-model", {"run_id": RUN, "model_json": "{"}, 400, BAD),
    ("POST", "/runs/log-model", {"run_id": RUN, "model_json": "{}"}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.m >"}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "foo.m = 1"}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "max_results": 50001}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "order_by": ["metrics.m SIDEWAYS"]}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "page_token": "xyz"}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["../0"]}, 400, BAD),
    ("GET", "/metrics/get-history", {"run_id": RUN}, 400, BAD),
    ("GET", "/metrics/get-history", {"run_id": GONE, "metric_key": "m"}, 404, MISSING),
    ("GET", "/metrics/get-history", {"run_id": RUN, "metric_key": "m", "page_token": "zz"}, 400, BAD),
    ("GET", "/metrics/get-history-bulk-interval", {"metric_key": "m"}, 400, BAD),
    ("GET", "/metrics/get-history-bulk-interval", {"run_ids": [RUN], "metric_key": "m", "start_step": 5},
     400, BAD),
    ("GET", "/metrics/get-history-bulk-interval", {"run_ids": [RUN], "metric_key": "m", "max_results": 0},
     400, BAD),
    ("POST", "/logged-models", {}, 400, BAD),
    ("POST", "/logged-models", {"experiment_id": "999"}, 404, MISSING),
    ("POST", "/logged-models", {"experiment_id": "0", "source_run_id": GONE}, 404, MISSING),
    ("GET", "/logged-models/m-" + "0" * 32, {}, 404, MISSING),
    ("GET", "/logged-models/nonsense", {}, 404, MISSING),
    ("PATCH", "/logged-models/m-" + "0" * 32, {"status": "LOGGED_MODEL_READY"}, 404, MISSING),
    ("DELETE", "/logged-models/m-" + "0" * 32, {}, 404, MISSING),
    ("POST", "/logged-models/search", {"experiment_ids": ["0"], "filter": "metrics.x >"}, 400, BAD),
    # keys and ids that are JSON objects or arrays (these answered 500)
    ("POST", "/runs/log-batch", {"run_id": RUN, "metrics": [{"key": {"a": 1}, "value": 1, "timestamp": 1}]},
     400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "params": [{"key": ["a"], "value": "v"}]}, 400, BAD),
    ("POST", "/runs/log-batch", {"run_id": RUN, "tags": [{"key": {"a": 1}, "value": "v"}]}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": {"a": 1}, "value": 1, "timestamp": 1}, 400, BAD),
    ("POST", "/runs/log-metric", {"run_id": RUN, "key": "m", "value": 1, "timestamp": 1, "model_id": {"a": 1}},
     400, BAD),
    ("POST", "/runs/log-parameter", {"run_id": RUN, "key": ["k"], "value": "v"}, 400, BAD),
    ("POST", "/runs/set-tag", {"run_id": RUN, "key": {"k": 1}, "value": "v"}, 400, BAD),
    ("POST", "/runs/create", {"experiment_id": "0", "tags": [{"key": {"a": 1}, "value": "v"}]}, 400, BAD),
    ("POST", "/experiments/create", {"name": "n2", "tags": [{"key": [1], "value": "v"}]}, 400, BAD),
    ("POST", "/experiments/set-experiment-tag", {"experiment_id": "0", "key": {"a": 1}, "value": "v"}, 400, BAD),
    ("POST", "/logged-models/search", {"experiment_ids": ["0"], "order_by": [{"field_name": {"a": 1}}]}, 400, BAD),
    # issue 7: each of these was a 500
    ("POST", "/logged-models/search", {"experiment_ids": ["0"], "order_by": [{"field_name": ["name"]}]}, 400, BAD),
    ("POST", "/logged-models/search", {"experiment_ids": ["0"], "order_by": [
        {"field_name": "metrics.m", "dataset_name": {"a": 1}}]}, 400, BAD),
    ("POST", "/runs/search", "[" * 5000 + "]" * 5000, 400, "MALFORMED_REQUEST"),
    ("POST", "/experiments/search", '{"filter": ' + "[" * 5000 + "]" * 5000 + "}", 400, "MALFORMED_REQUEST"),
    ("POST", "/runs/log-batch", '{"run_id": "RUNID", "tags": ' + "[" * 5000 + "]" * 5000 + "}", 400,
     "MALFORMED_REQUEST"),
    ("POST", "/experiments/search", {"page_token": _token('{"offset": Infinity}')}, 400, BAD),
    ("POST", "/experiments/search", {"page_token": _token("[" * 5000 + "]" * 5000)}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "page_token": _token('{"offset": {"a": [1]}}')}, 400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "page_token": "e" * 100_000}, 400, BAD),
    ("GET", "/metrics/get-history", {"run_id": RUN, "metric_key": "m", "page_token": _token("[" * 5000)}, 400, BAD),
    ("GET", "/metrics/get-history", {"run_id": RUN, "metric_key": "m", "page_token": _token('{"offset": 1e999}')},
     400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "params.a = 'x' AND " * 5000 + "params.a = 'x'"},
     400, BAD),
    ("POST", "/runs/search", {"experiment_ids": ["0"], "order_by": ["params.a"] * 33}, 400, BAD),
]


@pytest.mark.parametrize("method,path,body,status,code", CASES,
                         ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(CASES)])
def test_bad_input_answers_mlflow_error(api, method, path, body, status, code):  # type: ignore[no-untyped-def]
    s, exp = api("POST", "/experiments/create", {"name": "exists"})
    assert s == 200, exp
    s, created = api("POST", "/runs/create", {"experiment_id": "0"})
    run_id = created["run"]["info"]["run_id"]
    assert api("POST", "/runs/log-parameter", {"run_id": run_id, "key": "fixed", "value": "v"})[0] == 200
    before = api("GET", "/runs/get", {"run_id": run_id})[1]

    got_status, got = api(method, path, _fill(body, run_id))
    assert (got_status, got.get("error_code")) == (status, code), got
    assert isinstance(got.get("message"), str)
    assert got["message"]
    assert api("GET", "/runs/get", {"run_id": run_id})[1] == before  # nothing changed
