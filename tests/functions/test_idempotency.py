"""Idempotency of the event functions: a scenario's events delivered twice each, shuffled, in batches of
any size, give the same catalog, search index, registry items and registry index as one in-order
delivery.

The scenario (STAC items published, edited and deleted; a model registered, versioned, described,
aliased, renamed, a version deleted) runs with its events recorded, not delivered. Its store is then
copied twice, before any event function ran: one copy gets the events in order, once; the other gets
every event twice, shuffled. The functions' own writes (items of model versions) raise further events,
delivered the same way until none are left.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from chalicelib import services
from chalicelib.events.base import StoreEvent
from chalicelib.events.dispatch import handle_events
from chalicelib.settings import Settings
from chalicelib.stac import catalog
from chalicelib.store import CREATED, Change, ObjectStore
from chalicelib.store.local import LocalStore
from tests.helpers.registry_world import make_world
from tests.helpers.stac_items import make_item, unrevised

DERIVED = ("catalog.json", "collections/", "stac-index/", "mlflow/registry/index/")


def _scenario(store: LocalStore, onnx: bytes) -> list[Change]:
    world = make_world(store)
    for i in range(8):
        store.put_json(catalog.item_key("dataset", f"it-{i}"), make_item(f"it-{i}", lon=i * 10.0, lat=i * 5.0))
    store.put_json(catalog.item_key("dataset", "it-2"), make_item("it-2", lon=-120.0, lat=-40.0))  # moved
    store.delete(catalog.item_key("dataset", "it-5"))
    world.upload_model(f"{world.artifacts}/model", onnx)
    world.registry.create_registered_model("m")
    for _ in range(3):
        world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.registry.update_model_version("m", "2", "the good one")
    world.registry.set_registered_model_alias("m", "champion", "2")
    world.registry.delete_model_version("m", "1")
    world.registry.rename_registered_model("m", "m2")
    return list(world.changes)


def _deliver(store: LocalStore, first: list[Change], rng: random.Random | None) -> None:
    """Deliver ``first``, then whatever the functions write, until quiet; shuffled and doubled if ``rng``."""
    pending: list[Change] = list(first)
    store.subscribe(pending.append)
    functions = services.Services(store=store, settings=Settings(store_uri=store.uri, public_url="http://svc",
                                                                 dispatch_events=False))
    try:
        for _ in range(20):
            if not pending:
                return
            todo, pending[:] = list(pending), []
            if rng is not None:
                todo = todo * 2
                rng.shuffle(todo)
            while todo:
                size = rng.randint(1, 7) if rng is not None else len(todo)
                batch, todo = todo[:size], todo[size:]
                handle_events(functions, [StoreEvent(c.event_name == CREATED, c.key, c.etag, "") for c in batch])
        raise AssertionError("the functions never went quiet")
    finally:
        store.unsubscribe(pending.append)


def _derived(store: ObjectStore) -> dict[str, Any]:
    from chalicelib.stac.index import SearchIndex
    out: dict[str, Any] = {}
    for info in store.list(""):
        if info.key.startswith(("collections/", "catalog.json", "mlflow/registry/index/")) and \
                not info.key.startswith("stac-index/"):
            out[info.key] = unrevised(store.get_json(info.key))
    snapshot = SearchIndex(store).snapshot()
    out["search index"] = sorted((t.coll_list[r], t.id_list[r], t.raw[int(r)]) for t, alive in snapshot.parts
                                 for r in alive.nonzero()[0])
    return out


@pytest.fixture(scope="module")
def onnx_bytes() -> bytes:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    return to_onnx(LogisticRegression(max_iter=300).fit(X, y), X[:1], options={"zipmap": False}).SerializeToString()


@pytest.mark.parametrize("seed", [1, 2])
def test_events_twice_and_out_of_order_give_the_same_derived_state(tmp_path: Path, onnx_bytes: bytes,
                                                                    seed: int) -> None:
    source = LocalStore(tmp_path / "a")
    try:
        changes = _scenario(source, onnx_bytes)
    finally:
        services.configure()
    assert not any(key.startswith(("catalog.json", "stac-index/")) for key in _derived(source) if key != "search index")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    in_order, shuffled = LocalStore(tmp_path / "b"), LocalStore(tmp_path / "c")
    _deliver(in_order, changes, None)
    _deliver(shuffled, changes, random.Random(seed))
    expected = _derived(in_order)
    assert len(expected["search index"]) == 7 + 2  # dataset items, and the model's live versions
    assert any(key.startswith("collections/ai-model/items/m2-v") for key in expected)
    assert _derived(shuffled) == expected
