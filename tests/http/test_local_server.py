"""``stacflow serve``'s embedded server: its indexed route matching answers as Chalice's scan does,
and the per-request shortcuts keep HTTP/1.1 keep-alive exact (HEAD, bodies, one write per answer)."""
from __future__ import annotations

import http.client
import io
import json
import re
import sys
import time
from typing import Any, Iterator

import pytest
from chalice.local import RouteMatcher
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.http.local_server import Routes
from chalicelib.store import ObjectStore
from tests.helpers.servers import LiveServer


@pytest.fixture(scope="module")
def matchers() -> tuple[list[str], Routes, RouteMatcher]:
    from app import app
    templates = list(app.routes)
    return templates, Routes(templates), RouteMatcher(templates)


def _same(ours: Routes, chalice: RouteMatcher, url: str) -> None:
    try:
        expected = chalice.match_route(url)
    except ValueError:
        with pytest.raises(ValueError):
            ours.match_route(url)
        return
    got = ours.match_route(url)
    assert (got.route, got.query_params) == (expected.route, expected.query_params), url
    # Chalice's dict also keeps captures of templates it tried before (a leak); the route's own agree.
    names = re.findall(r"{(\w+)}", expected.route)
    assert got.captured == {n: expected.captured[n] for n in names}, url


def test_every_route_matches_as_chalice_matches_it(matchers: tuple[list[str], Routes, RouteMatcher]) -> None:
    templates, ours, chalice = matchers
    for template in templates:
        path = re.sub(r"{\w+}", "x-1", template)
        for url in (path, path + "/", path + "?a=1&a=2&b=", path.replace("x-1", "stac")):
            _same(ours, chalice, url)


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(st.sampled_from(["stac", "mlflow", "api", "2.0", "collections", "items", "runs",
                                          "search", "files", "x", "", "health", "mlflow-artifacts", "ajax-api"]),
                         max_size=8),
       query=st.sampled_from(["", "?q=1", "?", "#frag", ";p"]))
def test_any_path_matches_as_chalice_matches_it(matchers: tuple[list[str], Routes, RouteMatcher],
                                               segments: list[str], query: str) -> None:
    _same(matchers[1], matchers[2], "/" + "/".join(segments) + query)


@pytest.fixture
def server(local_store: ObjectStore, live_server_factory: Any) -> Iterator[LiveServer]:
    yield live_server_factory(local_store.uri)


