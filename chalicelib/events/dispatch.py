"""Routing: each store event goes to the function that handles its key, batched per function.

Every mode comes through here: the deployed Lambda (S3 -> SQS -> ``app.on_store_event``),
``stacflow replay-events`` and the local store's in-process dispatch (``dispatch_change``).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .. import observability
from ..store import Change
from . import catalog, datasets, registry
from .base import EventServices, Handler, Route, StoreEvent
from .notifications import is_sqs_event, parse_s3_event, s3_event_for, s3_events_in_sqs

ROUTES: list[Route] = datasets.ROUTES + catalog.ROUTES + registry.ROUTES  # first match wins


def handler_for(key: str, routes: Sequence[Route] = ROUTES) -> Handler | None:
    # re keeps the compiled patterns (its own cache holds hundreds)
    return next((handler for pattern, handler in routes if re.match(pattern, key)), None)


def handle_events(services: EventServices, events: Iterable[StoreEvent], routes: Sequence[Route] = ROUTES) -> int:
    """Route events to their functions, one batch per function; returns how many were routed."""
    batches: dict[Handler, list[StoreEvent]] = {}
    for ev in events:
        handler = handler_for(ev.key, routes)
        if handler is not None:
            batches.setdefault(handler, []).append(ev)
    for handler, batch in batches.items():
        handler(services, batch)
    return sum(len(batch) for batch in batches.values())


def handle_s3_event(event: Mapping[str, Any], services: EventServices, routes: Sequence[Route] = ROUTES) -> int:
    with observed(event):
        events = parse_s3_event(event, services.store().event_source, services.settings().dvc_remotes)
        return handle_events(services, events, routes)


@contextmanager
def observed(event: Mapping[str, Any]) -> Iterator[None]:
    """One invocation per notification (S3 sends one record each): its log lines, metrics and lag."""
    records = event.get("Records") or [] if isinstance(event, Mapping) else []
    with observability.invocation(_record_id(records), "event"):
        yield
        for record in records:
            if isinstance(record, Mapping):
                observability.event_lag(record.get("eventTime"))


def _record_id(records: Sequence[Any]) -> str:
    """S3's request id of the write (or the object's sequencer): the same across redeliveries."""
    for record in records[:1]:
        if isinstance(record, Mapping):
            s3 = record.get("s3") or {}
            return observability.new_correlation_id(
                (record.get("responseElements") or {}).get("x-amz-request-id"),
                (s3.get("object") or {}).get("sequencer") if isinstance(s3, Mapping) else None)
    return observability.new_correlation_id()


def handle_sqs_event(event: Mapping[str, Any], services: EventServices, routes: Sequence[Route] = ROUTES) -> int:
    """S3 notifications delivered through SQS: each message body is one S3 notification."""
    return sum(handle_s3_event(body, services, routes) for body in s3_events_in_sqs(event))


def handle_notification(event: Mapping[str, Any], services: EventServices, routes: Sequence[Route] = ROUTES) -> int:
    """An S3 notification, or an SQS batch of them (as saved from either source)."""
    return (handle_sqs_event if is_sqs_event(event) else handle_s3_event)(event, services, routes)


def dispatch_change(services: EventServices, change: Change) -> None:
    """In-process delivery of one store change (local store), in the S3 notification format."""
    if handler_for(change.key) is None:
        return  # derived data (catalog pages, index segments): nothing listens
    store = services.store()
    handle_s3_event(s3_event_for(store.event_source, [change]), services)
