"""The mlflow-artifacts routes in-process (Chalice's local gateway, as ``stacflow serve`` runs them)."""
from __future__ import annotations

import base64
import http.client
import json
from typing import Iterator
from urllib.parse import quote, urlsplit

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.http.artifact_routes import MAX_DEPTH
from chalicelib.tracking.artifacts import PROXY_LIMIT

API = "/mlflow/api/2.0/mlflow-artifacts"
BINARY = bytes(range(256)) * 8


@pytest.fixture
def client(local_store) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    services.configure(store=local_store)
    from app import app
    with Client(app) as c:
        yield c
    services.configure()


def _json(resp) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(resp.body)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", "image/png",
                                          "application/x-hdf5"])
def test_binary_bodies_round_trip_whatever_the_content_type(client, local_store, content_type):
    put = client.http.put(f"{API}/artifacts/0/r/artifacts/f.bin", body=BINARY,
                          headers={"Content-Type": content_type})
    assert put.status_code == 200
    assert _json(put) == {}
    assert local_store.get("mlflow-artifacts/0/r/artifacts/f.bin").body == BINARY
    got = client.http.get(f"{API}/artifacts/0/r/artifacts/f.bin", headers={"Accept": "*/*"})
    assert got.status_code == 200
    assert got.body == BINARY
    assert got.headers["Content-Type"] == "application/octet-stream"


def test_list_by_query_parameter_under_api_and_ajax_api(client):
    for path in ["0/r/a.txt", "0/r/d/b.txt"]:
        client.http.put(f"{API}/artifacts/{path}", body=b"x", headers={"Content-Type": "text/plain"})
    for prefix in (API, "/mlflow/ajax-api/2.0/mlflow-artifacts"):
        listed = client.http.get(f"{prefix}/artifacts?path=0%2Fr")
        assert _json(listed) == {"files": [{"path": "a.txt", "is_dir": False, "file_size": 1},
                                           {"path": "d", "is_dir": True}]}
    assert _json(client.http.get(f"{API}/artifacts?path=0%2Fnothing")) == {}


def test_paths_as_deep_as_the_documented_maximum(client, local_store):
    deep = "/".join(f"d{i}" for i in range(MAX_DEPTH - 1))  # plus the "artifacts" segment
    assert client.http.put(f"{API}/artifacts/{deep}", body=b"deep").status_code == 200
    assert local_store.get(f"mlflow-artifacts/{deep}").body == b"deep"


def test_encoded_names_are_decoded_once(client, local_store):
    client.http.put(f"{API}/artifacts/0/my%20file%2B1.txt", body=b"x")
    client.http.put(f"{API}/artifacts/0/literal%2541.txt", body=b"y")
    assert sorted(i.key for i in local_store.list("")) == ["mlflow-artifacts/0/literal%41.txt",
                                                         "mlflow-artifacts/0/my file+1.txt"]


