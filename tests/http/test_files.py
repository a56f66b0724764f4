"""``/files/{token}``: streamed and ranged under ``stacflow serve``, bounded in-process (Lambda), never logged."""
from __future__ import annotations

import pathlib
import socket
import tracemalloc
import urllib.error
import urllib.request
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.store.local import LocalStore

BIG = 200 * 1024 * 1024
KEY = "mlflow-artifacts/0/r/artifacts/big.bin"


def _sparse_object(store: LocalStore, key: str, size: int) -> None:
    """A big object that costs neither disk nor memory to make."""
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
    store.head(key)  # its ETag is computed (streamed) and stamped here, not in the measured requests


def _peak_rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], int, bytes]:
    """(status, headers, bytes received, first 64 KiB), reading the body a chunk at a time."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        resp = urllib.request.urlopen(req)
    except urllib.error.HTTPError as err:
        resp = err
    with resp:
        head, total = b"", 0
        while chunk := resp.read(1 << 20):
            head += chunk[:max(0, 65536 - len(head))]
            total += len(chunk)
        return resp.status, dict(resp.headers), total, head


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="reads the server's peak RSS in /proc")
def test_serve_streams_big_objects_in_bounded_memory(local_store: LocalStore, live_server_factory) -> None:  # type: ignore[no-untyped-def]
    _sparse_object(local_store, KEY, BIG)
    local_store.put("warm.bin", b"warm")
    server = live_server_factory(local_store.uri)
    warm = local_store.presign_get("warm.bin", base_url=server.url)
    assert _get(warm)[0] == 200
    assert _get(warm, {"Range": "bytes=0-0"})[0] == 206  # imports done
    url = local_store.presign_get(KEY, base_url=server.url)
    start = _peak_rss_mb(server.proc.pid)

    status, headers, received, body = _get(url, {"Range": "bytes=0-0"})
    assert (status, received, body, headers["Content-Range"]) == (206, 1, b"\0", f"bytes 0-0/{BIG}")
    after_range = _peak_rss_mb(server.proc.pid)
    assert after_range - start < 32, f"a 1-byte range of a {BIG >> 20} MB object cost {after_range - start:.0f} MB"

    status, headers, received, _ = _get(url)
    assert (status, received, int(headers["Content-Length"])) == (200, BIG, BIG)
    after_full = _peak_rss_mb(server.proc.pid)
    assert after_full - start < 48, f"a full GET of {BIG >> 20} MB cost {after_full - start:.0f} MB"


def test_serve_answers_ranges_like_s3(local_store: LocalStore, live_server_factory) -> None:  # type: ignore[no-untyped-def]
    body = bytes(range(256)) * 5000
    info = local_store.put("r.bin", body)
    server = live_server_factory(local_store.uri)
    url = local_store.presign_get("r.bin", base_url=server.url)
    status, headers, _, got = _get(url, {"Range": "bytes=1000-1009"})
    assert (status, got, headers["Content-Range"], headers["ETag"]) == (206, body[1000:1010],
                                                                       f"bytes 1000-1009/{len(body)}", info.etag)
    assert _get(url, {"Range": "bytes=-3"})[3] == body[-3:]
    status, headers, received, got = _get(url)
    assert (status, received, got) == (200, len(body), body[:65536])
    status, headers, _, _ = _get(url, {"Range": f"bytes={len(body)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(body)}")
    assert _get(url, {"Range": "bytes=5-2"})[0] == 416
    assert _get(url[:-2] + ("AA" if not url.endswith("AA") else "BB"))[0] == 403
    assert _get(local_store.presign_put("r.bin", base_url=server.url))[0] == 403  # a PUT signature
    assert _get(local_store.presign_get("gone.bin", base_url=server.url))[0] == 404
    assert _get(server.url + "/health")[0] == 200  # other routes still go through Chalice


@pytest.fixture
def client(local_store: LocalStore) -> Iterator[Client]:
    services.configure(store=local_store)
    from app import app
    with Client(app) as c:
        yield c
    services.configure()


def test_in_process_route_reads_only_the_range(client: Client, local_store: LocalStore) -> None:
    """The Chalice route (Lambda, or any host without the streaming server) never loads the whole object."""
    big = 16 * 1024 * 1024
    _sparse_object(local_store, "b/big.bin", big)
    path = urlsplit(local_store.presign_get("b/big.bin", base_url="http://h")).path
    tracemalloc.start()
    try:
        resp = client.http.get(path, headers={"Accept": "*/*", "Range": "bytes=5-5"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (resp.status_code, resp.body, resp.headers["Content-Range"]) == (206, b"\0", f"bytes 5-5/{big}")
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes for one byte"


def test_redact_removes_bearer_tokens_and_query_signatures() -> None:
    from chalicelib.observability import REDACTED, redact
    line = ('"GET /files/eyJtIjoiR0VUIn0.c2lnbmF0dXJl?X-Amz-Signature=abc123&X-Amz-Credential=AKIA%2Fx'
            '&X-Amz-Security-Token=tok&partNumber=2 HTTP/1.1" 206 -')
    cleaned = redact(line)
    for secret in ("eyJtIjoiR0VUIn0", "c2lnbmF0dXJl", "abc123", "AKIA", "=tok"):
        assert secret not in cleaned
    assert cleaned.startswith(f'"GET /files/{REDACTED}?X-Amz-Signature={REDACTED}&')
    assert "partNumber=2 HTTP/1.1" in cleaned
    assert redact("GET /stac/search?limit=10 HTTP/1.1") == "GET /stac/search?limit=10 HTTP/1.1"


def test_access_log_never_shows_a_signed_url(local_store: LocalStore, live_server_factory) -> None:  # type: ignore[no-untyped-def]
    redacted = "<redacted>"
    local_store.put("secret.bin", b"s")
    server = live_server_factory(local_store.uri)
    url = local_store.presign_get("secret.bin", base_url=server.url)
    put_url = local_store.presign_put("up.bin", base_url=server.url)
    token, put_token = url.rsplit("/", 1)[1], put_url.rsplit("/", 1)[1]
    assert _get(url + "?X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIAEXAMPLE")[0] == 200
    assert _get(url[:-2] + "xx")[0] == 403
    urllib.request.urlopen(urllib.request.Request(put_url, data=b"u", method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"})).read()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:  # a malformed request is logged too
        sock.sendall(f"GET /files/{token} HTTP/9.9\r\n\r\n".encode())
        sock.recv(1024)
    assert _get(server.url + "/health")[0] == 200  # its log line comes after all of the above
    log = pathlib.Path(server.log.name).read_text()
    assert "/health" in log
    assert log.count(f"/files/{redacted}") >= 4
    for secret in (token, token[:-2], put_token, "deadbeefcafe", "AKIAEXAMPLE"):
        assert secret not in log
