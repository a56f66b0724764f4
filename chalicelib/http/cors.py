"""CORS for the read APIs a browser app on another origin uses (STAC API, signed ``/files`` URLs).

As stac-server and stac-fastapi do: every answer carries ``Access-Control-Allow-Origin`` and
``OPTIONS`` preflights answer with the methods and headers allowed. Origins come from
``STACFLOW_CORS_ORIGINS`` (default ``*``); a listed origin is echoed back with ``Vary: Origin``.
``Access-Control-Allow-Credentials`` is never sent: the browser then never attaches the service's
cookies (the UI sign-in) to a cross-origin call, so another site cannot read private data with a
visitor's session; cross-origin clients authenticate with an ``Authorization`` header instead.
"""
from __future__ import annotations

from typing import Any, Callable

from chalice import Response

from .. import services

# Paths whose answers carry CORS headers: the STAC API and the signed /files URLs (asset downloads).
PREFIXES = ("/stac", "/files")
ALLOW_HEADERS = "Authorization, Content-Type, Accept, Accept-Language, If-None-Match, Range"
EXPOSE_HEADERS = "ETag, Content-Range, Content-Length, Location"
MAX_AGE = "86400"


def applies(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


def headers_for(origin: str | None) -> dict[str, str]:
    """The CORS headers for a request from ``origin`` (its ``Origin`` header); none if not allowed."""
    allowed = services.settings().cors_origins
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE_HEADERS}
    if origin and origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSE_HEADERS,
                "Vary": "Origin"}
    return {"Vary": "Origin"} if allowed else {}


def preflight(origin: str | None, methods: list[str]) -> Response:
    """The answer to an ``OPTIONS`` preflight for a route that serves ``methods``."""
    headers: dict[str, str | list[str]] = dict(headers_for(origin))
    if "Access-Control-Allow-Origin" in headers:
        headers.update({"Access-Control-Allow-Methods": ", ".join(sorted({*methods, "OPTIONS"})),
                        "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE})
    return Response(body="", status_code=204, headers=dict(headers))


def middleware(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice HTTP middleware: CORS headers on every answer under ``PREFIXES``."""
    response = get_response(event)
    path = str((event.context or {}).get("resourcePath") or "")
    if applies(path):
        for name, value in headers_for(event.headers.get("origin")).items():
            response.headers.setdefault(name, value)
    return response


class PreflightRoutes:
    """``route`` as a blueprint's, plus one ``OPTIONS`` route per path answering the preflight with
    every method registered on that path (API Gateway has no catch-all OPTIONS)."""

    def __init__(self, blueprint: Any) -> None:
        self._blueprint = blueprint
        self._methods: dict[str, list[str]] = {}

    def route(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        methods = list(kwargs.get("methods", ["GET"]))
        if path not in self._methods:
            self._methods[path] = []
            bp = self._blueprint

            def answer(**_params: str) -> Response:
                return preflight(bp.current_request.headers.get("origin"), self._methods[path])
            answer.__name__ = f"preflight_{len(self._methods)}"
            bp.route(path, methods=["OPTIONS"])(answer)
        self._methods[path].extend(methods)
        route: Callable[[Callable[..., Any]], Any] = self._blueprint.route(path, **kwargs)
        return route
