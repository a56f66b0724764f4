"""Catalog function: item JSON written or deleted -> static catalog pages and search index updated."""
from __future__ import annotations

import logging

from .. import observability
from .base import EventServices, Route, StoreEvent

log = logging.getLogger(__name__)

# [private/]collections/<collection id>/items/<item id>.json (stac.catalog.PRIVATE_PREFIX)
ITEM_KEY = r"^(private/)?collections/[^/]+/items/[^/]+\.json$"


def on_item_events(services: EventServices, events: list[StoreEvent]) -> None:
    from ..stac.publish import apply_item_events
    from ..store.contention import Contention
    try:
        report = apply_item_events(services.store(), events)
    except Contention:
        # Every write is idempotent: failing the invocation makes the queue redeliver these events later.
        log.warning("publishing %d item event(s) gave up under contention; they will be redelivered",
                    len(events), exc_info=True, extra={"keys": [ev.key for ev in events][:20]})
        raise
    observability.count("Publications", report.published + report.deleted)
    if report.rejected:
        observability.count("RejectedItems", len(report.rejected))


ROUTES: list[Route] = [(ITEM_KEY, on_item_events)]
