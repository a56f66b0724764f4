"""The registry function alone: registry records and model files -> the versions' STAC items."""
from __future__ import annotations

from typing import Any

from chalicelib import services
from chalicelib.events import registry
from chalicelib.events.dispatch import handle_notification


def handler(event: dict[str, Any], context: object = None) -> int:
    """Lambda signature; returns how many events the function took."""
    return handle_notification(event, services.root(), registry.ROUTES)
