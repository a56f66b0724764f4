"""S3 notifications (Lambda format, or SQS messages carrying them) <-> typed store events.

Keys are mapped through the store's ``EventSource``: a notification about another bucket or outside
the store's prefix names nothing of the store and is skipped.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping
from urllib.parse import quote_plus, unquote_plus

from ..store import Change, EventSource
from .base import StoreEvent


def parse_s3_event(event: Mapping[str, Any], source: EventSource) -> list[StoreEvent]:
    """The store events of an S3 notification; foreign buckets and prefixes are skipped."""
    if "Records" not in event:  # s3:TestEvent and other non-record payloads
        return []
    from aws_lambda_powertools.utilities.data_classes import S3Event
    out: list[StoreEvent] = []
    for record in S3Event(dict(event)).records:
        key = source.key_for(record.s3.bucket.name, unquote_plus(record.s3.get_object.key))
        if key is None:
            continue
        out.append(StoreEvent(created=record.event_name.startswith("ObjectCreated"), key=key,
                              etag=record.s3.get_object.etag or "",
                              sequencer=record.s3.get_object.sequencer or ""))
    return out


def is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and records[0].get("eventSource") == "aws:sqs"


def s3_events_in_sqs(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The S3 notifications an SQS batch carries, one per message body."""
    if "Records" not in event:
        return []
    from aws_lambda_powertools.utilities.data_classes import SQSEvent
    return [json.loads(record.body) for record in SQSEvent(dict(event)).records]


def s3_event_for(source: EventSource, changes: Iterable[Change]) -> dict[str, Any]:
    """The S3 notification (Lambda format) that S3 would send about ``changes``."""
    now = time.time()
    records = []
    for change in changes:
        bucket, key = source.notification_for(change.key)
        records.append({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            "eventName": change.event_name,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": quote_plus(key, safe="/"), "size": change.size,
                              "eTag": change.etag.strip('"'), "sequencer": f"{time.time_ns():016X}"}},
        })
    return {"Records": records}
