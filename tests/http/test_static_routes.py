"""``/browser/`` (and any UI mounted with ``site_blueprint``), ``/`` and CORS, through the Chalice app."""
from __future__ import annotations

import json
import pathlib
from typing import Any, Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.settings import Settings
from chalicelib.store import ObjectStore

INDEX = b"<!doctype html><title>STAC Browser</title>"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _h(response: Any, name: str) -> str | None:
    """A response header, whatever its case (the test client keeps the app's)."""
    return {k.lower(): v for k, v in response.headers.items()}.get(name)


def _settings(store: ObjectStore, ui_dir: pathlib.Path | None, origins: tuple[str, ...] = ("*",)) -> Settings:
    return Settings(store_uri=store.uri, public_url=None, dispatch_events=False,
                    ui_dir=str(ui_dir) if ui_dir else None, cors_origins=origins)


@pytest.fixture
def ui_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "ui"
    (root / "browser" / "js").mkdir(parents=True)
    (root / "browser" / "index.html").write_bytes(INDEX)
    (root / "browser" / "js" / "app.0a1b2c3d.js").write_bytes(b"console.log('x')")
    (root / "browser" / "img").mkdir()
    (root / "browser" / "img" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\nbytes")
    return root


@pytest.fixture
def client(local_store: ObjectStore, ui_dir: pathlib.Path) -> Iterator[Client]:
    from app import app
    services.configure(store=local_store, settings=_settings(local_store, ui_dir))
    with Client(app) as c:
        yield c
    services.configure()


def test_browser_root_serves_the_index(client: Client) -> None:
    response = client.http.get("/browser/", headers=HTML)
    assert (response.status_code, response.body, _h(response, "content-type")) == \
        (200, INDEX, "text/html; charset=utf-8")


def test_deep_link_reloads_to_the_index(client: Client) -> None:
    response = client.http.get("/browser/stac/collections/dataset/items/lakes-v1.0", headers=HTML)
    assert (response.status_code, response.body) == (200, INDEX)


def test_hashed_script_is_cached_for_a_year(client: Client) -> None:
    response = client.http.get("/browser/js/app.0a1b2c3d.js", headers={"Accept": "*/*"})
    assert (response.status_code, _h(response, "cache-control")) == (200, "public, max-age=31536000, immutable")


def test_binary_files_arrive_intact(client: Client) -> None:
    response = client.http.get("/browser/img/logo.png", headers={"Accept": "image/*,*/*;q=0.8"})
    assert response.body == b"\x89PNG\r\n\x1a\nbytes"


def test_etag_revalidation_answers_304(client: Client) -> None:
    etag = _h(client.http.get("/browser/js/app.0a1b2c3d.js", headers={"Accept": "*/*"}), "etag")
    response = client.http.get("/browser/js/app.0a1b2c3d.js", headers={"Accept": "*/*", "If-None-Match": etag})
    assert response.status_code == 304


def test_missing_asset_is_404_in_the_stac_error_shape(client: Client) -> None:
    response = client.http.get("/browser/js/missing.0a1b2c3d.js", headers={"Accept": "*/*"})
    assert (response.status_code, json.loads(response.body)["code"]) == (404, "NotFound")


def test_traversal_is_refused(client: Client) -> None:
    response = client.http.get("/browser/%2e%2e/%2e%2e/etc/passwd", headers=HTML)
    assert (response.status_code, json.loads(response.body)["code"]) == (400, "InvalidParameterValue")


def test_unbuilt_ui_is_404_not_an_error(local_store: ObjectStore) -> None:
    from app import app
    services.configure(store=local_store, settings=_settings(local_store, None))  # the store's ui/: empty
    with Client(app) as c:
        response = c.http.get("/browser/", headers=HTML)
    services.configure()
    assert (response.status_code, "not built" in json.loads(response.body)["description"]) == (404, True)


def test_landing_page_for_browsers_links_the_uis(client: Client) -> None:
    body = client.http.get("/", headers=HTML).body.decode()
    assert all(f'/{path}"' in body for path in ("browser/", "mlflow/", "stac"))


def test_landing_page_for_json_clients_lists_the_service_links(client: Client) -> None:
    doc = json.loads(client.http.get("/", headers={"Accept": "application/json"}).body)
    assert {link["href"].split("/", 3)[-1] for link in doc["links"]} >= {"browser/", "mlflow/", "stac"}


# -- CORS ----------------------------------------------------------------------------------------
def _cors_client(local_store: ObjectStore, origins: tuple[str, ...]) -> Any:
    from app import app
    services.configure(store=local_store, settings=_settings(local_store, None, origins))
    return Client(app)


def test_stac_answers_carry_allow_origin(client: Client) -> None:
    response = client.http.get("/stac/collections", headers={"Origin": "https://elsewhere.example"})
    assert _h(response, "access-control-allow-origin") == "*"


def test_stac_errors_carry_allow_origin(client: Client) -> None:
    response = client.http.get("/stac/collections/nope", headers={"Origin": "https://elsewhere.example"})
    assert (response.status_code, _h(response, "access-control-allow-origin")) == (404, "*")


def test_preflight_for_post_search(client: Client) -> None:
    response = client.http.request("OPTIONS", "/stac/search", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    allowed = {m.strip() for m in _h(response, "access-control-allow-methods").split(",")}
    assert (response.status_code, allowed, "Content-Type" in _h(response, "access-control-allow-headers")) == \
        (204, {"GET", "POST", "OPTIONS"}, True)


def test_listed_origin_is_echoed_and_others_get_nothing(local_store: ObjectStore) -> None:
    with _cors_client(local_store, ("https://ok.example",)) as c:
        ok = c.http.get("/stac/collections", headers={"Origin": "https://ok.example"})
        other = c.http.get("/stac/collections", headers={"Origin": "https://evil.example"})
    services.configure()
    assert (_h(ok, "access-control-allow-origin"), _h(ok, "vary"), _h(other, "access-control-allow-origin")) == \
        ("https://ok.example", "Origin", None)


def test_credentials_are_never_allowed(local_store: ObjectStore) -> None:
    with _cors_client(local_store, ("https://ok.example",)) as c:
        headers = c.http.request("OPTIONS", "/stac/search", headers={
            "Origin": "https://ok.example", "Access-Control-Request-Method": "POST"}).headers
    services.configure()
    assert "access-control-allow-credentials" not in {k.lower() for k in headers}


def test_mlflow_api_carries_no_cors(client: Client) -> None:
    response = client.http.get("/mlflow/api/2.0/mlflow/experiments/search?max_results=1",
                               headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in {k.lower() for k in response.headers}
