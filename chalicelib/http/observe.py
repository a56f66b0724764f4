"""The HTTP edge's observability: one invocation per request (``chalicelib.observability``).

Registered on the app as Chalice middleware, so it runs under API Gateway and ``stacflow serve``
alike. The correlation id is the client's ``X-Request-Id`` if it is short and plain, else API
Gateway's request id, else a new one; the response echoes it in ``X-Request-Id``. The access line
names the route template (``/files/{token}``), never the path or query, so no token can reach it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from .. import observability

HEADER = "X-Request-Id"


def http_middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    context = event.context or {}
    correlation = observability.new_correlation_id(event.headers.get(HEADER), context.get("requestId"))
    route = event.path or ""
    with observability.invocation(correlation, "http") as inv, observability.trace(f"{event.method} {route}"):
        observability.count("Requests")
        response = get_response(event)
        status = int(getattr(response, "status_code", 200))
        if status >= 500:
            observability.count("Errors")
        elif status >= 400:
            observability.count("ClientErrors")
        elapsed = (time.perf_counter() - inv.started) * 1000
        observability.observe_ms("Latency", elapsed)
        observability.logger().info("request", extra={
            "http_method": event.method, "route": route, "status": status, "duration_ms": round(elapsed, 1),
            "store_requests": inv.counts.get("StoreRequests", 0)})
    response.headers[HEADER] = correlation
    return response
