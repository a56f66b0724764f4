"""STAC Browser at /browser/ in headless Chromium, against ``stacflow serve`` over a seeded catalog.

Needs the built UI (``make setup`` builds build/ui/browser) and Debian's Chromium. Each view must
load with no console error beyond ``stac_browser.ALLOWED_ERRORS``; map tiles are served blank
(offline). Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import pathlib
from typing import Any, Iterator

import pytest

from chalicelib.settings import BUILT_UI
from chalicelib.store.local import LocalStore
from tests.helpers.browser import Console, chromium, screenshot
from tests.helpers.servers import LiveServer
from tests.helpers.stac_browser import ALLOWED_ERRORS, add_search_term, drag_bbox, map_features, offline_web
from tests.helpers.ui_catalog import GITLAB, MODEL_BYTES, Seeded, seed

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (BUILT_UI / "browser" / "index.html").is_file(),
                                 reason="STAC Browser is not built: run `make setup` (builds build/ui/browser)")]
TIMEOUT = 20_000  # ms: a cold page on 2 busy cores


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Seeded]]:
    root = tmp_path_factory.mktemp("ui")
    store = LocalStore(root / "store")
    seeded = seed(store, root / "items")
    server = LiveServer(store.uri, {"STACFLOW_UI": str(BUILT_UI)})
    yield server, seeded
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Console]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    offline_web(page)
    yield page, Console.watch(page)
    context.close()


def test_root_lists_the_collections(service: tuple[LiveServer, Seeded], page: tuple[Any, Console]) -> None:
    server, _ = service
    p, console = page
    p.goto(f"{server.url}/browser/")
    p.get_by_text("Versioned Earth-observation training").wait_for()
    screenshot(p, "stac-browser-root")
    assert p.get_by_role("link", name="AI models").count() >= 1
    assert console.unexpected(ALLOWED_ERRORS) == []


def test_collection_lists_its_items(service: tuple[LiveServer, Seeded], page: tuple[Any, Console]) -> None:
    server, _ = service
    p, console = page
    p.goto(f"{server.url}/browser/stac/collections/dataset")
    p.get_by_text("Baltic lakes").first.wait_for()
    screenshot(p, "stac-browser-collection")
    assert p.get_by_text("Alpine tiles").count() >= 1
    assert p.get_by_text("Forest segmenter v1").count() == 0
    assert console.unexpected(ALLOWED_ERRORS) == []


def test_item_page_shows_footprint_assets_and_gitlab_project(service: tuple[LiveServer, Seeded],
                                                            page: tuple[Any, Console]) -> None:
    server, seeded = service
    p, console = page
    p.goto(f"{server.url}/browser/stac/collections/dataset/items/{seeded.alpine}")  # a deep link, loaded cold
    p.locator(".ol-viewport").first.wait_for()
    p.get_by_text("labels.csv").first.wait_for()
    p.wait_for_function("() => document.querySelector('.ol-viewport canvas') !== null")
    p.wait_for_timeout(500)  # the footprint layer is added once the map has its size
    screenshot(p, "stac-browser-item")
    assert map_features(p) >= 1
    assert p.get_by_role("link", name="GitLab project eo/alpine-tiles").get_attribute("href") == GITLAB
    assert console.unexpected(ALLOWED_ERRORS) == []


def test_deep_link_survives_a_reload(service: tuple[LiveServer, Seeded], page: tuple[Any, Console]) -> None:
    server, seeded = service
    p, _ = page
    p.goto(f"{server.url}/browser/stac/collections/ai-model/items/{seeded.model}")
    p.get_by_text("A U-Net that segments forests.").first.wait_for()
    p.reload()
    p.get_by_text("A U-Net that segments forests.").first.wait_for()
    assert p.title().startswith("Forest segmenter v1")


def test_search_by_text(service: tuple[LiveServer, Seeded], page: tuple[Any, Console]) -> None:
    server, _ = service
    p, console = page
    p.goto(f"{server.url}/browser/search")
    p.locator(".filter-freetext .multiselect").wait_for()
    add_search_term(p, "lakes")
    with p.expect_response(lambda r: r.url.endswith("/stac/search") and r.request.method == "POST") as answer:
        p.get_by_role("button", name="Submit").click()
    assert answer.value.status == 200
    results = p.locator(".items")
    results.get_by_text("Baltic lakes").first.wait_for()
    screenshot(p, "stac-browser-search-text")
    assert results.get_by_text("Alpine tiles").count() == 0
    assert console.unexpected(ALLOWED_ERRORS) == []


def test_search_by_bbox(service: tuple[LiveServer, Seeded], page: tuple[Any, Console]) -> None:
    server, _ = service
    p, console = page
    p.goto(f"{server.url}/browser/search")
    p.locator(".filter-freetext .multiselect").wait_for()
    p.click("label[for=bbox1]")
    p.locator(".filter-bbox .ol-viewport").wait_for()
    p.wait_for_timeout(500)  # the map fits its view once it has its size
    drag_bbox(p, 4.0, 44.0, 10.0, 49.0)  # the Alps, not Finland
    with p.expect_request(lambda r: r.url.endswith("/stac/search") and r.method == "POST") as sent:
        p.get_by_role("button", name="Submit").click()
    results = p.locator(".items")
    results.get_by_text("Alpine tiles").first.wait_for()
    results.get_by_text("Forest segmenter v1").first.wait_for()
    screenshot(p, "stac-browser-search-bbox")
    assert "bbox" in (sent.value.post_data_json or {})
    assert results.get_by_text("Baltic lakes").count() == 0
    assert console.unexpected(ALLOWED_ERRORS) == []


def test_asset_download_delivers_the_bytes(service: tuple[LiveServer, Seeded], page: tuple[Any, Console],
                                           tmp_path: pathlib.Path) -> None:
    server, seeded = service
    p, console = page
    p.goto(f"{server.url}/browser/stac/collections/ai-model/items/{seeded.model}")
    link = p.get_by_role("link", name="Download").first  # the only asset's panel starts open
    link.wait_for()
    p.wait_for_timeout(500)  # the panel finishes opening (a click mid-animation lands on the wrong element)
    screenshot(p, "stac-browser-model-item")
    with p.expect_download() as download:
        link.click()
    target = tmp_path / "model.onnx"
    download.value.save_as(target)
    assert target.read_bytes() == MODEL_BYTES
    assert console.unexpected(ALLOWED_ERRORS) == []
