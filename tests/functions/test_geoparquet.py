"""The scheduled geoparquet function: writes the files once, then (warm, nothing changed) writes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("stac_geoparquet")

from chalicelib import services  # noqa: E402
from chalicelib.stac import catalog  # noqa: E402
from chalicelib.stac.publish import publish_paths  # noqa: E402
from chalicelib.store.local import LocalStore  # noqa: E402
from functions import geoparquet  # noqa: E402
from tests.helpers.stac_items import make_item  # noqa: E402
from tests.helpers.stores import InstrumentedStore  # noqa: E402


def test_scheduled_runs_write_only_what_changed(tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "store", fsync=False)
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(make_item(f"i{n}", "dataset")) for n in range(5)))
    publish_paths(local, [source], progress=False)
    store = InstrumentedStore(local)
    services.configure(store=store)
    try:
        first = geoparquet.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
        store.calls.clear()
        second = geoparquet.handler({}, None)
    finally:
        services.configure()
    assert {r["collection"]: r["items"] for r in first if r["written"]} == {"ai-model": 0, "dataset": 5}
    assert not any(r["written"] for r in second)
    # warm, per collection: the index log's LIST and its manifest's GET (304), the dataset manifest's
    # GET (304); the files are not listed while the index and the manifest match what this process wrote
    assert dict(store.calls) == {"LIST": 2, "GET": 4}
    layout = local.get_json(catalog.geoparquet_manifest_key("dataset"))["layout"]
    assert local.head(catalog.geoparquet_part_key("dataset", layout, 0)).size > 0


def test_an_index_write_notified_through_the_queue_brings_the_dataset_up_to_date(tmp_path: Path) -> None:
    """The trigger's batch (an S3 notification of a search-index log write, via SQS) is only a trigger:
    the run regenerates what the index holds now."""
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac.publish import apply_item_events
    local = LocalStore(tmp_path / "store", fsync=False)
    services.configure(store=local)
    try:
        geoparquet.handler({"source": "aws.events"}, None)
        key = catalog.item_key("dataset", "fresh")
        local.put_json(key, make_item("fresh", "dataset"))
        apply_item_events(local, [StoreEvent(True, key, "", "")])  # the event function's index write
        batch = json.loads((Path(__file__).parents[1] / "events" / "sqs_s3_index_log_created.json").read_text())
        results = geoparquet.handler(batch, None)
    finally:
        services.configure()
    assert {r["collection"]: r["items"] for r in results if r["written"]} == {"dataset": 1}
