"""Collection pages and landing pages are rendered once per version and never outlive a publication."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from chalicelib.events.base import StoreEvent
from chalicelib.stac import api as stac_api
from chalicelib.stac import catalog
from chalicelib.stac.api import StacApi
from chalicelib.stac.errors import NotFoundError
from chalicelib.stac.publish import apply_item_events
from chalicelib.store import ObjectStore
from chalicelib.store.local import LocalStore
from tests.helpers.stores import InstrumentedStore
from tests.helpers.synthetic import make_item

BASE = "http://localhost/stac"


def publish(store: ObjectStore, item: dict[str, Any]) -> None:
    key = catalog.item_key(item["collection"], item["id"])
    store.put_json(key, item)
    assert apply_item_events(store, [StoreEvent(True, key, "", "")]).published == 1


def item_at(i: int, west: float, south: float) -> dict[str, Any]:
    item = make_item(i, random.Random(i), collection="dataset", prefix="page")
    east, north = west + 1, south + 1
    item["bbox"] = [west, south, east, north]
    item["geometry"] = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                            [west, north], [west, south]]]}
    return item


def uncached(root: Path) -> StacApi:
    """What a process that never served a page would answer."""
    return StacApi(LocalStore(root, fsync=False))


def test_an_unchanged_catalog_costs_one_conditional_get_per_collection(tmp_path: Path) -> None:
    publish(LocalStore(tmp_path, fsync=False), item_at(1, 10, 10))
    store = InstrumentedStore(LocalStore(tmp_path, fsync=False))
    api = StacApi(store)
    first = api.collections_json(BASE)
    store.calls.clear()
    store.log.clear()
    again = api.collections_json(BASE)
    assert again is first  # served from the cache, not rendered again
    assert store.calls == {"GET": 2}
    assert sorted(c.key for c in store.log) == [catalog.collection_key("ai-model"), catalog.collection_key("dataset")]
    assert json.loads(first) == uncached(tmp_path).collections(BASE)
    other = api.collections_json("https://example.org/stac")  # pages are per base URL
    assert json.loads(other)["links"][0]["href"] == "https://example.org/stac/collections"


def test_a_publication_is_served_by_the_next_request_of_every_process(tmp_path: Path) -> None:
    """Two processes (two StacApi over the same store): one serves pages while the other publishes."""
    serving = StacApi(LocalStore(tmp_path, fsync=False))
    empty = json.loads(serving.collection_json(BASE, "dataset"))  # nothing published: the configured empty one
    assert empty == uncached(tmp_path).collection(BASE, "dataset")
    publisher = LocalStore(tmp_path, fsync=False)
    corners: list[tuple[int, int]] = []
    for step, (west, south) in enumerate([(10, 10), (-170, -80), (170, 80)]):
        corners.append((west, south))
        publish(publisher, item_at(step, west, south))
        listed = json.loads(serving.collections_json(BASE))
        one = json.loads(serving.collection_json(BASE, "dataset"))
        truth = uncached(tmp_path)
        assert listed == truth.collections(BASE)
        assert one == truth.collection(BASE, "dataset")
        assert one["extent"]["spatial"]["bbox"][0] == [min(c[0] for c in corners), min(c[1] for c in corners),
                                                        max(c[0] + 1 for c in corners), max(c[1] + 1 for c in corners)]
    assert one != empty


def test_unknown_collections_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        StacApi(LocalStore(tmp_path, fsync=False)).collection_json(BASE, "nope")


def test_landing_page_and_conformance_are_rendered_once() -> None:
    page = stac_api.landing_page_json(BASE)
    assert stac_api.landing_page_json(BASE) is page
    assert json.loads(page) == stac_api._landing_page(BASE)
    assert json.loads(stac_api.conformance_json()) == stac_api.conformance()
    assert json.loads(stac_api.landing_page_json("https://x.org/stac"))["links"][0]["href"] == "https://x.org/stac"
