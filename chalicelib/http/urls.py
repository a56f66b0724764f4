"""The service's base URL for one request: configured, or from the request as far as it can be trusted.

Only responses use it; nothing derived from a request's headers is ever stored (item links come
from ``STACFLOW_PUBLIC_URL`` or are relative, see ``registry.publication``).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from .. import services

# The peer address, set by ``stacflow serve``'s request handler (a client-sent value is dropped there).
PEER_HEADER = "x-stacflow-peer"
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")


def base_url(request: Any) -> str:
    """Scheme://host[/stage-or-prefix] of the service, without a trailing slash.

    ``STACFLOW_PUBLIC_URL`` wins. Through API Gateway, its own request context (domain, stage).
    Otherwise the Host header, and ``X-Forwarded-Proto/Host/Prefix`` only when the peer is one of
    ``STACFLOW_TRUSTED_PROXIES``.
    """
    cfg = services.settings()
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    headers = {k.lower(): v for k, v in (request.headers or {}).items()}
    ctx = request.context or {}
    if ctx.get("requestId"):  # API Gateway (the local server's events carry no request id)
        host = _host(ctx.get("domainName")) or _host(headers.get("host")) or "localhost"
        stage = str(ctx.get("stage") or "")
        # The default execute-api host includes the stage in the path.
        prefix = f"/{stage}" if stage and host.endswith(".amazonaws.com") and _PREFIX.match(f"/{stage}") else ""
        return f"https://{host}{prefix}"
    proto, host, prefix = "http", _host(headers.get("host")) or "127.0.0.1", ""
    if trusted(headers.get(PEER_HEADER), cfg.trusted_proxies):
        forwarded_proto = _first(headers.get("x-forwarded-proto")).lower()
        proto = forwarded_proto if forwarded_proto in ("http", "https") else proto
        host = _host(_first(headers.get("x-forwarded-host"))) or host
        forwarded_prefix = (headers.get("x-forwarded-prefix") or "").strip().rstrip("/")
        prefix = forwarded_prefix if _PREFIX.match(forwarded_prefix) else ""
    return f"{proto}://{host}{prefix}"


def trusted(peer: str | None, proxies: tuple[str, ...]) -> bool:
    """Whether ``peer`` (an IP address) is one of ``proxies`` (IPs or CIDRs; ``*``: anyone)."""
    if "*" in proxies:
        return True
    try:
        address = ipaddress.ip_address((peer or "").strip())
    except ValueError:
        return False
    for entry in proxies:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def _host(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if _HOST.match(text) else None
