"""``stacflow check`` against derived data: each kind of drift is created behind the service's back,
found by ``check``, and cleared by ``stacflow reindex``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from chalicelib.stac import catalog
from chalicelib.stac.check import CheckReport, check_catalog, check_derived
from chalicelib.stac.items import normalize
from chalicelib.stac.publish import publish_paths, reindex
from chalicelib.store import ObjectStore

from tests.helpers.stac_items import make_item, random_items

ITEMS = random_items(12, seed=5)


@pytest.fixture
def published(local_store: ObjectStore, tmp_path: Path) -> ObjectStore:
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in ITEMS))
    assert not publish_paths(local_store, [tmp_path / "items.ndjson"], progress=False).rejected
    return local_store


def _problems(store: ObjectStore) -> list[str]:
    report = check_catalog(store)
    check_derived(store, report)
    return [p.problem for p in report.problems]


def _tamper_extent(store: ObjectStore) -> None:
    key = catalog.collection_key("dataset")
    doc = store.get_json(key)
    doc["extent"]["spatial"]["bbox"] = [[0, 0, 1, 1]]
    store.put_json(key, doc, notify=False)


def _ghost_in_shard(store: ObjectStore) -> None:
    key = catalog.shard_key("dataset", catalog.shard_of(ITEMS[0]["id"]))
    doc = store.get_json(key)
    doc[catalog.ITEMS_FIELD]["ghost"] = [0, 0, 1, 1, None, None]
    store.put_json(key, doc, notify=False)


def _catalogued_not_indexed(store: ObjectStore) -> None:
    # a publisher that died after the catalog update and before the index entry
    doc, summary = normalize(make_item("half-done"), "dataset", "half-done")
    store.put_json(catalog.item_key("dataset", "half-done"), doc, notify=False)
    catalog.update(store, "dataset", {"half-done": summary}, [])


def _edited_behind_the_index(store: ObjectStore) -> None:
    key = catalog.item_key("dataset", ITEMS[1]["id"])
    doc = store.get_json(key)
    doc["properties"]["title"] = "edited, event lost"
    store.put_json(key, doc, notify=False)


@pytest.mark.parametrize("drift, found", [
    (_tamper_extent, "extent differs from its items'"),
    (_ghost_in_shard, "lists 'ghost', which has no item"),
    (_catalogued_not_indexed, "not in the search index"),
    (_edited_behind_the_index, "the search index holds another version"),
])
def test_check_finds_the_drift_and_reindex_clears_it(published: ObjectStore, drift: Callable[[ObjectStore], None],
                                                     found: str) -> None:
    assert _problems(published) == []
    drift(published)
    assert found in _problems(published)
    reindex(published, progress=False)
    assert _problems(published) == []


def test_check_writes_nothing(published: ObjectStore) -> None:
    _ghost_in_shard(published)
    before = {info.key: info.etag for info in published.list("")}
    report = CheckReport()
    check_derived(published, report)
    assert {info.key: info.etag for info in published.list("")} == before
