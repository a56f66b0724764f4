"""The static UI server: media types, caching, ETag/304, history-mode fallback, traversal refused."""
from __future__ import annotations

import os
import pathlib

import pytest

from chalicelib.store import ObjectStore
from chalicelib.ui.publish import publish_site
from chalicelib.ui.static import (IMMUTABLE, REVALIDATE, BadPath, DirectorySource, Site, StoreSource, clean_path,
                                  is_hashed, serve)

INDEX = b"<!doctype html><title>app</title>"
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SCRIPT = {"accept": "*/*"}


@pytest.fixture
def build(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "build" / "browser"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "js" / "app.0a1b2c3d.js").write_bytes(b"console.log(1)")
    (root / "favicon.ico").write_bytes(b"\x00\x01icon")
    (root / "config.json").write_bytes(b"{}")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    return root


def _site(root: pathlib.Path, history: bool = True) -> Site:
    return Site("browser", DirectorySource(root), history)


@pytest.mark.parametrize("raw", ["..", "../secret.txt", "js/../../secret.txt", "%2e%2e/secret.txt",
                                 "js%2f..%2f..%2fsecret.txt", "js\\..\\x", "%5c..", "a//b", "./index.html",
                                 "a%00b", "x\ny", "/" * 2 + "etc/passwd"])
def test_paths_that_could_leave_the_site_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        clean_path(raw)


def test_traversal_answers_400_and_reads_nothing_outside(build: pathlib.Path) -> None:
    answer = serve(_site(build), "GET", "%2e%2e/secret.txt", HTML)
    assert (answer.status, answer.body) == (400, b"")


def test_a_symlink_out_of_the_site_is_not_followed(build: pathlib.Path) -> None:
    os.symlink(build.parent.parent / "secret.txt", build / "leak.txt")
    assert serve(_site(build, history=False), "GET", "leak.txt", SCRIPT).status == 404


def test_double_encoding_is_decoded_once() -> None:
    assert clean_path("%252e%252e/a") == "%2e%2e/a"


def test_root_serves_index_revalidated(build: pathlib.Path) -> None:
    answer = serve(_site(build), "GET", "", HTML)
    assert (answer.status, answer.body, answer.headers["Content-Type"], answer.headers["Cache-Control"]) == \
        (200, INDEX, "text/html; charset=utf-8", REVALIDATE)


def test_hashed_files_are_immutable_others_revalidated(build: pathlib.Path) -> None:
    hashed = serve(_site(build), "GET", "js/app.0a1b2c3d.js", SCRIPT)
    plain = serve(_site(build), "GET", "config.json", SCRIPT)
    assert (hashed.headers["Cache-Control"], hashed.headers["Content-Type"], plain.headers["Cache-Control"]) == \
        (IMMUTABLE, "text/javascript; charset=utf-8", REVALIDATE)


@pytest.mark.parametrize("name,hashed", [("main.c2f5f8d4.js", True), ("7720.1cbd9501.chunk.js", True),
                                         ("pdf.worker.min.16b289c2599c81a29db9.mjs", True),
                                         ("index.html", False), ("favicon.ico", False), ("app.js", False),
                                         ("logo-2023.png", False)])
def test_hashed_names(name: str, hashed: bool) -> None:
    assert is_hashed(name) is hashed


def test_etag_gives_304_and_a_changed_file_a_new_etag(build: pathlib.Path) -> None:
    site = _site(build)
    first = serve(site, "GET", "config.json", SCRIPT)
    again = serve(site, "GET", "config.json", {**SCRIPT, "if-none-match": first.headers["ETag"]})
    (build / "config.json").write_bytes(b'{"changed": true}')
    changed = serve(site, "GET", "config.json", {**SCRIPT, "if-none-match": first.headers["ETag"]})
    assert (again.status, again.body, changed.status, changed.body) == (304, b"", 200, b'{"changed": true}')


def test_head_has_headers_and_no_body(build: pathlib.Path) -> None:
    answer = serve(_site(build), "HEAD", "js/app.0a1b2c3d.js", SCRIPT)
    assert (answer.status, answer.body, answer.headers["Cache-Control"]) == (200, b"", IMMUTABLE)


def test_history_mode_deep_links_get_the_index(build: pathlib.Path) -> None:
    answer = serve(_site(build), "GET", "stac/collections/dataset/items/lakes-v1.0", HTML)
    assert (answer.status, answer.body, answer.headers["Cache-Control"]) == (200, INDEX, REVALIDATE)


def test_a_missing_script_is_404_not_the_index(build: pathlib.Path) -> None:
    answer = serve(_site(build), "GET", "js/gone.0a1b2c3d.js", SCRIPT)
    assert (answer.status, answer.body) == (404, b"")


def test_without_history_mode_a_missing_page_is_404(build: pathlib.Path) -> None:
    assert serve(_site(build, history=False), "GET", "experiments/1", HTML).status == 404


def test_an_unbuilt_site_says_so(tmp_path: pathlib.Path) -> None:
    answer = serve(_site(tmp_path / "absent"), "GET", "", HTML)
    assert (answer.status, "not built" in (answer.message or "")) == (404, True)


def test_published_site_is_served_from_the_store(build: pathlib.Path, store: ObjectStore) -> None:
    publish_site(store, "browser", build)
    site = Site("browser", StoreSource(store, "ui/browser"), history=True)
    page = serve(site, "GET", "stac/collections/dataset", HTML)
    icon = serve(site, "GET", "favicon.ico", SCRIPT)
    cached = serve(site, "GET", "favicon.ico", {**SCRIPT, "if-none-match": icon.headers["ETag"]})
    assert (page.body, icon.body, icon.headers["Content-Type"], cached.status) == \
        (INDEX, b"\x00\x01icon", "image/x-icon", 304)


def test_a_file_too_big_for_a_lambda_response_is_redirected(build: pathlib.Path, local_store: ObjectStore) -> None:
    (build / "js" / "big.0a1b2c3d.js").write_bytes(b'"' * (3 * 1024 * 1024))  # 3 MB, 6 MB escaped
    publish_site(local_store, "browser", build)
    site = Site("browser", StoreSource(local_store, "ui/browser"), history=True)
    answer = serve(site, "GET", "js/big.0a1b2c3d.js", SCRIPT, base_url="http://svc")
    assert (answer.status, answer.headers["Location"].startswith("http://svc/files/")) == (307, True)


def test_publish_skips_unchanged_files_and_prunes_on_request(build: pathlib.Path, local_store: ObjectStore) -> None:
    first = publish_site(local_store, "browser", build)
    (build / "config.json").unlink()
    second = publish_site(local_store, "browser", build, prune=True)
    assert (first.uploaded, second.uploaded, second.unchanged, second.pruned) == (4, 0, 3, 1)


def test_publish_refuses_an_unbuilt_folder(tmp_path: pathlib.Path, local_store: ObjectStore) -> None:
    with pytest.raises(FileNotFoundError):
        publish_site(local_store, "browser", tmp_path)