@pytest.mark.parametrize("path", [
    "0/../x", "../x", "0/%2e%2e/x", "0/%2E%2E/%2E%2E/x", "0/a%2Fb", "%2Fetc%2Fpasswd", "0/a%5Cb",
    "0/a\\b", "0/x%00y", "0//x", "0/%252e%252e/x", "0/a%23b", "C:/x",
])
def test_traversal_and_bad_paths_are_400_and_write_nothing(client, local_store, path):
    for method, url in [("PUT", f"{API}/artifacts/{path}"), ("GET", f"{API}/artifacts/{path}"),
                        ("DELETE", f"{API}/artifacts/{path}"), ("GET", f"{API}/presigned/{path}"),
                        ("POST", f"{API}/mpu/create/{path}")]:
        resp = client.http.request(method, url, body=json.dumps({"path": "f.bin", "num_parts": 1}).encode(),
                                   headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (method, url, resp.body)
        assert _json(resp)["error_code"] == "INVALID_PARAMETER_VALUE"
    assert list(local_store.list("")) == []


@pytest.mark.parametrize("value", ["../x", "0/../x", "/etc", "0/%2e%2e/x", "0\\x", "C:/x", "0/x%00"])
def test_listing_a_bad_query_path_is_400(client, value):
    resp = client.http.get(f"{API}/artifacts?path={quote(value, safe='')}")
    assert resp.status_code == 400
    assert _json(resp)["error_code"] == "INVALID_PARAMETER_VALUE"


def test_raw_dot_segments_reach_the_server_and_are_refused(live_server_factory, tmp_path):
    """HTTP libraries drop '..' from URLs; send them raw to the real ``stacflow serve``."""
    server = live_server_factory(f"file://{tmp_path}/store")
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    for path in ["0/../../../etc/passwd", "0/./x", "../x"]:
        conn.request("PUT", f"{API}/artifacts/{path}", body=b"x")
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    conn.close()
    assert not (tmp_path / "store" / "mlflow-artifacts").exists()


def test_unknown_operations_are_mlflow_404s(client):
    for method, url in [("GET", f"{API}/nothing/0/x"), ("POST", f"{API}/mpu/finish/0/x"),
                        ("PUT", f"{API}/presigned/0/x")]:
        resp = client.http.request(method, url, body=b"{}", headers={"Content-Type": "application/json"})
        assert resp.status_code == 404
        assert _json(resp)["error_code"] == "ENDPOINT_NOT_FOUND"


def test_missing_artifact_is_404_resource_does_not_exist(client):
    resp = client.http.get(f"{API}/artifacts/0/none.bin")
    assert resp.status_code == 404
    assert _json(resp)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_bad_multipart_requests_are_400_not_500(client):
    bodies = [b"not json", b"[1]", json.dumps({"num_parts": 1}).encode(),
              json.dumps({"path": "f.bin", "num_parts": "many"}).encode(),
              json.dumps({"path": "f.bin", "num_parts": 0}).encode()]
    for body in bodies:
        resp = client.http.post(f"{API}/mpu/create/0/r", body=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, body
    for body in [{"path": "f.bin"}, {"path": "f.bin", "upload_id": "abc", "parts": "x"},
                 {"path": "f.bin", "upload_id": "../../x", "parts": [{"part_number": 1, "etag": "e"}]}]:
        resp = client.http.post(f"{API}/mpu/complete/0/r", body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        assert resp.status_code in (400, 404), body
        assert "error_code" in _json(resp), body


def test_big_downloads_redirect_to_a_signed_url_that_serves_ranges(client, local_store):
    big = bytes(range(256)) * (PROXY_LIMIT // 256 + 1)
    local_store.put("mlflow-artifacts/0/big.bin", big)
    resp = client.http.get(f"{API}/artifacts/0/big.bin", headers={"Host": "example.org"})
    assert resp.status_code == 307
    location = resp.headers["Location"]
    assert location.startswith("http://example.org/files/")
    files_path = urlsplit(location).path
    # In-process (as on Lambda) one response carries at most PROXY_LIMIT bytes; `stacflow serve`
    # streams the whole object instead (tests/http/test_files.py).
    whole = client.http.get(files_path, headers={"Accept": "*/*"})
    assert whole.status_code == 413
    assert whole.headers["Accept-Ranges"] == "bytes"
    head = client.http.get(files_path, headers={"Accept": "*/*", "Range": "bytes=0-"})
    assert (head.status_code, head.body) == (206, big[:PROXY_LIMIT])
    assert head.headers["Content-Range"] == f"bytes 0-{PROXY_LIMIT - 1}/{len(big)}"
    part = client.http.get(files_path, headers={"Accept": "*/*", "Range": "bytes=10-19"})
    assert (part.status_code, part.body) == (206, big[10:20])
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(big)}"
    tail = client.http.get(files_path, headers={"Accept": "*/*", "Range": "bytes=-5"})
    assert tail.body == big[-5:]
    beyond = client.http.get(files_path, headers={"Accept": "*/*", "Range": f"bytes={len(big)}-"})
    assert beyond.status_code == 416


def test_presigned_endpoint_describes_the_download(client, local_store):
    local_store.put("mlflow-artifacts/0/a.bin", BINARY)
    resp = client.http.get(f"{API}/presigned/0/a.bin", headers={"Host": "h:1"})
    doc = _json(resp)
    assert doc["file_size"] == len(BINARY)
    assert doc["headers"] == {}
    assert doc["url"].startswith("http://h:1/files/")


def test_server_info_advertises_multipart_transfers(client):
    for api in ("api", "ajax-api"):
        doc = _json(client.http.get(f"/mlflow/{api}/3.0/mlflow/server-info"))
        assert doc["multipart_uploads_enabled"] is True
        assert doc["multipart_downloads_enabled"] is True
        assert doc["workspaces_enabled"] is False


def _lambda_event(method: str, segments: list[str], *, body: bytes | None = None,
                  content_type: str = "application/json") -> dict:
    """An API Gateway REST proxy event, as Lambda receives it (binary bodies base64-encoded)."""
    names = [f"p{i}" for i in range(1, len(segments) + 1)]
    resource = "/mlflow/api/2.0/mlflow-artifacts/" + "/".join("{%s}" % n for n in names)
    return {
        "resource": resource, "path": "/mlflow/api/2.0/mlflow-artifacts/" + "/".join(segments),
        "httpMethod": method, "headers": {"Content-Type": content_type, "Accept": "*/*", "Host": "x.example"},
        "multiValueQueryStringParameters": None, "pathParameters": dict(zip(names, segments)),
        "stageVariables": None, "requestContext": {"resourcePath": resource, "httpMethod": method,
                                                   "path": "/api/mlflow/api/2.0/mlflow-artifacts", "stage": "api"},
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def test_lambda_events_carry_binary_bodies_both_ways(client, local_store):
    from app import app
    put = app(_lambda_event("PUT", ["artifacts", "0", "w.pt"], body=BINARY,
                            content_type="application/vnd.snesdev-page-table"), None)
    assert put["statusCode"] == 200
    assert local_store.get("mlflow-artifacts/0/w.pt").body == BINARY
    got = app(_lambda_event("GET", ["artifacts", "0", "w.pt"]), None)
    assert got["statusCode"] == 200
    assert got["isBase64Encoded"] is True
    assert base64.b64decode(got["body"]) == BINARY
    traversal = app(_lambda_event("PUT", ["artifacts", "0", "%2E%2E", "x"], body=b"x"), None)
    assert traversal["statusCode"] == 400


def test_routes_package_for_api_gateway():
    """What ``chalice package`` checks: every route's content types agree on being binary."""
    from chalice.deploy.validate import validate_route_content_types, validate_routes

    from app import app
    validate_routes(app.routes)
    validate_route_content_types(app.routes, app.api.binary_types)
    assert {"application/octet-stream", "image/tiff", "application/x-hdf5"} <= set(app.api.binary_types)


def test_file_folder_clash_on_the_local_store_is_400_not_500(client, local_store):
    assert client.http.put(f"{API}/artifacts/0/x", body=b"file").status_code == 200
    assert client.http.put(f"{API}/artifacts/0/d/f", body=b"nested").status_code == 200
    for path in ["0/x/y", "0/d"]:
        resp = client.http.put(f"{API}/artifacts/{path}", body=b"clash")
        assert resp.status_code == 400
        assert _json(resp)["error_code"] == "INVALID_PARAMETER_VALUE"
    assert sorted(i.key for i in local_store.list("")) == ["mlflow-artifacts/0/d/f", "mlflow-artifacts/0/x"]
