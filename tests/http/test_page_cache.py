"""``stacflow serve``'s page cache (chalicelib/http/page_cache.py): a shared answer is exactly what the
app would answer to that request, never another caller's, never older than the store.

A small Chalice app, served in-process by the real embedded server, counts how often each view runs,
so a test sees whether an answer came from the cache; the real service's pages are checked over
``stacflow serve`` in a subprocess.
"""
from __future__ import annotations

import email.utils
import http.client
import io
import json
import logging
import socket
import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest
from chalice import Chalice, Response

from chalicelib import observability, services
from chalicelib.http import auth, page_cache
from chalicelib.http.local_server import make_server
from chalicelib.http.observe import http_middleware
from chalicelib.settings import Settings
from chalicelib.store.local import LocalStore
from tests.helpers.servers import LiveServer


class Served:
    def __init__(self, port: int, calls: Counter[str]) -> None:
        self.port, self.calls = port, calls
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("GET", path, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def _test_app(calls: Counter[str]) -> Chalice:
    app = Chalice(app_name="page-cache-test")
    app.register_middleware(http_middleware, "http")

    @app.route("/echo")
    @page_cache.shared_page
    def echo() -> dict[str, Any]:
        calls["echo"] += 1
        headers = app.current_request.headers
        return {"run": calls["echo"], "authorization": headers.get("authorization"), "host": headers.get("host"),
                "query": app.current_request.query_params}

    @app.route("/caller")
    @page_cache.shared_page  # marked by mistake: it asks who the caller is
    def caller() -> dict[str, Any]:
        calls["caller"] += 1
        setattr(app.current_request, auth.PRINCIPAL, "someone")  # what auth.caller() leaves on a request
        return {"run": calls["caller"]}

    @app.route("/stored")
    @page_cache.shared_page  # marked by mistake: its answer is what the store holds
    def stored() -> Response:
        calls["stored"] += 1
        return Response(body=services.store().get("page.txt").body, headers={"Content-Type": "text/plain"})

    @app.route("/cookie")
    @page_cache.shared_page
    def cookie() -> Response:
        calls["cookie"] += 1
        return Response(body="{}", headers={"Set-Cookie": "a=b"})

    @app.route("/plain")
    def plain() -> dict[str, int]:
        calls["plain"] += 1
        return {"run": calls["plain"]}
    return app


@pytest.fixture
def served(local_store: LocalStore) -> Iterator[Served]:
    services.configure(store=local_store, settings=Settings(store_uri=local_store.uri, public_url=None,
                                                            dispatch_events=False))
    calls: Counter[str] = Counter()
    server = make_server(_test_app(calls), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield Served(server.server.server_address[1], calls)
    server.server.shutdown()
    server.server.server_close()
    services.configure()


def test_a_shared_page_is_computed_once_and_then_sent_from_the_cache(served: Served) -> None:
    first = served.get("/echo")
    second = served.get("/echo")
    assert (first[0], first[2], second[2], served.calls["echo"]) == (200, second[2], second[2], 1)


def test_a_page_is_filed_under_the_whole_request(served: Served) -> None:
    """Another token, host or query is another request: its own answer, never someone else's."""
    variants = [{}, {"Authorization": "Bearer token-of-alice"}, {"Authorization": "Bearer token-of-bob"},
                {"Host": "other.example"}, {"PRIVATE-TOKEN": "x"}, {"Cookie": "stacflow_session=y"}]
    bodies = [json.loads(served.get("/echo", **headers)[2]) for headers in variants]
    bodies.append(json.loads(served.get("/echo?a=1")[2]))
    assert [b["run"] for b in bodies] == list(range(1, len(variants) + 2))
    again = json.loads(served.get("/echo", Authorization="Bearer token-of-bob")[2])
    assert (again["run"], again["authorization"]) == (3, "Bearer token-of-bob")


def test_an_answer_that_asked_who_the_caller_is_is_never_shared(served: Served) -> None:
    runs = [json.loads(served.get("/caller")[2])["run"] for _ in range(3)]
    assert runs == [1, 2, 3]


def test_an_answer_that_read_the_store_is_never_shared_so_never_stale(served: Served,
                                                                      local_store: LocalStore) -> None:
    local_store.put("page.txt", b"before")
    before = served.get("/stored")[2]
    local_store.put("page.txt", b"after")  # a publication, as far as this page knows
    assert (before, served.get("/stored")[2]) == (b"before", b"after")


def test_answers_setting_cookies_and_unmarked_routes_are_never_shared(served: Served) -> None:
    for path in ("/cookie", "/plain"):
        served.get(path)
        served.get(path)
    assert (served.calls["cookie"], served.calls["plain"]) == (2, 2)


def test_the_correlation_id_is_each_requests_own(served: Served) -> None:
    ids = [served.get("/echo", **{"X-Request-Id": f"req-{i}"})[1]["x-request-id"] for i in range(3)]
    assert (ids, served.calls["echo"]) == (["req-0", "req-1", "req-2"], 1)


def test_a_matching_if_none_match_answers_304_without_a_body_on_a_kept_alive_connection(served: Served) -> None:
    status, headers, _ = served.get("/echo")
    etag = headers["etag"]
    for validator in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        not_modified = served.get("/echo", **{"If-None-Match": validator})
        assert (not_modified[0], not_modified[2], not_modified[1]["etag"]) == (304, b"", etag)
    changed = served.get("/echo", **{"If-None-Match": '"nope"'})
    assert (changed[0], changed[1]["etag"], served.calls["echo"]) == (200, etag, 1)


def test_the_first_answer_already_honours_if_none_match(served: Served) -> None:
    etag = page_cache.etag_of(served.get("/echo", Host="h1")[2])
    assert served.get("/echo", Host="h2")[0] == 200  # a new key: computed, stored
    assert served.get("/echo", **{"Host": "h3", "If-None-Match": etag})[0] == 200  # h3's page differs


def test_a_cached_answer_is_still_logged_as_a_request(served: Served) -> None:
    observability.setup()
    buf = io.StringIO()
    out = observability.handler(buf)
    logger = logging.getLogger(observability.SERVICE)
    logger.addHandler(out)
    try:
        served.get("/echo")
        served.get("/echo", **{"X-Request-Id": "cached-1"})
        # A cached answer's lines are written once it has left, before the connection's next request.
        served.get("/plain")
    finally:
        logger.removeHandler(out)
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if '"message":"request"' in line]
    assert [(line["route"], line["status"], line["correlation_id"]) for line in lines][-2] == ("/echo", 200, "cached-1")


def _answers(file: Any, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` answers read in turn from one connection's file (each with a Content-Length)."""
    out = []
    for _ in range(count):
        status = int(file.readline().split()[1])
        headers = {}
        while (line := file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.lower()] = value.strip()
        out.append((status, headers, file.read(int(headers.get("content-length", 0)))))
    return out


def test_pipelined_requests_each_take_their_own_way_in_order(served: Served) -> None:
    """A cached GET answered from the read buffer, one with a folded header line, one with a body
    (which must not be taken for the next request) and a cached one again, sent in one piece."""
    served.get("/echo")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\nX-Request-Id: p1\r\n\r\n"
                     b"GET /echo HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\nX-Request-Id: p2\r\n\r\n"
                     b"GET /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-Request-Id: p3\r\n\r\nhello"
                     b"GET /echo HTTP/1.1\r\nHost: h\r\nX-Request-Id: p4\r\n\r\n")
        answers = _answers(sock.makefile("rb"), 4)
    assert [(status, headers["x-request-id"]) for status, headers, _ in answers] == \
        [(200, "p1"), (200, "p2"), (200, "p3"), (200, "p4")]
    assert [json.loads(body)["run"] for _, _, body in answers] == [2, 3, 4, 2]  # p1's page kept for p4
    assert abs(email.utils.parsedate_to_datetime(answers[0][1]["date"]).timestamp() - time.time()) < 5


@pytest.mark.parametrize(("version", "connection", "closed"), [
    ("HTTP/1.0", None, True), ("HTTP/1.0", "keep-alive", False), ("HTTP/1.1", "close", True), ("HTTP/1.1", None, False)])
def test_an_answer_from_the_cache_keeps_or_closes_the_connection_as_asked(served: Served, version: str,
                                                                         connection: str | None, closed: bool) -> None:
    served.get("/echo")
    same = f"Host: 127.0.0.1:{served.port}\r\nAccept-Encoding: identity\r\n"  # as http.client's: the same page
    line = f"Connection: {connection}\r\n" if connection else ""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(f"GET /echo {version}\r\n{same}{line}\r\n".encode())
        file = sock.makefile("rb")
        (status, _, body), = _answers(file, 1)
        assert (status, body != b"") == (200, True)
        sock.sendall(f"GET /echo HTTP/1.1\r\n{same}\r\n".encode())  # the server has closed, or answers
        assert (file.read(1) == b"") is closed
    assert served.calls["echo"] == 1


def test_new_settings_start_a_new_cache(served: Served, local_store: LocalStore) -> None:
    served.get("/echo")
    services.configure(store=local_store, settings=Settings(store_uri=local_store.uri, public_url="http://x",
                                                            dispatch_events=False))
    served.get("/echo")
    assert served.calls["echo"] == 2


def test_the_cache_keeps_at_most_its_entries_least_recently_used_out_first() -> None:
    cache, settings = page_cache.PageCache(2), object()
    pages = {k: page_cache.page("/r", 200, {}, k) for k in (b"a", b"b", b"c")}
    cache.put(b"a", settings, pages[b"a"])
    cache.put(b"b", settings, pages[b"b"])
    cache.get(b"a", settings)
    cache.put(b"c", settings, pages[b"c"])
    assert ([cache.get(k, settings) is not None for k in (b"a", b"b", b"c")], len(cache)) == ([True, False, True], 2)


def test_a_cache_of_no_entries_keeps_nothing() -> None:
    cache, settings = page_cache.PageCache(0), object()
    cache.put(b"a", settings, page_cache.page("/r", 200, {}, b"x"))
    assert cache.get(b"a", settings) is None


# -- the service's pages, over `stacflow serve` ----------------------------------------------------------
@pytest.fixture
def service(local_store: LocalStore, live_server_factory: Any) -> LiveServer:
    return live_server_factory(local_store.uri, env={"STACFLOW_TRUSTED_PROXIES": "127.0.0.1"})


def _get(url: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(url.removeprefix("http://").split(":")[0], int(url.rsplit(":", 1)[1]),
                                      timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def test_the_landing_pages_follow_each_requests_host_forwarded_headers_and_accept(service: LiveServer) -> None:
    def self_link(**headers: str) -> str:
        doc = json.loads(_get(service.url, "/stac", **headers)[2])
        return str(next(link["href"] for link in doc["links"] if link["rel"] == "self"))
    assert [self_link(Host="a.example"), self_link(Host="a.example"), self_link(Host="b.example"),
            self_link(Host="a.example", **{"X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/p"})] == \
        ["http://a.example/stac", "http://a.example/stac", "http://b.example/stac", "https://a.example/p/stac"]
    kinds = [_get(service.url, "/", Accept=accept)[1]["content-type"] for accept in ("text/html", "application/json",
                                                                                    "text/html")]
    assert kinds == ["text/html; charset=utf-8", "application/json", "text/html; charset=utf-8"]


def test_the_collections_page_is_current_after_a_publication(service: LiveServer, local_store: LocalStore,
                                                              tmp_path: Any) -> None:
    from chalicelib.stac.publish import publish_paths
    from tests.helpers.synthetic import make_items
    bbox = [170.0, 80.0, 179.5, 89.5]
    item = make_items(1)[0] | {"collection": "dataset", "bbox": bbox, "geometry": {
        "type": "Polygon", "coordinates": [[[170.0, 80.0], [179.5, 80.0], [179.5, 89.5], [170.0, 89.5], [170.0, 80.0]]]}}

    def extent() -> list[float]:
        doc = json.loads(_get(service.url, "/stac/collections")[2])
        return list(next(c for c in doc["collections"] if c["id"] == "dataset")["extent"]["spatial"]["bbox"][0])
    before = [extent(), extent()]
    (tmp_path / "items.ndjson").write_text(json.dumps(item) + "\n")
    publish_paths(local_store, [tmp_path / "items.ndjson"], progress=False)
    assert (before[0] == before[1] != bbox, extent()) == (True, bbox)


def test_only_a_shared_routes_request_is_keyed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request's key (a SHA-256 of it) is computed only where a page may be cached: an unmarked route's
    GET is answered by the app without one; a shared route's, kept in the read buffer or not, with one."""
    keyed: list[str] = []
    real = page_cache.request_key
    monkeypatch.setattr(page_cache, "request_key", lambda method, target, *rest: keyed.append(target) or
                        real(method, target, *rest))
    served.get("/plain")
    served.get("/plain", **{"X-Folded": "a"})
    assert keyed == []
    served.get("/echo", **{"X-A": "b\tc"})
    served.get("/echo", **{"X-A": "b\tc"})
    assert keyed == ["/echo", "/echo"]
    assert served.calls["echo"] == 1
