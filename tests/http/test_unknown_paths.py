"""``stacflow serve``: a path no route matches is 404 in the API's error shape, not Chalice's 403."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

from chalicelib.store import ObjectStore
from tests.helpers.servers import LiveServer


@pytest.fixture
def server(local_store: ObjectStore, live_server_factory: Any) -> Iterator[LiveServer]:
    yield live_server_factory(local_store.uri, {"STACFLOW_UI": "store"})


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


@pytest.mark.parametrize("path", ["/nope", "/stac/nope/deeper/still", "/browser-x", "/files"])
def test_unknown_path_is_404_in_the_stac_shape(server: LiveServer, path: str) -> None:
    status, _, body = _call(server.url + path)
    assert (status, json.loads(body)["code"]) == (404, "NotFound")


def test_unknown_mlflow_path_is_404_in_mlflow_shape(server: LiveServer) -> None:
    status, _, body = _call(server.url + "/mlflow/api/2.0/mlflow/nope", "POST", {"Content-Type": "application/json"},
                            b"{}")
    assert (status, json.loads(body)["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def test_unknown_stac_path_carries_cors(server: LiveServer) -> None:
    _, headers, _ = _call(server.url + "/stac/nope/x", headers={"Origin": "https://elsewhere.example"})
    assert headers.get("access-control-allow-origin") == "*"


def test_preflight_over_http(server: LiveServer) -> None:
    status, headers, _ = _call(server.url + "/stac/search", "OPTIONS", {
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert (status, "POST" in headers.get("access-control-allow-methods", "")) == (204, True)


def test_the_connection_survives_a_404_with_a_body(server: LiveServer) -> None:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/nope", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    first = conn.getresponse()
    first.read()
    conn.close()
    assert (first.status, _call(server.url + "/health")[0]) == (404, 200)
