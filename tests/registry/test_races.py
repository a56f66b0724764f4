"""Registry writes racing each other or crashing half-way, with forced interleavings.

Each test pauses one call at its k-th store write (for every k up to past its last write) and runs
the competing call to completion meanwhile, so every interleaving of the two at write granularity
is exercised, deterministically.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.registry import records as rec
from chalicelib.registry.lineage import ServiceTracking
from chalicelib.registry.service import RegistryService
from chalicelib.store import ObjectStore
from chalicelib.tracking.service import TrackingService
from tests.helpers.stores import Call, Crash, InstrumentedStore
from tests.helpers.threads import run_paused

WRITES = range(1, 9)  # more than any of the calls below makes
WRITE_VERBS = ("PUT", "DELETE")


@pytest.fixture
def paused(local_store: ObjectStore) -> Iterator[InstrumentedStore]:
    yield InstrumentedStore(local_store)


def _registry(store: ObjectStore) -> RegistryService:
    return RegistryService(store, ServiceTracking(TrackingService(store)))


def _race(paused: InstrumentedStore, k: int, thread: str, target: Callable[[], Any],
          meanwhile: Callable[[], Any]) -> tuple[Any, BaseException | None, Any, BaseException | None]:
    """``target`` on thread ``thread``, held at its k-th write while ``meanwhile`` runs to completion."""
    return run_paused(paused.pause("before", WRITE_VERBS, thread=thread, nth=k), target, thread, meanwhile)


def _refused_cleanly(error: BaseException | None, code: str) -> None:
    """The call that lost the race either succeeded or answered MLflow's ``code``."""
    if error is not None:
        assert isinstance(error, MlflowError)
        assert error.error_code == code


def _leftovers(store: ObjectStore) -> list[str]:
    """Records that outlive a deleted model (its tombstone aside)."""
    keep = (rec.MODELS,)
    return [i.key for i in store.list(rec.PREFIX) if not i.key.startswith(keep)
            and not i.key.startswith("mlflow/registry/index/")]


@pytest.mark.parametrize("k", WRITES)
def test_a_version_created_during_a_rename_is_kept(paused: InstrumentedStore, k: int) -> None:
    registry = _registry(paused)
    registry.create_registered_model("old")
    registry.create_model_version("old", "s3://b/v1")
    renamed, rename_error, created, create_error = _race(
        paused, k, "renamer", lambda: registry.rename_registered_model("old", "new"),
        lambda: registry.create_model_version("old", "s3://b/v2"))
    assert rename_error is None
    _refused_cleanly(create_error, "RESOURCE_DOES_NOT_EXIST")  # the old name was already gone
    versions = {mv.version: mv.source for mv in registry.search_model_versions("name = 'new'")[0]}
    expected = {1: "s3://b/v1"} | ({created.version: "s3://b/v2"} if created is not None else {})
    assert versions == expected  # a version the client was told exists, exists
    if created is not None:
        assert registry.get_model_version("new", created.version).source == "s3://b/v2"
    assert registry.search_model_versions("name = 'old'")[0] == []


@pytest.mark.parametrize("k", WRITES)
def test_a_version_creation_racing_a_delete_leaves_nothing(paused: InstrumentedStore, k: int) -> None:
    """The creation is paused at its k-th write while the model is deleted."""
    registry = _registry(paused)
    registry.create_registered_model("m")
    created, create_error, _, delete_error = _race(
        paused, k, "creator", lambda: registry.create_model_version("m", "s3://b/v1"),
        lambda: registry.delete_registered_model("m"))
    assert delete_error is None
    _refused_cleanly(create_error, "RESOURCE_DOES_NOT_EXIST")
    assert _leftovers(paused) == []
    assert registry.search_model_versions()[0] == []
    assert registry.search_registered_models()[0] == []
    registry.create_registered_model("m")  # the name is free again, and the new model starts afresh
    assert registry.create_model_version("m", "s3://b/new").version == 1


@pytest.mark.parametrize("k", WRITES)
def test_a_delete_racing_a_version_creation_leaves_nothing(paused: InstrumentedStore, k: int) -> None:
    """The delete is paused at its k-th write while a version is created."""
    registry = _registry(paused)
    registry.create_registered_model("m")
    registry.create_model_version("m", "s3://b/v1")
    _, delete_error, created, create_error = _race(
        paused, k, "deleter", lambda: registry.delete_registered_model("m"),
        lambda: registry.create_model_version("m", "s3://b/v2"))
    assert delete_error is None
    _refused_cleanly(create_error, "RESOURCE_DOES_NOT_EXIST")
    assert _leftovers(paused) == []
    assert registry.search_model_versions()[0] == []


@pytest.mark.parametrize("k", WRITES)
def test_concurrent_renames_to_one_name_give_one_model(paused: InstrumentedStore, k: int) -> None:
    registry = _registry(paused)
    registry.create_registered_model("a")
    registry.create_registered_model("b")
    _, first_error, _, second_error = _race(
        paused, k, "first", lambda: registry.rename_registered_model("a", "c"),
        lambda: registry.rename_registered_model("b", "c"))
    errors = [e for e in (first_error, second_error) if e is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], MlflowError)
    names = sorted(m.name for m in registry.search_registered_models()[0])
    assert names in (["a", "c"], ["b", "c"])
    holder = registry.get_registered_model("c")
    assert names == sorted({"a", "b"} - {holder.former_names[-1]} | {"c"})


@pytest.mark.parametrize("k", WRITES)
def test_a_create_racing_a_rename_away_from_the_name(paused: InstrumentedStore, k: int) -> None:
    """Creating ``a`` while ``a`` is renamed to ``b``: at most one model holds each name."""
    registry = _registry(paused)
    registry.create_registered_model("a", description="first")
    _, rename_error, created, create_error = _race(
        paused, k, "renamer", lambda: registry.rename_registered_model("a", "b"),
        lambda: registry.create_registered_model("a", description="second"))
    assert rename_error is None
    assert registry.get_registered_model("b").description == "first"
    names = sorted(m.name for m in registry.search_registered_models()[0])
    if create_error is None:
        assert names == ["a", "b"]
        assert registry.get_registered_model("a").description == "second"
    else:
        assert isinstance(create_error, MlflowError)
        assert create_error.error_code == "RESOURCE_ALREADY_EXISTS"
        assert names == ["b"]


def test_claims_left_by_crashes_do_not_lock_a_name(paused: InstrumentedStore) -> None:
    registry = _registry(paused)
    registry.create_registered_model("x")
    record_writes = [0]

    def switch(call: Call) -> bool:  # the rename's second record write: the name switch
        record_writes[0] += call.key.startswith(rec.MODELS)
        return record_writes[0] == 2
    paused.fail("before", "PUT", switch)
    with pytest.raises(Crash):
        registry.rename_registered_model("x", "y")  # announced and claimed "y", then died
    assert registry.get_registered_model("x").pending_name == "y"
    with pytest.raises(MlflowError):  # still claimed by the announced rename
        registry.create_registered_model("y")
    registry.rename_registered_model("x", "z")  # another rename replaces the announcement
    registry.create_registered_model("y")  # and the stale claim of "y" is taken over
    assert sorted(m.name for m in registry.search_registered_models()[0]) == ["y", "z"]
