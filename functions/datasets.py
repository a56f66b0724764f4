"""The datasets function alone: GitLab change records and DVC remote objects -> dataset items."""
from __future__ import annotations

from typing import Any

from chalicelib import services
from chalicelib.events import datasets
from chalicelib.events.dispatch import handle_notification


def handler(event: dict[str, Any], context: object = None) -> int:
    """Lambda signature; returns how many events the function took."""
    return handle_notification(event, services.root(), datasets.ROUTES)
