"""``stacflow check`` on the registry: items and index against the records; ``republish-models`` clears it."""
from __future__ import annotations

from typing import Callable

import pytest

from chalicelib import services
from chalicelib.registry import records as rec
from chalicelib.registry.index import shard_key
from chalicelib.registry.repair import check, repair
from chalicelib.registry.publication import item_key
from tests.helpers.registry_world import World


@pytest.fixture
def registered(world: World, onnx_bytes: bytes) -> World:
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("m")
    world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.deliver()
    return world


def _item_lost(w: World) -> None:
    w.store.delete(item_key("m", 2))
    w.changes.clear()  # its event lost


def _stray_item(w: World) -> None:
    item = w.store.get_json(item_key("m", 1))
    item["properties"]["mlflow:model_version"] = 7
    w.store.put_json(item_key("m", 7), item)
    w.changes.clear()


def _item_stale(w: World) -> None:
    w.registry.update_model_version("m", "1", "a description whose event was lost")
    w.changes.clear()


def _index_stale(w: World) -> None:
    uid = w.registry.get_registered_model("m").uid
    key = shard_key(uid)
    doc = w.store.get_json(key)
    doc["models"][uid]["name"] = "renamed behind the registry's back"
    w.store.put_json(key, doc)
    w.changes.clear()


@pytest.mark.parametrize("drift, found", [
    (_item_lost, "publishable but has no item"),
    (_stray_item, "a model item that no live version publishes here"),
    (_item_stale, "item differs from the records"),
    (_index_stale, "its registry index entry differs from its records"),
])
def test_check_finds_the_drift_and_republish_clears_it(registered: World, drift: Callable[[World], None],
                                                       found: str) -> None:
    ctx = services.publication_context()
    assert check(ctx) == []
    drift(registered)
    assert any(found in problem for _, problem in check(ctx))
    repair(ctx)
    assert check(ctx) == []


def test_a_deleted_version_keeping_its_item_is_found(registered: World) -> None:
    ctx = services.publication_context()
    uid = registered.registry.get_registered_model("m").uid
    record = registered.store.get_json(rec.version_key(uid, 1))
    registered.registry.delete_model_version("m", "1")
    registered.changes.clear()  # its event lost: the item stays
    assert record is not None
    # v1's item outlived it; v2's still links to it as predecessor
    assert {key for key, _ in check(ctx)} == {item_key("m", 1), item_key("m", 2)}
    repair(ctx)
    assert check(ctx) == []
