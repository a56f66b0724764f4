"""Crashes half-way through registry writes, lost events, and ``stacflow republish-models``."""
from __future__ import annotations

from typing import Iterator

import pytest

from chalicelib import services
from chalicelib.registry import records as rec
from chalicelib.store import ObjectStore
from tests.helpers.registry_world import World, make_world
from tests.helpers.stores import Crash, InstrumentedStore


@pytest.fixture
def crashy(local_store: ObjectStore) -> Iterator[World]:
    yield make_world(InstrumentedStore(local_store))
    services.configure()


def _crash_before_marker(world: World) -> None:
    assert isinstance(world.store, InstrumentedStore)
    world.store.fail("before", "PUT", lambda call: call.key.startswith(rec.SOURCES))
    with pytest.raises(Crash):
        world.registry.create_model_version("m", f"runs:/{world.run_id}/model")


def test_a_crash_between_version_and_marker_heals_on_the_version_event(crashy: World, onnx_bytes: bytes) -> None:
    crashy.registry.create_registered_model("m")
    _crash_before_marker(crashy)  # the version record is written, its source marker is not
    crashy.deliver()  # the version record's event (S3 sends it whatever became of the writer)
    assert crashy.item("m", 1) is None  # pending: no files yet
    crashy.upload_model(f"{crashy.artifacts}/model", onnx_bytes)
    crashy.deliver()  # the files' events find the version through the marker the event wrote
    assert crashy.item("m", 1) is not None


def test_republish_models_repairs_crashes_whose_events_were_lost(crashy: World, onnx_bytes: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.cli import main
    assert isinstance(crashy.store, InstrumentedStore)
    run_id, artifacts = crashy.new_run()
    crashy.upload_model(f"{artifacts}/model", onnx_bytes)
    crashy.registry.create_registered_model("gone")
    crashy.registry.create_model_version("gone", f"runs:/{run_id}/model")
    crashy.deliver()
    assert crashy.item("gone", 1) is not None
    crashy.store.fail("before", "DELETE", lambda call: call.key.startswith(rec.VERSIONS))
    with pytest.raises(Crash):
        crashy.registry.delete_registered_model("gone")  # tombstoned, versions not yet removed
    crashy.registry.create_registered_model("m")
    _crash_before_marker(crashy)
    crashy.upload_model(f"{crashy.artifacts}/model", onnx_bytes)
    crashy.changes.clear()  # every event lost
    assert crashy.item("m", 1) is None
    assert crashy.item("gone", 1) is not None

    monkeypatch.setenv("STACFLOW_STORE", crashy.store.uri)  # the command sets it: restored afterwards
    assert main(["republish-models", "--store", crashy.store.uri]) == 0
    assert crashy.item("m", 1) is not None
    assert crashy.item("gone", 1) is None
    uid = crashy.registry.get_registered_model("m").uid
    assert [i.key for i in crashy.store.list(rec.VERSIONS)] == [rec.version_key(uid, 1)]
    assert [m.name for m in crashy.registry.search_registered_models()[0]] == ["m"]


def test_renames_whose_events_were_lost_are_repaired(crashy: World, onnx_bytes: bytes) -> None:
    from chalicelib.registry.repair import repair
    crashy.upload_model(f"{crashy.artifacts}/model", onnx_bytes)
    crashy.registry.create_registered_model("r")
    crashy.registry.create_model_version("r", f"runs:/{crashy.run_id}/model")
    crashy.deliver()
    names = ["r"] + [f"r{i}" for i in range(10)]  # more renames than a model remembers former names
    for old, new in zip(names, names[1:]):
        crashy.registry.rename_registered_model(old, new)
    crashy.changes.clear()  # events lost: r-v1 still published, r9-v1 not yet
    assert crashy.item("r", 1) is not None
    assert crashy.item("r9", 1) is None
    report = repair(crashy.functions().publication_context())
    assert crashy.item("r", 1) is None
    assert crashy.item("r9", 1) is not None
    assert report["published"] == 1
    assert report["stray_items"] == 1
    crashy.changes.clear()
    assert repair(crashy.functions().publication_context()).get("published", 0) == 0  # idempotent: nothing left to do
