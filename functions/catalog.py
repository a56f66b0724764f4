"""Catalog function: item JSON written or deleted -> static catalog pages and search index updated."""
from __future__ import annotations

from chalicelib.store import ObjectStore

from . import StoreEvent

# collections/<collection id>/items/<item id>.json
ITEM_KEY = r"^collections/[^/]+/items/[^/]+\.json$"


def on_item_events(store: ObjectStore, events: list[StoreEvent]) -> None:
    from chalicelib.stac.publish import apply_item_events
    apply_item_events(store, events)


ROUTES = [(ITEM_KEY, on_item_events)]
