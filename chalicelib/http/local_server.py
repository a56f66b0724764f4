"""The embedded HTTP server of ``stacflow serve``: Chalice's local server, made lean and tuned for real clients.

What differs from Chalice's own: a path no route matches answers 404 in the API's error shape
(Chalice, like API Gateway, says 403 "Missing Authentication Token"; see ``errors``), ``GET
/files/{token}`` streams from the store (Chalice would build the whole body, and base64 it, in
memory: a 300 MB artifact cost 1.1 GB), the access log never shows a bearer credential (signed-URL
tokens, presigned query signatures), and ``HEAD`` answers carry no body.

And what a request costs. Chalice's handler builds a ``LocalGateway`` per connection (a sorted copy
of the 200+ routes, an authorizer) and matches the path by scanning every route, twice with our
404 check; here one ``_Gateway`` serves the whole server, routes are indexed once (an exact lookup
for literal paths, a scan of the same-length templates only for the others, in Chalice's order),
the match is made once per request and reused for the event, and the response (headers and a
small body) leaves in one write.
"""
from __future__ import annotations

import base64
import email.parser
import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Generic, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

from chalice.config import Config
from chalice.local import (ChaliceRequestHandler, LambdaContext, LocalDevServer, LocalGateway,
                           LocalGatewayAuthorizer, LocalGatewayException, MatchResult, RouteMatcher,
                           create_local_server)

from .. import observability, services
from ..observability import redact  # one redaction rule for the access log and the JSON logs
from . import cors, files, observe, page_cache
from .errors import JSON, error_body, no_route
from .urls import PEER_HEADER

log = logging.getLogger(__name__)


# http.client's limits on a request's header section.
_MAX_LINE = 65536
_MAX_HEADERS = 100
# A header line as the email parser reads it without remark: a field name of printable ASCII but
# ":", a colon, the value (its leading blanks and the line end dropped). Anything else (a folded
# line, a name with a space) goes through the email parser itself, which has rules for each. The
# value starts after the blanks or is empty: were blanks also the value's, a line of blanks ending in
# a stray CR would take quadratic time to refuse (seconds for one line of 64 KiB).
_VALUE = rb"[ \t]*((?:[^\r\n \t][^\r\n]*)?)"
_PLAIN_HEADER = re.compile(rb"([\x21-\x39\x3b-\x7e]+):" + _VALUE + rb"\r?\n")
_PLAIN_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+):" + _VALUE)  # the same, its CRLF split off
# A request line the page cache's fast path takes: a GET of a target without blanks, HTTP/1.x.
_PLAIN_GET = re.compile(rb"GET ([\x21-\x7e]+) (HTTP/1\.[01])")


def _files_token(path: str) -> str | None:
    if "/files/" not in path:  # no /files/{token} path (nor an absolute-form target of one) lacks it
        return None
    segments = urlsplit(path).path.split("/")
    if len(segments) == 3 and segments[1] == "files" and segments[2]:
        return unquote(segments[2])
    return None


