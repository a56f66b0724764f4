"""SQS batches of S3 notifications, one message at a time, with partial batch failures.

The deployed event function (``app.on_store_event``) answers ``{"batchItemFailures": [...]}``
(the event source mapping has ``ReportBatchItemFailures``; see ``deploy/stack.py``), so the queue
redelivers only the messages that failed, and after its redrive limit moves them to the dead-letter
queue. A poison message (a body that is not JSON, or not an S3 notification) can never succeed: it
is logged and dropped (reported as processed) instead of being retried until the redrive limit.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .base import EventServices, Route, StoreEvent
from .dispatch import ROUTES, handle_events, observed
from .notifications import parse_s3_event

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

log = logging.getLogger(__name__)

BatchResponse = dict[str, list[dict[str, str]]]  # {"batchItemFailures": [{"itemIdentifier": <messageId>}]}


class Poison(ValueError):
    """A message that no retry can process: not JSON, or not an S3 notification."""


def notification_of(body: str) -> dict[str, Any] | None:
    """The S3 notification an SQS message body carries (None: S3's test event); ``Poison`` otherwise."""
    try:
        notification = json.loads(body)
    except ValueError as exc:
        raise Poison(f"body is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(notification, dict):
        raise Poison(f"body is a JSON {type(notification).__name__}, not an S3 notification")
    if "Records" not in notification:
        if notification.get("Event") == "s3:TestEvent":
            return None  # S3 sends one when the notification configuration is saved
        raise Poison("body has no Records")
    return notification


def store_events_of(notification: dict[str, Any], services: EventServices) -> list[StoreEvent]:
    """The store events of an S3 notification; ``Poison`` when its records are not S3's shape."""
    source, remotes = services.store().event_source, services.settings().dvc_remotes  # outside the shape check
    try:
        return parse_s3_event(notification, source, remotes)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Poison(f"not an S3 notification record ({exc.__class__.__name__}: {str(exc)[:80]})") from None


def handle_sqs_batch(event: Mapping[str, Any], services: EventServices,
                     routes: Sequence[Route] = ROUTES) -> BatchResponse:
    """Process each message of an SQS batch on its own; the ids of those that failed (to retry)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record_handler(record: SQSRecord) -> None:
        try:
            notification = notification_of(record.body)
            events = store_events_of(notification, services) if notification is not None else []
        except Poison as exc:
            # Logged without the body: it is not ours to print. Dropped: a retry cannot fix it.
            log.warning("dropping poison message %s: %s", record.message_id, exc,
                        extra={"message_id": record.message_id, "body_length": len(record.body or "")})
            return
        try:
            with observed(notification or {}):
                handle_events(services, events, routes)
        except Exception:
            log.warning("message %s failed; the queue will redeliver it", record.message_id, exc_info=True,
                        extra={"message_id": record.message_id, "keys": [ev.key for ev in events][:20]})
            raise

    # Every message failing is still a partial response (all ids listed), not an invocation error:
    # the queue then redelivers exactly the same set either way, without an error in the function's metrics.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=dict(event), record_handler=record_handler, processor=processor)
    return {"batchItemFailures": [{"itemIdentifier": str(item["itemIdentifier"])}
                                  for item in response.get("batchItemFailures", [])]}
