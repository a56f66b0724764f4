"""The static web UIs, mounted under a prefix: ``/browser/`` (STAC Browser), ``/mlflow/`` (MLflow's UI).

``site_blueprint(name, history=…)`` registers GET/HEAD routes for the prefix itself and for paths
of 1..``depth`` segments (Chalice, like API Gateway without ``{proxy+}``, binds one segment per
parameter; the STAC Browser's deepest page is ``stac/collections/{cid}/items/{iid}``), all on one
handler that asks ``ui.static.serve``. Register it with ``app.register_blueprint(bp, url_prefix=
"/browser")``. The prefix without its trailing slash redirects to it, so relative URLs resolve.
"""
from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from .. import services
from ..ui import static
from .errors import JSON, error_body
from .urls import base_url

DEPTH = 12
BINARY_TYPES = static.binary_types()  # app.py declares them: fonts, images, icons go out base64-encoded


def site_blueprint(name: str, *, history: bool, depth: int = DEPTH) -> Blueprint:
    blueprint = Blueprint(f"{__name__}.{name}")

    def serve_file(**segments: str) -> Response:
        request = blueprint.current_request
        site = services.ui_site(name, history=history)
        real_path = str((request.context or {}).get("path") or request.path)
        raw = "/".join(segments[f"p{i}"] for i in range(1, len(segments) + 1))
        if not segments and not real_path.endswith("/"):
            # "/browser" -> "/browser/": the app's relative URLs (MLflow's) resolve against the folder.
            return Response(body="", status_code=308, headers={"Location": real_path + "/"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = static.serve(site, request.method, raw, headers, base_url(request))
        if answer.message is not None:
            return Response(body=error_body(request.path, answer.status, answer.message),
                            status_code=answer.status, headers={"Content-Type": JSON, **answer.headers})
        return Response(body=_body(answer), status_code=answer.status, headers=dict(answer.headers))

    for n in range(depth + 1):
        path = "/" + "/".join(f"{{p{i}}}" for i in range(1, n + 1))
        blueprint.route(path, methods=["GET", "HEAD"])(serve_file)
    return blueprint


def _body(answer: static.Answer) -> Any:
    """Text goes out as text (API Gateway passes it as is); anything else as bytes, which Chalice
    base64-encodes for the binary media types the app declares (``BINARY_TYPES``)."""
    content_type = answer.headers.get("Content-Type", "")
    if not answer.body or static.is_text(content_type):
        return answer.body.decode("utf-8", errors="replace") if answer.body else ""
    return answer.body