def test_head_answers_without_a_body_and_the_connection_goes_on(server: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/stac")
    head = conn.getresponse()
    assert head.read() == b""  # http.client reads no body after HEAD: one sent would spoil the next answer
    conn.request("GET", "/health")
    after = conn.getresponse()
    assert (after.status, after.read().startswith(b"{")) == (200, True)
    conn.close()


def test_a_keep_alive_connection_carries_many_answers_and_bodies(server: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path, body in [("/mlflow/api/2.0/mlflow/experiments/search", b'{"max_results": 5}'),
                       ("/stac/search", b'{"limit": 1}'), ("/nope", None)]:
        for _ in range(3):
            conn.request("POST" if body else "GET", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp_body = resp.read()
            assert resp.status == (404 if path == "/nope" else 200), (path, resp_body[:200])
            assert resp_body.startswith(b"{")
    conn.close()


@pytest.mark.parametrize("length", ["abc", "-1", "1_0", "\u0661", "9" * 40])
@pytest.mark.parametrize(("method", "path"), [("POST", "/stac/search"), ("POST", "/mlflow/api/2.0/mlflow/runs/search"),
                                              ("GET", "/files/x"), ("POST", "/nope")])
def test_a_content_length_that_is_not_a_number_is_refused_in_the_apis_shape(server: LiveServer, length: str,
                                                                             method: str, path: str) -> None:
    """int() takes "-1" and "1_0" and fails on "abc" or "١" with a server error; 40 digits would be
    waited for. Each answers 400 in the path's API shape, and the server goes on answering."""
    import socket
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        answer = sock.makefile("rb").read()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400"
    body = rest.partition(b"\r\n\r\n")[2]
    assert (b'"error_code"' if path.startswith("/mlflow") else b'"code"') in body
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


@pytest.mark.parametrize("headers", [b"X-Big: " + b"a" * 70_000 + b"\r\n",
                                     b"".join(b"X-%d: v\r\n" % i for i in range(101))],
                         ids=["a line over 64 KiB", "over 100 headers"])
def test_a_header_section_over_the_limits_is_refused_and_the_server_goes_on(server: LiveServer, headers: bytes) -> None:
    """The header reader that skips the email parser keeps http.client's bounds: 431, nothing read
    past them, and the next connection is answered."""
    import socket
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /stac HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = sock.makefile("rb").read()
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"431"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


def test_a_header_line_of_blanks_ending_in_a_stray_cr_is_read_in_linear_time(server: LiveServer) -> None:
    """Both plain-line readers (the read buffer's and ``parse_request``'s) refuse such a line at once
    and hand it to the email parser: with blanks that could be the value's too, one 60 KiB line took
    ~40 s of CPU, the 10 s timeout here."""
    import socket
    from chalicelib.http.local_server import _read_head
    hostile = b"X-A:" + b" " * 60_000 + b"\rx"
    started = time.process_time()  # the read buffer holds 8 KiB
    assert _read_head(b"GET /stac HTTP/1.1\r\nX-A:" + b" " * 8_000 + b"\rx", "127.0.0.1", frozenset({"/stac"})) is None
    assert time.process_time() - started < 0.1  # quadratic: ~0.5 s
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + hostile + b"\r\n\r\n")
        answer = sock.makefile("rb").read()
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"200"


def _parsed(raw_headers: bytes) -> Any:
    from chalicelib.http.local_server import RequestHandler
    handler = RequestHandler.__new__(RequestHandler)
    handler.raw_requestline = b"GET /stac?a=1 HTTP/1.1\r\n"
    handler.rfile = io.BytesIO(raw_headers)
    handler.wfile = io.BytesIO()
    assert handler.parse_request()
    return handler


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(["Host", "accept", "X-A", "Bad Name", " folded", "From ", "", "é"]),
                                st.sampled_from([":", ": ", ":\t ", " : ", ""]),
                                st.sampled_from(["v", "", "a b ", "é", "x:y", " lead", "cr\r", "c\rr"]),
                                st.sampled_from(["\r\n", "\n"])), max_size=6))
def test_headers_read_without_the_email_parser_are_what_it_reads(lines: list[tuple[str, str, str, str]]) -> None:
    raw = b"".join(f"{n}{sep}{v}{end}".encode("iso-8859-1") for n, sep, v, end in lines) + b"\r\nrest"
    stream = io.BytesIO(raw)
    expected = http.client.parse_headers(stream)
    handler = _parsed(raw)
    # The same headers, and the header section read to the same end (the body starts there).
    assert (handler.headers.items(), handler.rfile.read(), handler.command, handler.path) == \
        (expected.items(), stream.read(), "GET", "/stac?a=1")
    assert list(handler.headers.raw_items()) == expected.items()  # what ``_headers`` reads, unconverted


class _Pages:
    """A page cache that holds nothing and notes the keys it was asked for."""

    entries = 1

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def get(self, key: bytes, settings: object) -> None:
        self.asked.append(key)


def _buffered(raw: bytes) -> tuple[Any, _Pages]:
    from chalicelib.http.local_server import RequestHandler
    handler = RequestHandler.__new__(RequestHandler)
    pages = _Pages()
    handler.gateway = type("Gateway", (), {"pages": pages, "shared_targets": frozenset({"/stac"})})()
    handler.client_address = ("127.0.0.1", 5)
    handler.rfile = io.BufferedReader(io.BytesIO(raw))  # type: ignore[arg-type]
    handler.wfile = io.BytesIO()
    return handler, pages


_VALUES = st.sampled_from(["v", "", "a b ", "é", "x:y", " lead", "tail\t", "cr\r", "c\rr", "0", " 0 ", "5"])
_ANY_LINES = st.lists(st.tuples(st.sampled_from(["Host", "accept", "X-A", "Bad Name", " folded", "From ", "", "é",
                                                 "Content-Length", "Authorization"]),
                                st.sampled_from([":", ": ", ":\t ", " : ", ""]), _VALUES,
                                st.sampled_from(["\r\n", "\n"])), max_size=6)
