"""The geoparquet function: keeps each collection's stac-geoparquet dataset
(``collections/<cid>/geoparquet/``) current. ``deploy/stack.py`` invokes it on every search-index
log write (S3 notifies its own queue; the event source mapping batches writes over 2 s) and every 5
minutes from an EventBridge schedule (the backstop); packaged apart from the API with
``requirements-geoparquet.txt`` (pyarrow never enters the API's package or cold start).

Whatever invoked it, it brings every collection up to the index: the queue's messages only say
"the index changed" (a failed run fails the batch, which SQS delivers again until it expires).

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
    """Lambda signature (the schedule's event and the queue's batch are only triggers); returns what each
    collection got."""
    global _index
    store = services.store()
    if _index is None or _index.store is not store:
        _index = SearchIndex(store)
    results = geoparquet.regenerate_all(store, _index, public_url=services.settings().public_url)
    return [r.as_dict() for r in results]
