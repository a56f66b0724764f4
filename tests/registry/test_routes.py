"""The registry blueprint via Chalice's test client: both API prefixes, REST shapes, errors, latest-item redirect."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.store import ObjectStore


@pytest.fixture
def http(local_store: ObjectStore) -> Iterator[Any]:
    from app import app
    services.configure(store=local_store)
    with Client(app) as client:
        yield client.http
    services.configure()


def _call(http: Any, method: str, path: str, body: dict[str, Any] | None = None,
          prefix: str = "/mlflow/api/2.0/mlflow") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Host": "svc.example"}
    if method == "GET":
        query = "&".join(f"{k}={v}" for k, v in (body or {}).items())
        resp = http.get(f"{prefix}{path}?{query}", headers=headers)
    else:
        resp = getattr(http, method.lower())(f"{prefix}{path}", body=json.dumps(body or {}), headers=headers)
    return resp.status_code, json.loads(resp.body) if resp.body else None


def test_rest_shapes_on_both_prefixes(http: Any) -> None:
    status, body = _call(http, "POST", "/registered-models/create",
                         {"name": "m", "tags": [{"key": "k", "value": "v"}], "description": "d"})
    assert status == 200
    assert body["registered_model"]["tags"] == [{"key": "k", "value": "v"}]
    status, body = _call(http, "POST", "/model-versions/create", {"name": "m", "source": "s3://b/m"},
                         prefix="/mlflow/ajax-api/2.0/mlflow")
    assert status == 200
    assert {k: body["model_version"][k] for k in ("name", "version", "current_stage", "status", "source")} == {
        "name": "m", "version": "1", "current_stage": "None", "status": "READY", "source": "s3://b/m"}
    assert _call(http, "POST", "/registered-models/alias", {"name": "m", "alias": "prod", "version": "1"})[0] == 200
    status, body = _call(http, "GET", "/registered-models/alias", {"name": "m", "alias": "prod"})
    assert status == 200
    assert body["model_version"]["aliases"] == ["prod"]
    status, body = _call(http, "GET", "/registered-models/get", {"name": "m"})
    assert body["registered_model"]["aliases"] == [{"alias": "prod", "version": "1"}]
    assert body["registered_model"]["latest_versions"][0]["version"] == "1"
    assert _call(http, "DELETE", "/registered-models/alias", {"name": "m", "alias": "prod"})[0] == 200
    status, body = _call(http, "GET", "/model-versions/get-download-uri", {"name": "m", "version": "1"})
    assert body == {"artifact_uri": "s3://b/m"}
    status, body = _call(http, "POST", "/registered-models/get-latest-versions", {"name": "m", "stages": ["None"]})
    assert [mv["version"] for mv in body["model_versions"]] == ["1"]
    status, body = _call(http, "GET", "/registered-models/search", {"filter": "name='m'"})
    assert [rm["name"] for rm in body["registered_models"]] == ["m"]


@pytest.mark.parametrize("method, path, body, status, code", [
    ("POST", "/model-versions/create", {"name": "nope", "source": "s3://b/k"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ("POST", "/model-versions/create", {"name": "m"}, 400, "INVALID_PARAMETER_VALUE"),
    ("POST", "/registered-models/create", {"name": "m"}, 400, "RESOURCE_ALREADY_EXISTS"),
    ("GET", "/model-versions/get", {"name": "m", "version": "x"}, 400, "INVALID_PARAMETER_VALUE"),
    ("GET", "/registered-models/alias", {"name": "m", "alias": "missing"}, 400, "INVALID_PARAMETER_VALUE"),
    ("POST", "/registered-models/get-latest-versions", {"name": "m", "stages": "None"}, 400,
     "INVALID_PARAMETER_VALUE"),
])
def test_errors_in_mlflow_format(http: Any, local_store: ObjectStore, method: str, path: str,
                                 body: dict[str, Any], status: int, code: str) -> None:
    _call(http, "POST", "/registered-models/create", {"name": "m"})
    before = sorted(i.key for i in local_store.list("mlflow/registry/"))
    got_status, got = _call(http, method, path, body)
    assert (got_status, got["error_code"]) == (status, code)
    assert sorted(i.key for i in local_store.list("mlflow/registry/")) == before


def test_latest_item_redirect(http: Any, local_store: ObjectStore) -> None:
    _call(http, "POST", "/registered-models/create", {"name": "m"})
    resp = http.get("/mlflow/registry/latest-item?name=m", headers={"Host": "svc.example"})
    assert resp.status_code == 404
    assert json.loads(resp.body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    for _ in range(2):  # both pending (their files are outside the store)
        _call(http, "POST", "/model-versions/create", {"name": "m", "source": "s3://b/k"})
    stand_in: dict[str, Any] = {"type": "Feature", "stac_version": "1.1.0", "id": "m-v1", "geometry": None,
                                "links": [], "assets": {}, "properties": {"datetime": "2020-01-01T00:00:00Z"}}
    local_store.put_json("collections/ai-model/items/m-v1.json", stand_in)  # as if v1 were published
    resp = http.get("/mlflow/registry/latest-item?name=m", headers={"Host": "svc.example"})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "http://svc.example/stac/collections/ai-model/items/m-v1"