# Plain lines only: the requests the fast way takes.
_PLAIN_LINES = st.lists(st.tuples(st.sampled_from(["Host", "accept", "X-A", "x-a", "Content-Length", "Authorization"]),
                                  st.sampled_from([":", ": ", ":\t "]), _VALUES, st.just("\r\n")), max_size=6)


@settings(max_examples=400, deadline=None)
@given(lines=st.one_of(_ANY_LINES, _PLAIN_LINES),
       target=st.sampled_from(["/stac", "/stac?a=1", "/stac/", "/other", "//stac", "/stac x"]),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0"]))
def test_the_read_buffers_way_asks_the_cache_what_the_usual_way_would_and_else_reads_nothing(
        lines: list[tuple[str, str, str, str]], target: str, version: str) -> None:
    """A request the page cache's fast path declines is left whole for ``parse_request``; one it looks
    up is looked up under the key the usual way computes (same header lines, same page)."""
    raw = (f"GET {target} {version}\r\n" + "".join(f"{n}{sep}{v}{end}" for n, sep, v, end in lines)
           + "\r\nGET /next HTTP/1.1\r\n\r\n").encode("iso-8859-1")
    fast, pages = _buffered(raw)
    assert fast._answer_from_buffer() is False  # the cache holds nothing
    assert fast._answer_from_buffer() is False  # asked again: its reading remembered, the same question
    assert fast.rfile.read() == raw
    usual, _ = _buffered(raw)
    usual.raw_requestline = usual.rfile.readline()
    if pages.asked and usual.parse_request():
        assert pages.asked == [usual._page_key()] * 2


def test_a_request_repeated_on_a_connection_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.http import local_server
    read: list[bytes] = []
    real = local_server._read_head
    monkeypatch.setattr(local_server, "_read_head", lambda head, *rest: read.append(head) or real(head, *rest))
    same = b"GET /stac HTTP/1.1\r\nHost: h\r\n\r\n"
    other = b"GET /stac HTTP/1.1\r\nHost: h2\r\n\r\n"
    fast, pages = _buffered(same + same + other)
    for _ in range(3):
        fast._answer_from_buffer()  # the cache holds nothing: each request is left whole, so read it here
        fast.rfile.read(len(same))
    assert len(read) == 2  # the first, and the one that differs
    assert pages.asked[0] == pages.asked[1] != pages.asked[2]


def test_a_plain_get_of_a_shared_page_is_looked_up_from_the_read_buffer() -> None:
    """The property above is not empty: the common request is looked up the fast way."""
    fast, pages = _buffered(b"GET /stac?a=1 HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\n\r\n")
    fast._answer_from_buffer()
    assert len(pages.asked) == 1


def test_a_page_answered_from_the_cache_is_logged_as_the_app_logs_it(server: LiveServer) -> None:
    """The first answer is the app's (its lines as the middleware and http.server write them); the
    next ones come from the page cache: the access line from the invocation, then from the form
    prefilled for the page, and the 304's from its own. Each has the same two lines as the app's."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    ids, etag = [], ""
    for i in range(5):
        conn.request("GET", "/stac/conformance", headers={"If-None-Match": etag} if i >= 3 else {})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == (304 if i >= 3 else 200)
        ids.append(resp.getheader("X-Request-Id"))
        etag = resp.getheader("ETag") or ""
    conn.request("GET", "/health")  # its lines come after all of the above
    conn.getresponse().read()
    conn.close()
    text = open(server.log.name).read()
    found = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"message":"request"' in line]
    pages = [one for one in found if one["route"] == "/stac/conformance"]
    assert [one["correlation_id"] for one in pages] == ids
    assert [one["status"] for one in pages] == [200, 200, 200, 304, 304]
    fixed = [{k: v for k, v in one.items() if k not in ("timestamp", "correlation_id", "duration_ms")} for one in pages]
    assert fixed[1:3] == fixed[:1] * 2
    assert fixed[4] == fixed[3] == dict(fixed[0], status=304)
    plain = re.findall(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /stac/conformance HTTP/1\.1" (\d+) -$', text, re.M)
    assert plain == ["200", "200", "200", "304", "304"]
    # Each cached answer's plain line comes just before its JSON line, as http.server and then the app wrote them.
    lines = [line for line in text.splitlines() if "/stac/conformance" in line]
    assert [line.startswith("{") for line in lines[2:]] == [False, True] * 4


def _cached_answers(server: LiveServer, count: int) -> tuple[http.client.HTTPConnection, list[str]]:
    """``count`` answers of one page on a connection left open (all but the first two from its access line's form)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    ids = []
    for _ in range(count):
        conn.request("GET", "/stac/conformance")
        resp = conn.getresponse()
        resp.read()
        ids.append(resp.getheader("X-Request-Id") or "")
    return conn, ids


def _logged_ids(server: LiveServer) -> list[str]:
    text = open(server.log.name).read()
    return [json.loads(line)["correlation_id"] for line in text.splitlines() if line.startswith('{"')
            and '"route":"/stac/conformance"' in line]


def test_a_cached_pages_deferred_lines_are_written_within_a_second_with_no_other_request(server: LiveServer) -> None:
    conn, ids = _cached_answers(server, 6)
    deadline = time.monotonic() + 5
    while _logged_ids(server) != ids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _logged_ids(server) == ids  # the connection still open, no request since
    conn.close()


def test_sigterm_writes_the_deferred_lines_before_the_server_exits(local_store: ObjectStore) -> None:
    server = LiveServer(local_store.uri)
    try:
        conn, ids = _cached_answers(server, 7)
        server.proc.terminate()  # at once: the server's next flush is up to half a second away
        assert server.proc.wait(timeout=10) == 0
        # The last answer's line may not have been deferred yet (it is, after the answer has left);
        # each earlier one was, before the connection's next answer.
        assert _logged_ids(server)[:6] == ids[:6]
        conn.close()
    finally:
        server.stop()


def test_a_connections_access_line_is_the_line_http_server_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.http.local_server import RequestHandler
    handler = RequestHandler.__new__(RequestHandler)
    handler.client_address = ("127.0.0.1", 5)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    for line in ["GET /stac HTTP/1.1", "GET /files/secret-token?X-Amz-Signature=abc HTTP/1.1", "GET /\x1b[31m HTTP/1.1",
                 "GET /stac HTTP/1.1"]:
        for status in (200, 304):
            handler.requestline = line
            ours = handler._access_line(status)
            handler.log_request(status)
            assert ours == err.getvalue()
            err.seek(0)
            err.truncate()


def _reference_send(handler: Any, status: int, headers: dict[str, Any], body: str | bytes | None) -> None:
    """An answer as ``http.server``'s own calls write it (what ``RequestHandler._send`` did header by header)."""
    handler.send_response(status)
    if body is None:
        headers["Content-Length"] = "0"
    else:
        if isinstance(body, str):
            body = body.encode("utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
    for name, value in headers.items():
        for one in value if isinstance(value, list) else (value,):
            handler.send_header(name, one)
    handler.end_headers()
    if body and handler.command != "HEAD":
        handler.wfile.write(body)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("command", ["GET", "HEAD"])
@pytest.mark.parametrize(("status", "headers", "body"), [
    (200, {"Content-Type": "application/json", "X-Request-Id": "abc"}, '{"a": "é"}'),
    (404, {"X-Request-Id": "r"}, b"{}"),
    (204, {"Vary": ["Origin", "Accept"], "X-Request-Id": "r"}, None),
    (200, {"Content-Type": "text/plain", "Content-Length": "3", "Connection": "close"}, b"abc"),
    (200, {"connection": "keep-alive", "ETag": '"x"'}, "ok"),
    (503, {"Retry-After": "1"}, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}'),
])
def test_an_answer_is_written_byte_for_byte_as_http_servers_calls_write_it(
        monkeypatch: pytest.MonkeyPatch, version: str, command: str, status: int, headers: dict[str, Any],
        body: str | bytes | None) -> None:
    """``_send`` writes the header lines in one pass: the same bytes, in the same order, as ``send_response``,
    ``send_header`` (each) and ``end_headers``, and the same effect of a ``Connection`` header."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
    written = []
    for send in ("ours", "reference"):
        handler = _parsed(b"\r\n")
        handler.command, handler.request_version = command, version
        handler.close_connection = version == "HTTP/1.0"
        handler.client_address = ("127.0.0.1", 1)
        handler.requestline = f"{command} / {version}"
        if send == "ours":
            handler._send(status, dict(headers), body)
        else:
            _reference_send(handler, status, dict(headers), body)
        written.append((handler.wfile.getvalue(), handler.close_connection))
    assert written[0] == written[1]
