"""Links cannot be poisoned: nothing derived from a request is stored, forwarded headers count only
from trusted proxies, and items served by the API and read from the static catalog resolve."""
from __future__ import annotations

import json
import pathlib
import urllib.request
from typing import Any, Iterator

import pystac
import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.settings import Settings
from chalicelib.store import ObjectStore
from chalicelib.store.local import LocalStore
from tests.helpers.registry_world import MLMODEL

API = "/mlflow/api/2.0/mlflow"
ATTACK = {"Host": "svc.example", "X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https",
          "X-Forwarded-Prefix": "/evil", "Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[Any, LocalStore, pathlib.Path]]:
    from app import app
    root = tmp_path / "store"
    store = LocalStore(root, fsync=False)
    services.configure(store=store, settings=Settings(store_uri=store.uri, public_url=None, dispatch_events=True))
    with Client(app) as client:
        yield client.http, store, root
    services.configure()


def _post(http: Any, path: str, body: dict[str, Any], headers: dict[str, str] = ATTACK) -> Any:
    resp = http.post(path, body=json.dumps(body), headers=headers)
    assert resp.status_code == 200, resp.body
    return json.loads(resp.body)


def _publish_two_versions(http: Any, store: ObjectStore, onnx: bytes) -> str:
    """Every write through the API with forwarded headers pointing elsewhere; returns the files' key prefix."""
    eid = _post(http, f"{API}/experiments/create", {"name": "e"})["experiment_id"]
    run = _post(http, f"{API}/runs/create", {"experiment_id": eid})["run"]["info"]
    prefix = "mlflow-artifacts/" + run["artifact_uri"].split(":", 1)[1].strip("/") + "/model"
    store.put(f"{prefix}/model.onnx", onnx)
    store.put(f"{prefix}/MLmodel", MLMODEL)
    _post(http, f"{API}/registered-models/create", {"name": "m"})
    for _ in range(2):
        _post(http, f"{API}/model-versions/create", {"name": "m", "source": f"runs:/{run['run_id']}/model"})
    _post(http, f"{API}/registered-models/set-tag", {"name": "m", "key": "k", "value": "v"})
    return prefix


def _stored_text(root: pathlib.Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


def test_forwarded_headers_of_untrusted_peers_are_never_stored_nor_served(served: Any, onnx_bytes: bytes) -> None:
    http, store, root = served
    prefix = _publish_two_versions(http, store, onnx_bytes)
    stored = _stored_text(root)
    assert "attacker.example" not in stored
    assert "/evil" not in stored
    assert "svc.example" not in stored
    assert store.exists("collections/ai-model/items/m-v1.json")

    # The API resolves the stored relative hrefs against this request's own (trusted) base.
    item = json.loads(http.get("/stac/collections/ai-model/items/m-v1", headers=ATTACK).body)
    found = json.loads(http.post("/stac/search", body=json.dumps({"collections": ["ai-model"], "ids": ["m-v1"]}),
                                 headers=ATTACK).body)["features"]
    for served_item in (item, found[0]):
        links = {link["rel"]: link["href"] for link in served_item["links"]}
        assert links["successor-version"] == "http://svc.example/stac/collections/ai-model/items/m-v2"
        assert links["self"] == "http://svc.example/stac/collections/ai-model/items/m-v1"
        href = served_item["assets"]["model.onnx"]["href"]
        assert href == ("http://svc.example/mlflow/api/2.0/mlflow-artifacts/artifacts/"
                        + prefix[len("mlflow-artifacts/"):] + "/model.onnx")
    download = http.get(href[len("http://svc.example"):], headers={"Host": "svc.example", "Accept": "*/*"})
    assert download.status_code == 200
    assert download.body == onnx_bytes


def test_the_static_catalog_resolves_on_its_own(served: Any, onnx_bytes: bytes) -> None:
    http, store, root = served
    _publish_two_versions(http, store, onnx_bytes)
    item = pystac.Item.from_file(str(root / "collections/ai-model/items/m-v1.json"))
    onnx_path = pathlib.Path(item.assets["model.onnx"].get_absolute_href() or "")
    assert onnx_path.read_bytes() == onnx_bytes
    successor = next(link for link in item.links if link.rel == "successor-version")
    assert pathlib.Path(successor.get_absolute_href() or "").resolve() == (
        root / "collections/ai-model/items/m-v2.json").resolve()


def test_forwarded_headers_count_from_a_trusted_proxy_only(served: Any, onnx_bytes: bytes) -> None:
    http, store, root = served
    services.configure(store=store, settings=Settings(store_uri=store.uri, public_url=None, dispatch_events=True,
                                                      trusted_proxies=("10.0.0.0/8",)))
    _publish_two_versions(http, store, onnx_bytes)
    proxied = {**ATTACK, "X-Forwarded-Host": "proxy.example", "X-Stacflow-Peer": "10.1.2.3"}
    item = json.loads(http.get("/stac/collections/ai-model/items/m-v1", headers=proxied).body)
    assert item["links"][0]["href"].startswith("https://proxy.example/evil/stac/")
    assert item["assets"]["model.onnx"]["href"].startswith("https://proxy.example/evil/mlflow/api/2.0/")
    spoofed = {**proxied, "X-Stacflow-Peer": "192.0.2.1"}
    item = json.loads(http.get("/stac/collections/ai-model/items/m-v1", headers=spoofed).body)
    assert item["links"][0]["href"].startswith("http://svc.example/stac/")
    assert "proxy.example" not in _stored_text(root)


def test_trusted_peers() -> None:
    from chalicelib.http.urls import trusted
    assert trusted("10.1.2.3", ("10.0.0.0/8",))
    assert trusted("::1", ("::1",))
    assert trusted(None, ("*",))
    assert not trusted("11.0.0.1", ("10.0.0.0/8",))
    assert not trusted(None, ("10.0.0.0/8",))
    assert not trusted("not an ip", ("10.0.0.0/8", "bogus"))
    assert not trusted("10.0.0.1", ())


def test_stacflow_serve_sets_the_peer_itself(live_server_factory: Any, tmp_path: pathlib.Path) -> None:
    """A client cannot claim to be a trusted proxy by sending the peer header itself."""
    server = live_server_factory(f"file://{tmp_path / 'store'}", {"STACFLOW_TRUSTED_PROXIES": "10.0.0.0/8"})
    request = urllib.request.Request(f"{server.url}/stac/", headers={
        "X-Stacflow-Peer": "10.0.0.1", "X-Forwarded-Host": "attacker.example"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        landing = json.loads(resp.read())
    assert landing["links"][0]["href"] == f"{server.url}/stac"
