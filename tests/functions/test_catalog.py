"""The catalog function fed real-format S3 notifications (tests/events/*.json)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from chalicelib.stac import catalog
from chalicelib.stac.publish import REJECTED_PREFIX
from chalicelib.store import NotFound, ObjectStore
from chalicelib.events.dispatch import handle_s3_event, handle_sqs_event
from chalicelib.services import Services
from tests.helpers.paths import REPO
from tests.helpers.stac_items import indexed, make_item

EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"
ALPS = "collections/dataset/items/sentinel2-alps.json"
UNET = "collections/ai-model/items/unet:flood+v2.json"  # URL-encoded in the event
BROKEN = "collections/dataset/items/broken.json"


def event(name: str, bucket: str | None = None) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    return json.loads(text.replace("stacflow-store", bucket) if bucket else text)


def write_sources(store: ObjectStore) -> None:
    """The objects the created-event fixture announces (a publisher's raw uploads)."""
    store.put_json(ALPS, make_item("sentinel2-alps", collection=None, lon=10.5, lat=46.5, size=0.5))
    store.put_json(UNET, make_item("unet:flood+v2", collection="ai-model", lon=2, lat=48))
    store.put(BROKEN, b"{oops")


def shard_items(store: ObjectStore, cid: str) -> set[str]:
    out: set[str] = set()
    for info in store.list(f"collections/{cid}/shards/"):
        out |= set(store.get_json(info.key)[catalog.ITEMS_FIELD])
    return out


def test_created_event_publishes_valid_items_and_rejects_broken_ones(local_store, caplog) -> None:
    write_sources(local_store)
    with caplog.at_level("WARNING", logger="chalicelib.stac.publish"):
        assert handle_s3_event(event("item-created.json"), Services(store=local_store)) == 3
    (rejected,) = caplog.records
    assert rejected.key == BROKEN
    assert "not JSON" in rejected.reason
    assert BROKEN in rejected.getMessage()
    assert shard_items(local_store, "dataset") == {"sentinel2-alps"}
    assert shard_items(local_store, "ai-model") == {"unet:flood+v2"}
    assert indexed(local_store) == {("dataset", "sentinel2-alps"), ("ai-model", "unet:flood+v2")}
    stored = local_store.get_json(ALPS)
    assert stored["collection"] == "dataset"
    assert any(l["rel"] == "parent" for l in stored["links"])
    # The malformed upload is moved aside with its reason; the catalog never saw it.
    with pytest.raises(NotFound):
        local_store.get(BROKEN)
    record = local_store.get_json(REJECTED_PREFIX + BROKEN)
    assert record["body"] == "{oops"
    assert "not JSON" in record["reason"]


def test_removed_event_unpublishes(local_store) -> None:
    write_sources(local_store)
    handle_s3_event(event("item-created.json"), Services(store=local_store))
    local_store.delete(ALPS)
    handle_s3_event(event("item-removed.json"), Services(store=local_store))
    assert shard_items(local_store, "dataset") == set()
    assert indexed(local_store) == {("ai-model", "unet:flood+v2")}
    extent = local_store.get_json(catalog.collection_key("dataset"))["extent"]
    assert extent["temporal"]["interval"] == [[None, None]]


def test_duplicate_and_stale_events_follow_the_store(local_store) -> None:
    write_sources(local_store)
    # The removal arrives first while the object still exists: it must not unpublish it.
    handle_s3_event(event("item-removed.json"), Services(store=local_store))
    handle_s3_event(event("item-created.json"), Services(store=local_store))
    handle_s3_event(event("item-created.json"), Services(store=local_store))
    assert shard_items(local_store, "dataset") == {"sentinel2-alps"}
    # The item is deleted; the late created-event must not bring it back.
    local_store.delete(ALPS)
    handle_s3_event(event("item-created.json"), Services(store=local_store))
    assert shard_items(local_store, "dataset") == set()
    assert ("dataset", "sentinel2-alps") not in indexed(local_store)


def test_test_event_and_sqs_delivery(local_store) -> None:
    assert handle_s3_event(event("test-event.json"), Services(store=local_store)) == 0
    write_sources(local_store)
    assert handle_sqs_event(event("sqs-item-created.json"), Services(store=local_store)) == 1
    assert shard_items(local_store, "dataset") == {"sentinel2-alps"}


def test_s3_store_events_with_foreign_bucket_skipped(s3_store) -> None:
    write_sources(s3_store)
    # Our bucket, but the fixture keys lack the store's prefix: not ours, nothing happens.
    assert handle_s3_event(event("item-created.json", s3_store.bucket), Services(store=s3_store)) == 0
    prefixed = json.loads(json.dumps(event("item-created.json", s3_store.bucket)).replace(
        '"key": "collections/', f'"key": "{s3_store.prefix}collections/'))
    assert handle_s3_event(prefixed, Services(store=s3_store)) == 3
    assert shard_items(s3_store, "ai-model") == {"unet:flood+v2"}
    assert indexed(s3_store) == {("dataset", "sentinel2-alps"), ("ai-model", "unet:flood+v2")}


def test_replay_events_command(tmp_path) -> None:
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path / "store", fsync=False)
    write_sources(store)
    uri = store.uri

    def replay(name: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "chalicelib.cli", "replay-events", "--store", uri,
                              str(EVENTS / name)], cwd=REPO, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert replay("test-event.json") == {"routed": 0}
    assert replay("item-created.json") == {"routed": 3}
    assert shard_items(store, "ai-model") == {"unet:flood+v2"}
    store.delete(ALPS)
    assert replay("item-removed.json") == {"routed": 1}
    assert indexed(store) == {("ai-model", "unet:flood+v2")}


def test_the_catalog_entry_point_runs_only_the_catalog_function(local_store, monkeypatch) -> None:
    """``functions.catalog.handler``: Lambda's signature, either notification format, the process's services."""
    import functions.catalog
    import functions.registry
    from chalicelib import services
    from chalicelib.registry import publication
    published: list[list[str]] = []
    monkeypatch.setattr(publication, "publish_keys", lambda ctx, keys: published.append(keys))
    mixed = event("item-created.json")
    model_file = json.loads(json.dumps(mixed["Records"][0]))
    model_file["s3"]["object"]["key"] = "mlflow-artifacts/1/r/artifacts/model/MLmodel"
    mixed["Records"].append(model_file)
    services.configure(store=local_store)
    try:
        write_sources(local_store)  # published in-process already; the handlers only re-read
        assert functions.catalog.handler(mixed, None) == 3
        assert functions.catalog.handler(event("sqs-item-created.json")) == 1
        assert published == []
        assert functions.registry.handler(mixed, None) == 1
        assert published == [["mlflow-artifacts/1/r/artifacts/model/MLmodel"]]
    finally:
        services.configure()
