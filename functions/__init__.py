"""Event-driven functions: S3 object-created/removed notifications -> catalog updates.

Each function module declares which keys it handles (``ROUTES``); ``handle_s3_event``
fans the records of one S3 notification out to them. The deployed Lambda (S3 -> SQS ->
``app.on_store_event``), ``stacflow replay-events`` and the local store's in-process
dispatch all come through here, so every mode runs one code path.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import unquote_plus

from chalicelib.store import CREATED, Change, ObjectStore


@dataclass(frozen=True)
class StoreEvent:
    """One S3 notification record, reduced to what the functions use."""

    created: bool  # ObjectCreated:* (else ObjectRemoved:*)
    key: str  # store-relative key
    etag: str
    sequencer: str


Handler = Callable[[ObjectStore, list[StoreEvent]], None]


def _routes() -> list[tuple[re.Pattern[str], Handler]]:
    # Imported here so that importing ``functions`` stays cheap.
    from . import catalog, registry
    return [(re.compile(pattern), handler) for pattern, handler in catalog.ROUTES + registry.ROUTES]


_ROUTES: list[tuple[re.Pattern[str], Handler]] | None = None


def routes() -> list[tuple[re.Pattern[str], Handler]]:
    global _ROUTES
    if _ROUTES is None:
        _ROUTES = _routes()
    return _ROUTES


def parse_s3_records(event: dict[str, Any], store: ObjectStore) -> list[StoreEvent]:
    """Store events from an S3 notification (Lambda format); foreign buckets/prefixes are skipped."""
    from aws_lambda_powertools.utilities.data_classes import S3Event
    out: list[StoreEvent] = []
    if "Records" not in event:  # s3:TestEvent and other non-record payloads
        return out
    for record in S3Event(event).records:
        raw_key = unquote_plus(record.s3.get_object.key)
        key_from_event = getattr(store, "key_from_event", None)
        key = key_from_event(record.s3.bucket.name, raw_key) if key_from_event else raw_key
        if key is None:
            continue
        out.append(StoreEvent(created=record.event_name.startswith("ObjectCreated"), key=key,
                              etag=record.s3.get_object.etag or "",
                              sequencer=record.s3.get_object.sequencer or ""))
    return out


def handle_events(store: ObjectStore, events: Iterable[StoreEvent]) -> int:
    """Route events to their functions, batched per function; returns how many were routed."""
    batches: dict[int, tuple[Handler, list[StoreEvent]]] = {}
    routed = 0
    for ev in events:
        for i, (pattern, handler) in enumerate(routes()):
            if pattern.match(ev.key):
                batches.setdefault(i, (handler, []))[1].append(ev)
                routed += 1
                break
    for handler, batch in batches.values():
        handler(store, batch)
    return routed


def handle_s3_event(event: dict[str, Any], store: ObjectStore) -> int:
    return handle_events(store, parse_s3_records(event, store))


def handle_sqs_event(event: dict[str, Any], store: ObjectStore) -> int:
    """S3 notifications delivered through SQS: each message body is one S3 event."""
    return sum(handle_s3_event(json.loads(record["body"]), store) for record in event.get("Records", []))


def s3_event_for(store: ObjectStore, changes: Iterable[Change]) -> dict[str, Any]:
    """The S3 notification (Lambda format) that S3 would send for ``changes``."""
    bucket = getattr(store, "bucket", "local")
    prefix = getattr(store, "prefix", "")
    now = time.time()
    records = []
    for change in changes:
        records.append({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            "eventName": change.event_name,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": _quote_key(prefix + change.key), "size": change.size,
                              "eTag": change.etag.strip('"'), "sequencer": f"{time.time_ns():016X}"}},
        })
    return {"Records": records}


def _quote_key(key: str) -> str:
    from urllib.parse import quote_plus
    return quote_plus(key, safe="/")


def dispatch_change(store: ObjectStore, change: Change) -> None:
    """In-process delivery of one store change (local store), in the S3 event format."""
    if not any(pattern.match(change.key) for pattern, _ in routes()):
        return  # derived data (catalog pages, index segments): nothing listens
    handle_s3_event(s3_event_for(store, [change]), store)


__all__ = ["CREATED", "StoreEvent", "dispatch_change", "handle_events", "handle_s3_event",
           "handle_sqs_event", "parse_s3_records", "s3_event_for"]