def _is_capture(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


class Routes(RouteMatcher):
    """Chalice's route matching (the first match among the sorted templates wins, a trailing slash
    is ignored), indexed once: literal paths by exact lookup, templates by segment count."""

    def __init__(self, route_urls: list[str]) -> None:
        super().__init__(route_urls)
        self._literal: dict[str, tuple[str, dict[str, str]]] = {}
        self._templates: dict[int, list[tuple[str, list[tuple[int, str]], list[tuple[int, str]]]]] = {}
        for url in self.route_urls:  # sorted, as Chalice scans them
            parts = url.split("/")
            if not any(_is_capture(p) for p in parts):
                continue
            literals = [(i, p) for i, p in enumerate(parts) if not _is_capture(p)]
            captures = [(i, p[1:-1]) for i, p in enumerate(parts) if _is_capture(p)]
            self._templates.setdefault(len(parts), []).append((url, literals, captures))
        for url in self.route_urls:
            if not any(_is_capture(p) for p in url.split("/")):
                # Chalice's own answer for this exact path (a template sorted first could win it).
                found = super().match_route(url)
                self._literal[url] = (found.route, dict(found.captured))

    def match_route(self, url: str) -> MatchResult:
        parsed = urlparse(url)
        path = parsed.path
        if path != "/" and path.endswith("/"):
            path = path[:-1]
        query = parse_qs(parsed.query, keep_blank_values=True)
        literal = self._literal.get(path)
        if literal is not None:
            return MatchResult(literal[0], dict(literal[1]), query)
        parts = path.split("/")
        for route, literals, captures in self._templates.get(len(parts), ()):
            if all(parts[i] == p for i, p in literals):
                return MatchResult(route, {name: parts[i] for i, name in captures}, query)
        raise ValueError(f"No matching route found for: {url}")


@dataclass(frozen=True)
class _Head:
    """What the page cache's fast path reads from a plain GET's header section: the page's key and
    the header values the answer uses. A function of the section's bytes and the peer alone."""

    key: bytes  # ``page_cache.request_key`` of the request
    close: bool  # whether the connection ends after the answer
    request_id: str | None
    if_none_match: str | None


def _read_head(head: bytes, peer: str, targets: frozenset[str]) -> _Head | None:
    """The ``_Head`` of a header section (no blank line) if it is a plain GET of one of ``targets``:
    request line exactly ``GET <target> HTTP/1.x``, every header a plain ``name: value`` line, no body
    (read as ``parse_request`` reads it, so the key is the same); else None."""
    lines = head.split(b"\r\n")
    request = _PLAIN_GET.fullmatch(lines[0])
    if request is None or len(lines) > _MAX_HEADERS:
        return None
    target = request[1].decode("iso-8859-1")
    if target.partition("?")[0] not in targets:
        return None
    headers = []
    for raw in lines[1:]:
        plain = _PLAIN_LINE.fullmatch(raw)
        if plain is None:
            return None
        headers.append((plain[1].decode("iso-8859-1"), plain[2].decode("iso-8859-1")))
    first: dict[str, str] = {}  # as ``HTTPMessage.get``: the first of repeated headers
    for name, value in headers:
        first.setdefault(name.lower(), value)
    if first.get("content-length", "0").strip() != "0" or "transfer-encoding" in first or "expect" in first:
        return None
    connection = first.get("connection", "").lower()
    close = connection == "close" or (request[2] == b"HTTP/1.0" and connection != "keep-alive")
    return _Head(page_cache.request_key("GET", target, peer, headers), close, first.get("x-request-id"),
                 first.get("if-none-match"))


class _Gateway(LocalGateway):
    """Chalice's local API Gateway for a whole server (its own is built per connection), answering
    an already matched request."""

    def __init__(self, app_object: Any, config: Config) -> None:
        self._app_object = app_object
        self._config = config
        self.routes = Routes(list(app_object.routes))
        self._authorizer = LocalGatewayAuthorizer(app_object)
        self._binary_types = app_object.api.binary_types
        # GET routes whose answers may be shared (``page_cache``), and the cache of those answers.
        self.shared = {path for path, methods in app_object.routes.items()
                       if "GET" in methods and page_cache.is_shared(methods["GET"].view_function)}
        self.pages = page_cache.PageCache(services.settings().page_cache_entries)
        self.counted = observability.metrics_enabled()  # read once: the cached pages' answers check no more
        # The targets (before any query) of the shared routes that have no captures: where a request
        # may be answered from the read buffer (``RequestHandler._answer_from_buffer``).
        self.shared_targets = frozenset(target for route in self.shared if "{" not in route
                                        for target in {route, route.rstrip("/") + "/"})
        timeout = config.lambda_timeout if config.lambda_timeout is not None else self.MAX_LAMBDA_EXECUTION_TIME
        self._context_args = (config.function_name, config.lambda_memory_size, timeout * 1000)

    def request(self) -> Any:
        """The Chalice request this thread answered last (the app keeps one per thread)."""
        return getattr(self._app_object, "current_request", None)

    def answer(self, method: str, match: MatchResult, path: str, headers: dict[str, str],
               body: bytes | None) -> dict[str, Any]:
        """What Chalice's ``handle_request`` answers for a request whose route is ``match``; ``headers``
        as the client sent them, ``body`` already read."""
        name, memory, max_runtime_ms = self._context_args
        context = LambdaContext(name, memory, max_runtime_ms=max_runtime_ms)
        event: dict[str, Any] = {
            "requestContext": {"httpMethod": method, "resourcePath": match.route, "identity": {"sourceIp": "127.0.0.1"},
                               "path": path.split("?")[0]},
            "headers": {k.lower(): v for k, v in headers.items()},
            "pathParameters": match.captured,
            "stageVariables": {},
            "multiValueQueryStringParameters": match.query_params or None,  # None when absent, as API Gateway
        }
        # As Chalice's converter (which looks the header up with this exact case).
        if headers.get("content-type", "") in self._binary_types and body is not None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
        else:
            event["body"] = body
        if method == "OPTIONS" and not self._has_user_defined_options_method(event):
            return {"statusCode": 200, "headers": self._autogen_options_headers(event), "multiValueHeaders": {},
                    "body": None}
        self._app_object.current_request = None  # ``request()`` must never see the previous request's
        event, context = self._authorizer.authorize(path, event, context)
        response: dict[str, Any] = self._app_object(event, context)
        return response


@functools.lru_cache(maxsize=16)
def _status_head(protocol: str, server: str, status: int) -> bytes:
    """A status line and the ``Server`` header, as ``send_response`` writes them."""
    return b"%s %d %s\r\nServer: %s\r\n" % (protocol.encode(), status, HTTPStatus(status).phrase.encode(),
                                              server.encode("latin-1", "strict"))


T = TypeVar("T")


class _EverySecond(Generic[T]):
    """A text that changes once a second (a ``Date`` header, a log line's time), made once a second."""

    def __init__(self) -> None:
        self._last: tuple[int, Any] = (-1, None)

    def now(self, make: Callable[[int], T]) -> T:
        second = int(time.time())
        last = self._last  # one tuple: threads swap it whole
        if last[0] != second:
            last = (second, make(second))
            self._last = last
        return cast(T, last[1])


_DATES: _EverySecond[bytes] = _EverySecond()
_LOG_TIMES: _EverySecond[str] = _EverySecond()
_HTTP_DATES: _EverySecond[str] = _EverySecond()  # the Date header of answers not from the page cache


class RequestHandler(ChaliceRequestHandler):
    # Headers and body go out in one buffered write (flushed by ``handle_one_request`` after each
    # request); no Nagle delay on what is left (keep-alive answers would wait ~40 ms for an ACK).
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    _last_head: tuple[bytes, _Head] | None = None  # the last header section read the fast way, and its reading
    _last_access: tuple[tuple[str, int, str], str] | None = None  # the last access line made by ``_access_line``

    def __init__(self, request: Any, client_address: Any, server: Any, gateway: _Gateway) -> None:
        self.gateway = self.local_gateway = gateway
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` for a plain HTTP/1.x request line, with the headers
        read without the email parser when every line is a plain ``name: value`` (most of a small
        request's cost); anything else is left to the base class, which has not read anything yet."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0") or words[1].startswith("//"):
            return bool(super().parse_request())
        self.requestline = line
        self.command, self.path, self.request_version = words
        self.close_connection = words[2] == "HTTP/1.0"
        lines = []
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", "header line")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            lines.append(raw)
            if len(lines) >= _MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers",
                                f"got more than {_MAX_HEADERS} headers")
                return False
        headers = HTTPMessage()
        plain = [_PLAIN_HEADER.fullmatch(raw) for raw in lines]
        if all(plain):
            for found in plain:
                assert found is not None
                # As ``headers[name] = value`` stores it under the compat32 policy, without its checks.
                headers.set_raw(found[1].decode("iso-8859-1"), found[2].decode("iso-8859-1"))
        else:
            headers = email.parser.Parser(_class=HTTPMessage).parsestr(b"".join(lines).decode("iso-8859-1") + "\r\n")
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and words[2] == "HTTP/1.1":
            return bool(self.handle_expect_100())
        return True

    def _headers(self) -> dict[str, str]:
        """The request's headers, the first of repeated ones, as Chalice's ``dict(self.headers)``."""
        first: dict[str, tuple[str, str]] = {}
        for name, value in self.headers.raw_items():  # as items(): text read as Latin-1 has no surrogates
            first.setdefault(name.lower(), (name, value))
        first.pop(PEER_HEADER.lower(), None)
        headers = dict(first.values())
        # Who is really calling, for the trusted-proxy check (urls.base_url); never the client's say.
        headers[PEER_HEADER] = self.client_address[0]
        # No Accept header means "anything" (RFC 9110). Chalice, mimicking API Gateway, would refuse
        # binary responses (artifact and asset downloads) to such clients; behind API Gateway,
        # downloads go to presigned S3 URLs instead.
        if "accept" not in first:
            headers["Accept"] = "*/*"
        return headers

    def _length(self) -> int | None:
        """The request body's declared length; None (after answering 400 and closing) when the header
        is not a plain decimal number: int() would take "-1", " 7", "1_0" or fail with a 500."""
        value = (self.headers.get("Content-Length") or "0").strip()
        if value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
        self.close_connection = True  # where the body ends is unknown
        self._send(400, {"Content-Type": JSON}, error_body(urlsplit(self.path).path, 400,
                                                         "Content-Length must be a decimal number of bytes"))
        return None

    def _generic_handle(self) -> None:
        length = self._length()
        if length is None:
            return
        try:
            match = self.gateway.routes.match_route(self.path)
        except ValueError:
            self._no_route(length)  # before reading a body: no route will take it
            return
        shared = (self.command == "GET" and not length and match.route in self.gateway.shared
                  and self.gateway.pages.entries > 0)
        key = self._page_key() if shared else b""
        if shared and self._from_cache(key):
            return
        body = self.rfile.read(length) if length > 0 else None
        settings = services.settings()  # before answering: what a page is filed under was its input
        try:
            response = self.gateway.answer(self.command, match, self.path, self._headers(), body)
        except LocalGatewayException as e:
            self._send(e.CODE, dict(e.headers), e.body)
            return
        headers = dict(response["headers"])
        headers.update(response["multiValueHeaders"])
        payload = response["body"]
        if payload is not None and response.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        if shared:
            encoded = payload.encode("utf-8") if isinstance(payload, str) else payload
            if page_cache.cacheable(response["statusCode"], headers, encoded, self.gateway.request()):
                assert encoded is not None  # cacheable answers have a body
                found = page_cache.page(match.route, response["statusCode"], headers, encoded)
                self.gateway.pages.put(key, settings, found)
                # As every later answer from the cache will look (the app has logged its line).
                status = 304 if page_cache.matches(self.headers.get("If-None-Match"), found.etag) else found.status
                try:
                    self._send_page(found, headers.get(observe.HEADER, ""), status)
                finally:
                    self.log_request(status)
                return
        self._send(response["statusCode"], headers, payload)

    # -- the page cache ---------------------------------------------------------------------------
    def _page_key(self) -> bytes:
        return page_cache.request_key(self.command, self.path, self.client_address[0], self.headers.items())

    def handle_one_request(self) -> None:
        try:
            if self._answer_from_buffer():
                return
        except TimeoutError as e:  # as the base class does when a read or write times out
            self.log_error("Request timed out: %r", e)
            self.close_connection = True
            return
        observability.flush_deferred()  # cached pages' lines go before the lines of this request
        super().handle_one_request()

    def _answer_from_buffer(self) -> bool:
        """Answer the next request from the page cache if it is a plain GET of a shared page, whole in
        the read buffer, whose page is cached (its header lines read as ``parse_request`` reads them:
        the same key). Else False, nothing read: the request takes the usual way."""
        gateway = self.gateway
        if gateway.pages.entries <= 0 or not gateway.shared_targets:
            return False
        data = self.rfile.peek(1)  # waits for the next request; reads no more than the buffer holds
        end = data.find(b"\r\n\r\n") if data.startswith(b"GET ") else -1
        if end < 0:
            return False
        raw = data[:end]
        last = self._last_head
        head: _Head | None
        if last is not None and last[0] == raw:
            head = last[1]  # a client repeating its request: read once per connection
        else:
            head = _read_head(raw, self.client_address[0], gateway.shared_targets)
            if head is None:
                return False
            self._last_head = (raw, head)  # kept as long as ``self.headers`` keeps the last one read
        found = gateway.pages.get(head.key, services.settings())
        if found is None:
            return False
        self.rfile.read(end + 4)  # the request, from the buffer
        line = data[:data.index(b"\r\n")]
        self.raw_requestline = line + b"\r\n"
        self.requestline = line.decode("iso-8859-1")
        self.command, self.path, self.request_version = "GET", self.requestline[4:-9], self.requestline[-8:]
        self.close_connection = head.close
        self._answer_page(found, head.request_id, head.if_none_match)
        return True

    def _from_cache(self, key: bytes) -> bool:
        """Answer a GET without a body of a shared route from the page cache if it holds its page, filed
        under ``key`` (else False: the app answers). Other routes' answers are never cached: their
        requests' keys are not computed (a SHA-256 of the request, ~15 % of a small GET's CPU)."""
        found = self.gateway.pages.get(key, services.settings())
        if found is None:
            return False
        self._answer_page(found, self.headers.get(observe.HEADER), self.headers.get("If-None-Match"))
        return True

    def _answer_page(self, found: page_cache.CachedPage, request_id: str | None, if_none_match: str | None) -> None:
        """What the app's middleware does per request: a correlation id, the metrics, the access lines;
        all but the id once the answer has left (or the client has gone)."""
        started = time.perf_counter()
        correlation = observability.new_correlation_id(request_id)
        status = 304 if page_cache.matches(if_none_match, found.etag) else found.status
        try:
            self._send_page(found, correlation, status)
        finally:
            observe.answered_from_cache(found.route, status, correlation, started, self.gateway.counted,
                                        self._access_line(status))

    def _access_line(self, status: int) -> str:
        """The line ``log_request(status)`` writes (``log_message``'s form, redacted); a connection
        keeps its last one, for a request repeated within the second."""
        key = (self.requestline, status, self.log_date_time_string())
        last = self._last_access
        if last is None or last[0] != key:
            message = redact('"%s" %s -' % (self.requestline, status)).translate(self._control_char_table)
            last = self._last_access = (key, "%s - - [%s] %s\n" % (self.address_string(), key[2], message))
        return last[1]

    def _send_page(self, found: page_cache.CachedPage, correlation: str, status: int) -> None:
        """A page, or its 304 (the page's headers but its type, and its validator; no body: RFC 9110
        15.4.5), in one write sent at once: what ``send_response`` and ``send_header`` would write."""
        not_modified = status == 304
        self.wfile.write(b"".join((
            _status_head(self.protocol_version, self.version_string(), status), b"Date: ",
            _DATES.now(lambda second: self.date_time_string(second).encode("latin-1", "strict") + b"\r\n"),
            found.not_modified_head if not_modified else found.head,
            b"%s: %s\r\n\r\n" % (observe.HEADER.encode(), correlation.encode()),
            b"" if not_modified else found.body)))
        self.wfile.flush()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _send(self, status: int, headers: dict[str, Any], body: str | bytes | None) -> None:
        self.send_response(status)
        pairs: list[tuple[str, Any]] = []
        if body is None:
            headers["Content-Length"] = "0"
        else:
            if isinstance(body, str):
                body = body.encode("utf-8")
            pairs += [("Content-Length", str(len(body))), ("Content-Type", headers.pop("Content-Type", JSON))]
        pairs += [(name, one) for name, value in headers.items()
                  for one in (value if isinstance(value, list) else (value,))]
        # What ``send_header`` does for each, in one pass: its line, and a Connection header's effect.
        if self.request_version != "HTTP/0.9":
            self._headers_buffer.append("".join(["%s: %s\r\n" % pair for pair in pairs]).encode("latin-1", "strict"))
        for name, value in pairs:
            if name.lower() == "connection":
                if value.lower() == "close":
                    self.close_connection = True
                elif value.lower() == "keep-alive":
                    self.close_connection = False
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _no_route(self, length: int) -> None:
        if length:
            self.close_connection = True  # the unread body would be taken for the next request
        path = urlsplit(self.path).path
        headers: dict[str, Any] = {"Content-Type": JSON}
        if cors.applies(path):
            headers.update(cors.headers_for(self.headers.get("Origin")))
        self._send(404, headers, no_route(path))

    def do_GET(self) -> None:
        token = _files_token(self.path)
        if token is not None:
            self._stream_signed_get(token)
        else:
            self._generic_handle()

    def _stream_signed_get(self, token: str) -> None:
        length = self._length()
        if length is None:
            return
        if length:
            self.close_connection = True  # a GET body we will not read would be taken for the next request
        try:
            answer = files.signed_get(token, self.headers.get("Range"))
        except Exception:
            log.exception("GET /files failed")
            answer = files.SignedGet(500, message="internal error")
        if answer.reader is None:
            self._send(answer.status, dict(answer.headers, **{"Content-Type": "application/json"}),
                       json.dumps({"message": answer.message}).encode())
            return
        with answer.reader as reader:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(reader.length))
            self.end_headers()
            try:
                for chunk in reader.chunks():
                    self.wfile.write(chunk)
                self.wfile.flush()  # here, where a client gone away is expected
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away mid-body
            except Exception:
                log.exception("GET /files failed after the headers were sent")
                self.close_connection = True  # the length cannot be honoured: end the connection

    def handle_expect_100(self) -> bool:
        super().handle_expect_100()
        self.wfile.flush()  # the interim answer cannot wait in the buffer: the client waits for it
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers a method it has no handler for (TRACE, CONNECT, …) with 501, a server
        # error; it is the client's: 405, as API Gateway refuses it too.
        if code == 501 and (message or "").startswith("Unsupported method"):
            code = 405
        super().send_error(code, message, explain)

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return _HTTP_DATES.now(lambda second: super(RequestHandler, self).date_time_string(second))

    def log_date_time_string(self) -> str:
        return _LOG_TIMES.now(lambda second: super(RequestHandler, self).log_date_time_string())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        super().log_message("%s", redact(format % args))


def make_server(app: Any, host: str, port: int) -> LocalDevServer:
    config = Config(chalice_stage="dev", config_from_disk={}, user_provided_params={})
    server = create_local_server(app, config, host, port)  # also makes the app's current_request per thread
    gateway = _Gateway(app, config)
    server.server.RequestHandlerClass = lambda request, address, srv: RequestHandler(request, address, srv, gateway)
    # Cached pages' access lines are deferred (``Prefilled.defer``): ``serve_forever`` calls
    # ``service_actions`` at least every half second (whatever is left goes out at exit).
    actions = server.server.service_actions

    def service_actions() -> None:
        actions()
        observability.flush_deferred()
    server.server.service_actions = service_actions  # type: ignore[method-assign]
    return server
