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
# Where a request keeps how many store requests its answer made (``page_cache`` shares only answers
# that made none).
STORE_REQUESTS = "_stacflow_store_requests"
_ACCESS = observability.Line("request")  # the access line: one per request


def http_middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    context = event.context or {}
    correlation = observability.new_correlation_id(event.headers.get(HEADER), context.get("requestId"))
    route = event.path or ""
    with observability.invocation(correlation, "http") as inv, observability.trace(f"{event.method} {route}"):
        response = get_response(event)
        status = int(getattr(response, "status_code", 200))
        store_requests = inv.counts.get("StoreRequests", 0)
        finished(inv, event.method, route, status, store_requests)
    setattr(event, STORE_REQUESTS, store_requests)
    response.headers[HEADER] = correlation
    return response


def finished(inv: observability.Invocation, method: str, route: str, status: int, store_requests: int = 0) -> None:
    """The metrics and the access line of a request answered in ``inv`` (by the app or, in ``stacflow
    serve``, from the page cache: the same line either way)."""
    observability.count("Requests")
    if status >= 500:
        observability.count("Errors")
    elif status >= 400:
        observability.count("ClientErrors")
    elapsed = (time.perf_counter() - inv.started) * 1000
    observability.observe_ms("Latency", elapsed)
    _ACCESS.info(http_method=method, route=route, status=status, duration_ms=round(elapsed, 1),
                 store_requests=store_requests)
