"""The geoparquet function: keeps each collection's stac-geoparquet dataset
(``collections/<cid>/geoparquet/``) current, run every minute by an EventBridge schedule
(``deploy/stack.py``), packaged apart from the API with ``requirements-geoparquet.txt`` (pyarrow
never enters the API's package or cold start).

A warm instance keeps the search index's reader and the footers it has seen (by ETag), so a run
where nothing changed costs one LIST of the index log, one conditional GET of its manifest and, per
collection, one conditional GET of the dataset's manifest and one LIST of its files; a change
rewrites only the partitions it touched.
"""
from __future__ import annotations

from typing import Any

from chalicelib import services
from chalicelib.stac import geoparquet
from chalicelib.stac.index import SearchIndex

_index: SearchIndex | None = None


def handler(event: dict[str, Any] | None = None, context: object = None) -> list[dict[str, Any]]:
    """Lambda signature (the schedule's event is ignored); returns what each collection got."""
    global _index
    store = services.store()
    if _index is None or _index.store is not store:
        _index = SearchIndex(store)
    results = geoparquet.regenerate_all(store, _index, public_url=services.settings().public_url)
    return [r.as_dict() for r in results]
