"""Absolute URLs built from the request, as a client behind any proxy sees them."""
from __future__ import annotations

from typing import Any

from .. import services


def base_url(request: Any) -> str:
    """Scheme://host[/stage-or-prefix] of the service, without a trailing slash.

    ``STACFLOW_PUBLIC_URL`` wins; else ``X-Forwarded-Proto/Host/Prefix``; else the Host
    header, plus the API Gateway stage when the request came through one.
    """
    public = services.settings().public_url
    if public:
        return public.rstrip("/")
    headers = {k.lower(): v for k, v in (request.headers or {}).items()}
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
    host = headers.get("x-forwarded-host", headers.get("host", "127.0.0.1")).split(",")[0].strip()
    prefix = headers.get("x-forwarded-prefix", "").strip().rstrip("/")
    if not prefix:
        ctx = request.context or {}
        stage = ctx.get("stage")
        # API Gateway's default execute-api host includes the stage in the path.
        if stage and host.endswith(".amazonaws.com"):
            prefix = "/" + stage
    return f"{proto}://{host}{prefix}"
