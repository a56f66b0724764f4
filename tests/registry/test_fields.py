"""Registry requests are read with the tracking API's typed fields: one rule, one message, for both."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.registry.service import RegistryService
from chalicelib.store import ObjectStore

API = "/mlflow/api/2.0/mlflow"


@pytest.fixture
def http(local_store: ObjectStore) -> Iterator[Any]:
    from app import app
    services.configure(store=local_store)
    RegistryService(local_store).create_registered_model("m")
    with Client(app) as client:
        yield client.http
    services.configure()


def _post(http: Any, path: str, body: dict[str, Any], method: str = "post") -> tuple[int, dict[str, Any]]:
    resp = getattr(http, method)(API + path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    return resp.status_code, json.loads(resp.body)


@pytest.mark.parametrize("value", [5, 2.5, True])
def test_a_number_or_boolean_in_a_string_field_is_refused_as_tracking_refuses_it(http: Any, value: Any) -> None:
    registry = _post(http, "/registered-models/update", {"name": "m", "description": value}, "patch")
    tracking = _post(http, "/experiments/create", {"name": "e", "artifact_location": value})
    assert registry[0] == tracking[0] == 400
    assert registry[1]["error_code"] == tracking[1]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert registry[1]["message"] == tracking[1]["message"].replace("artifact_location", "description")


def test_versions_are_int64_fields_as_mlflow_sends_them(http: Any) -> None:
    assert _post(http, "/model-versions/create", {"name": "m", "source": "s3://b/k"})[0] == 200
    for version in ("1", 1):
        status, body = _post(http, "/model-versions/update", {"name": "m", "version": version, "description": "d"},
                             "patch")
        assert (status, body["model_version"]["version"]) == (200, "1")
    status, body = _post(http, "/model-versions/update", {"name": "m", "version": "one"}, "patch")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Invalid value 'one' for parameter 'version' supplied.")
