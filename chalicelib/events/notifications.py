"""S3 notifications (Lambda format, or SQS messages carrying them) <-> typed store events.

Keys are mapped through the store's ``EventSource``: a notification about another bucket or outside
the store's prefix names nothing of the store and is skipped, unless it is about an object of a
configured DVC remote (``STACFLOW_DVC_REMOTES``, in any bucket, the store's included): those become
events keyed by the object's ``s3://bucket/key`` URL, which the datasets function takes.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote_plus, unquote_plus

from ..store import Change, EventSource
from .base import StoreEvent


def remote_url(remotes: Sequence[str], bucket: str, key: str) -> str | None:
    """``s3://bucket/key`` if a configured remote (``s3://bucket[/prefix]``) holds that object, else None."""
    url = f"s3://{bucket}/{key}"
    for remote in remotes:
        remote = remote.rstrip("/")
        if url.startswith(remote + "/"):
            return url
    return None


def parse_s3_event(event: Mapping[str, Any], source: EventSource, remotes: Sequence[str] = ()) -> list[StoreEvent]:
    """The store events of an S3 notification, and those of the DVC ``remotes``' objects; the rest is skipped."""
    if "Records" not in event:  # s3:TestEvent and other non-record payloads
        return []
    from aws_lambda_powertools.utilities.data_classes import S3Event
    out: list[StoreEvent] = []
    for record in S3Event(dict(event)).records:
        bucket, name = record.s3.bucket.name, unquote_plus(record.s3.get_object.key)
        key = remote_url(remotes, bucket, name) or source.key_for(bucket, name)
        if key is None:
            continue
        out.append(StoreEvent(created=record.event_name.startswith("ObjectCreated"), key=key,
                              etag=record.s3.get_object.etag or "",
                              # optional: S3-compatible servers (and moto) may leave it out
                              sequencer=record.s3.get_object.get("sequencer") or "",
                              size=int(record.s3.get_object.get("size") or 0)))  # deletions carry none
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
