"""The embedded HTTP server of ``stacflow serve``: Chalice's local server, tuned for real clients."""
from __future__ import annotations

import functools
from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, create_local_server

from .urls import PEER_HEADER


class RequestHandler(ChaliceRequestHandler):
    # Headers and body go out in two writes: without TCP_NODELAY each keep-alive response
    # waits ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def _parse_payload(self):  # type: ignore[no-untyped-def]
        # No Accept header means "anything" (RFC 9110). Chalice, mimicking API Gateway, would
        # refuse binary responses (artifact and asset downloads) to such clients; behind API
        # Gateway, downloads go to presigned S3 URLs instead.
        if "accept" not in {k.lower() for k in self.headers.keys()}:
            self.headers["Accept"] = "*/*"
        # Who is really calling, for the trusted-proxy check (urls.base_url); never the client's say.
        del self.headers[PEER_HEADER]
        self.headers[PEER_HEADER] = self.client_address[0]
        return super()._parse_payload()


def make_server(app: Any, host: str, port: int) -> LocalDevServer:
    config = Config(chalice_stage="dev", config_from_disk={}, user_provided_params={})
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(RequestHandler, app_object=app, config=config)
    return server
