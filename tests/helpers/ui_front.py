"""A same-origin front for the UI tests: the MLflow bundle at /mlflow/, everything else proxied.

Interim, tests only: ``stacflow serve`` mounts build/ui/mlflow itself once the static-file server
lands (issue 11, branch ui-stac). The UI calls everything relative to /mlflow/, so it must share an
origin with the API; this serves ``index.html`` and ``static-files/`` from the built bundle, as
``mlflow server --static-prefix /mlflow`` does, and forwards every other request to ``upstream``.
"""
from __future__ import annotations

import http.client
import mimetypes
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .paths import REPO

BUNDLE = REPO / "build" / "ui" / "mlflow"


class UiFront:
    def __init__(self, upstream: str, bundle: pathlib.Path = BUNDLE) -> None:
        target = urlsplit(upstream)
        host, port = target.hostname or "127.0.0.1", target.port or 80

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _static(self) -> bool:
                path = urlsplit(self.path).path
                if path in ("/mlflow", "/mlflow/"):
                    file = bundle / "index.html"
                elif path.startswith("/mlflow/static-files/"):
                    file = (bundle / path[len("/mlflow/static-files/"):]).resolve()
                    if bundle.resolve() not in file.parents:
                        return False
                else:
                    return False
                if not file.is_file():
                    return False
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", mimetypes.guess_type(file.name)[0] or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(host, port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def _handle(self) -> None:
                if self.command != "GET" or not self._static():
                    self._proxy()

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
