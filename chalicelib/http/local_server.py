"""The embedded HTTP server of ``stacflow serve``: Chalice's local server, tuned for real clients.

Three things differ from Chalice's own: a path no route matches answers 404 in the API's error
shape (Chalice, like API Gateway, says 403 "Missing Authentication Token"; see ``errors``), ``GET /files/{token}`` streams from the store (Chalice
would build the whole body, and base64 it, in memory: a 300 MB artifact cost 1.1 GB), and the
access log never shows a bearer credential (signed-URL tokens, presigned query signatures).
"""
from __future__ import annotations

import functools
import json
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, RouteMatcher, create_local_server

from ..observability import redact  # one redaction rule for the access log and the JSON logs
from . import cors, files
from .errors import JSON, no_route
from .urls import PEER_HEADER

log = logging.getLogger(__name__)

def _files_token(path: str) -> str | None:
    segments = urlsplit(path).path.split("/")
    if len(segments) == 3 and segments[1] == "files" and segments[2]:
        return unquote(segments[2])
    return None


class RequestHandler(ChaliceRequestHandler):
    # Headers and body go out in two writes: without TCP_NODELAY each keep-alive response
    # waits ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def _parse_payload(self) -> tuple[Any, bytes | None]:
        # No Accept header means "anything" (RFC 9110). Chalice, mimicking API Gateway, would
        # refuse binary responses (artifact and asset downloads) to such clients; behind API
        # Gateway, downloads go to presigned S3 URLs instead.
        if "accept" not in {k.lower() for k in self.headers.keys()}:
            self.headers["Accept"] = "*/*"
        # Who is really calling, for the trusted-proxy check (urls.base_url); never the client's say.
        del self.headers[PEER_HEADER]
        self.headers[PEER_HEADER] = self.client_address[0]
        return super()._parse_payload()

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config) -> None:
        self._routes = _matcher(app_object)
        super().__init__(request, client_address, server, app_object, config)

    def _generic_handle(self) -> None:
        try:
            self._routes.match_route(self.path)
        except ValueError:
            self._no_route()
            return
        super()._generic_handle()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _no_route(self) -> None:
        if int(self.headers.get("Content-Length") or 0):
            self.close_connection = True  # the unread body would be taken for the next request
        path = urlsplit(self.path).path
        body = no_route(path)
        self.send_response(404)
        if cors.applies(path):
            for name, value in cors.headers_for(self.headers.get("Origin")).items():
                self.send_header(name, value)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        token = _files_token(self.path)
        if token is None:
            self._generic_handle()
        else:
            self._stream_signed_get(token)

    def _stream_signed_get(self, token: str) -> None:
        if int(self.headers.get("Content-Length") or 0):
            self.close_connection = True  # a GET body we will not read would be taken for the next request
        try:
            answer = files.signed_get(token, self.headers.get("Range"))
        except Exception:
            log.exception("GET /files failed")
            answer = files.SignedGet(500, message="internal error")
        if answer.reader is None:
            body = json.dumps({"message": answer.message}).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
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
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away mid-body
            except Exception:
                log.exception("GET /files failed after the headers were sent")
                self.close_connection = True  # the length cannot be honoured: end the connection

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers a method it has no handler for (TRACE, CONNECT, …) with 501, a server
        # error; it is the client's: 405, as API Gateway refuses it too.
        if code == 501 and (message or "").startswith("Unsupported method"):
            code = 405
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        super().log_message("%s", redact(format % args))


@functools.lru_cache(maxsize=4)
def _matcher(app: Any) -> RouteMatcher:
    """Chalice's own route matching (what its gateway would answer 403 to), once per app."""
    return RouteMatcher(list(app.routes))


def make_server(app: Any, host: str, port: int) -> LocalDevServer:
    config = Config(chalice_stage="dev", config_from_disk={}, user_provided_params={})
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(RequestHandler, app_object=app, config=config)
    return server
