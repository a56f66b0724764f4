"""The catalog function alone: item notifications (S3, or SQS carrying S3) -> catalog and search index."""
from __future__ import annotations

from typing import Any

from chalicelib import services
from chalicelib.events import catalog
from chalicelib.events.dispatch import handle_notification


def handler(event: dict[str, Any], context: object = None) -> int:
    """Lambda signature; returns how many events the function took."""
    return handle_notification(event, services.root(), catalog.ROUTES)
