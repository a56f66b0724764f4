"""Registry searches read a fixed number of index objects plus the page's records, and cap pages by size."""
from __future__ import annotations

import time

import pytest

from chalicelib.mlflowapi import pages
from chalicelib.registry.service import RegistryService
from chalicelib.store.local import LocalStore
from tests.helpers.stores import InstrumentedStore


def _registry_with(tmp_path: object, n: int) -> tuple[InstrumentedStore, RegistryService]:
    store = InstrumentedStore(LocalStore(f"{tmp_path}/store-{n}", fsync=False))  # type: ignore[arg-type]
    registry = RegistryService(store)
    for i in range(n):
        name = f"model-{i:04d}"
        registry.create_registered_model(name, [{"key": "team", "value": "eo" if i % 2 else "ml"}])
        if i < 5 or i % 100 == 0:  # a few models with versions
            registry.create_model_version(name, "s3://bucket/model")
    return store, registry


def _reads(store: InstrumentedStore, call: object) -> int:
    store.calls.clear()
    call()  # type: ignore[operator]
    return store.calls["GET"] + store.calls["LIST"] + store.calls["HEAD"]


def test_search_cost_does_not_grow_with_the_registry(tmp_path: object) -> None:
    t0 = time.perf_counter()
    small_store, small = _registry_with(tmp_path, 10)
    large_store, large = _registry_with(tmp_path, 1000)
    assert time.perf_counter() - t0 < 30
    calls = {
        "models": lambda r: r.search_registered_models(max_results=5),
        "models by tag": lambda r: r.search_registered_models("tags.team = 'eo'", 5, ["last_updated_timestamp DESC"]),
        "versions": lambda r: r.search_model_versions(max_results=5),
        "versions of one model": lambda r: r.search_model_versions("name = 'model-0000'"),
        "latest versions": lambda r: r.get_latest_versions("model-0000"),
        "model": lambda r: r.get_registered_model("model-0000"),
    }
    for label, call in calls.items():
        few, many = (_reads(s, lambda: call(r)) for s, r in ((small_store, small), (large_store, large)))
        assert many <= few, (label, few, many)  # same page, same cost: 10 or 1,000 models
        assert few <= 40, (label, few)
    page, token = large.search_registered_models("tags.team = 'eo'", 5, ["name DESC"])
    assert [m.name for m in page] == [f"model-{i:04d}" for i in (999, 997, 995, 993, 991)]
    assert token


def test_pages_are_capped_by_size_and_tokens_walk_everything(local_store: LocalStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    registry = RegistryService(local_store)
    for i in range(12):
        registry.create_registered_model(f"m{i:02d}", description="x" * 1000)
        registry.create_model_version(f"m{i:02d}", "s3://bucket/model", description="y" * 1000)
    monkeypatch.setattr(pages, "BUDGET", 3500)
    seen, token, n_pages = [], None, 0
    while True:
        page, token = registry.search_registered_models(None, 100, ["name ASC"], token)
        assert 1 <= len(page) <= 2  # each view is over 1 KB: at most 2 fit
        seen += [m.name for m in page]
        n_pages += 1
        if token is None:
            break
    assert seen == [f"m{i:02d}" for i in range(12)]
    assert n_pages >= 6
    versions, token = [], None
    while True:
        batch, token = registry.search_model_versions(None, 1000, ["name ASC"], token)
        assert 1 <= len(batch) <= 3
        versions += [(mv.name, mv.version) for mv in batch]
        if token is None:
            break
    assert versions == [(f"m{i:02d}", 1) for i in range(12)]


def test_versions_spread_over_blocks_read_back_whole(local_store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's versions live in blocks over several shards; every read merges them, a delete clears them."""
    from chalicelib.registry import index
    monkeypatch.setattr(index, "BLOCK", 4)
    registry = RegistryService(local_store)
    registry.create_registered_model("big")
    registry.create_registered_model("small")
    for _ in range(40):  # 10 blocks
        registry.create_model_version("big", "s3://bucket/model")
    registry.create_model_version("small", "s3://bucket/model")
    registry.transition_model_version_stage("big", "7", "Production")
    registry.delete_model_version("big", "40")
    versions, _ = registry.search_model_versions("name = 'big'", 1000, ["version_number ASC"])
    assert [mv.version for mv in versions] == list(range(1, 40))
    assert [(mv.current_stage, mv.version) for mv in registry.get_latest_versions("big")] == [
        ("None", 39), ("Production", 7)]
    assert len(registry.search_model_versions(None, 1000)[0]) == 40
    uid = registry.get_registered_model("big").uid
    shards = {index.shard_key(uid, b) for b in range(10)}
    assert len(shards) == 10
    assert all(uid in local_store.get_json(key)["versions"] for key in shards)
    registry.delete_registered_model("big")
    assert all(uid not in local_store.get_json(key).get("versions", {}) for key in index.all_shard_keys()
               if local_store.exists(key))
    assert [(mv.name, mv.version) for mv in registry.search_model_versions(None, 1000)[0]] == [("small", 1)]
