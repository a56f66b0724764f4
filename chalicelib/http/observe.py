"""The HTTP edge's observability: one invocation per request (``chalicelib.observability``).

Registered on the app as Chalice middleware, so it runs under API Gateway and ``stacflow serve``
alike. The correlation id is the client's ``X-Request-Id`` if it is short and plain, else API
Gateway's request id, else a new one; the response echoes it in ``X-Request-Id``. The access line
names the route template (``/files/{token}``), never the path or query, so no token can reach it.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from .. import observability

HEADER = "X-Request-Id"
# Where a request keeps how many store requests its answer made (``page_cache`` shares only answers
# that made none).
STORE_REQUESTS = "_stacflow_store_requests"
_ACCESS = observability.Line("request")  # the access line: one per request
# Per page route and status: the access line of its answers from the page cache, prefilled.
_FORMS: dict[tuple[str, int], observability.Prefilled] = {}
_MAX_FORMS = 256


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


def answered_from_cache(route: str, status: int, correlation: str, started: float, counted: bool,
                        before: str) -> None:
    """``finished`` for a GET that ``stacflow serve`` answered from its page cache (``started``: when
    it began; ``counted``: whether metrics are on), after ``before`` (its server's own access line,
    for stderr). Without metrics (they would be dropped) the same access line is written from its
    form for this page and status, prefilled once, with no invocation, with ``before``, deferred
    (``Prefilled.defer``: the server flushes them): a cached page's answer costs little more than its
    lines, and the lines as ``finished`` and ``http.server`` write them were most of that."""
    key = (route, status)
    if not counted:
        form = _FORMS.get(key)
        if form is not None and form.defer(correlation, before,
                                           duration_ms=round((time.perf_counter() - started) * 1000, 1)):
            return
    observability.flush_deferred()  # the lines of earlier answers first
    sys.stderr.write(before)
    with observability.invocation(correlation, "http", started) as inv:
        finished(inv, "GET", route, status)
    if not counted:
        if len(_FORMS) >= _MAX_FORMS:
            _FORMS.clear()
        form = _ACCESS.prefill({"http_method": "GET", "route": route, "status": status, "duration_ms": 0.0,
                                "store_requests": 0}, ["duration_ms"])
        if form is not None:
            _FORMS[key] = form
