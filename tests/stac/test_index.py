"""The search index in the store: apply/compact/rebuild semantics over both backends."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.stac.index import LOG_PREFIX, MANIFEST, SearchIndex
from chalicelib.store import ObjectStore

from tests.helpers.stores import Call, InstrumentedStore
from tests.helpers.synthetic import make_items


def present(index: SearchIndex) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for table, alive in index.snapshot().parts:
        for row in range(table.n):
            if alive[row]:
                item = table.item(row)
                out[(item["collection"], item["id"])] = item
    return out


def changed(item: dict[str, Any], **props: Any) -> dict[str, Any]:
    return dict(item, properties=dict(item["properties"], **props))


def test_apply_is_visible_to_warm_and_cold_readers(store: ObjectStore) -> None:
    items = make_items(30)
    writer, reader = SearchIndex(store), SearchIndex(store)
    assert reader.snapshot().count == 0
    writer.apply(items[:20], [])
    first = reader.snapshot()
    assert first.count == 20
    writer.apply(items[20:], [("dem", items[2]["id"])] if items[2]["collection"] == "dem" else [])
    second = reader.snapshot()
    assert second.parts[0][0] is first.parts[0][0], "new items must not rebuild the base table"
    assert set(present(reader)) == set(present(SearchIndex(store)))
    assert len(present(SearchIndex(store))) == second.count


class _Clock:
    """The index's clock, moved only by the test: a PUT slowed by a loaded machine is never taken for
    one slower than ``settle / 2`` (whose entry would be written again, and be too new to compact)."""

    def __init__(self) -> None:
        self.ns = time.time_ns()

    def time_ns(self) -> int:
        return self.ns

    def time(self) -> float:
        return self.ns / 1e9

    def sleep(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


def test_compaction_merges_log_into_segments_and_loses_nothing(store: ObjectStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.stac import index
    clock = _Clock()
    monkeypatch.setattr(index, "time", clock)
    items = make_items(120)
    writer = SearchIndex(store, settle=0.05, compact_entries=4, fanout=2)
    warm = SearchIndex(store, delta_max=1000)
    for i in range(0, 120, 5):
        clock.sleep(0.001)
        writer.apply(items[i:i + 5], [])
        if i % 20 == 15:
            clock.sleep(0.06)
            assert len(present(warm)) == i + 5
    clock.sleep(0.06)
    writer.apply([], [(items[0]["collection"], items[0]["id"])])
    manifest = store.get_json(MANIFEST)
    assert manifest["segments"]
    assert max(s["level"] for s in manifest["segments"]) >= 1
    assert len(list(store.list(LOG_PREFIX))) < 4, "compacted log entries are deleted"
    base = warm.snapshot().parts[0][0]
    assert set(present(warm)) == {(it["collection"], it["id"]) for it in items[1:]}
    assert warm.snapshot().parts[0][0] is base, "a warm reader adopts compactions without reloading"
    assert set(present(SearchIndex(store))) == set(present(warm))


def test_concurrent_apply_from_20_threads(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.stac import index
    clock = _Clock()
    monkeypatch.setattr(index, "time", clock)
    items = make_items(40)
    errors: list[BaseException] = []

    def publish(chunk: list[dict[str, Any]]) -> None:
        index = SearchIndex(store, settle=1.0, compact_entries=3, fanout=2)  # one per "process"
        try:
            for item in chunk:
                index.apply([item], [])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(items[i::20],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(present(SearchIndex(store))) == 40
    clock.sleep(1.05)
    SearchIndex(store, settle=1.0, compact_entries=20).apply(make_items(1, seed=9, prefix="last"), [])
    assert len(list(store.list(LOG_PREFIX))) == 1, "everything settled is compacted (not the fresh last entry)"
    assert len(present(SearchIndex(store))) == 41


def test_replays_duplicates_and_out_of_order_converge(store: ObjectStore) -> None:
    item = make_items(1)[0]
    key = (item["collection"], item["id"])
    old, new = changed(item, platform="old"), changed(item, platform="new")
    index = SearchIndex(store)
    index.apply([new], [], version=200)
    index.apply([old], [], version=100)  # a late replay of an older observation
    index.apply([new, new], [], version=200)  # duplicates
    assert present(index)[key]["properties"]["platform"] == "new"
    index.apply([], [key], version=150)  # a delete observed before the current version
    assert key in present(index)
    index.apply([], [key], version=300)
    assert key not in present(index)
    index.apply([new], [], version=200)  # replay of the version the delete superseded
    assert key not in present(index)
    index.apply([item], [], version=300)  # same version as the delete: the later entry wins
    assert present(index)[key]["properties"]["platform"] == item["properties"]["platform"]
    index.apply([changed(item, platform="newer")], [])  # default version: now
    assert present(index)[key]["properties"]["platform"] == "newer"
    assert present(SearchIndex(store)) == present(index)


def test_bulk_add_and_optimize_match_apply(store: ObjectStore) -> None:
    items = make_items(50)
    index = SearchIndex(store, fanout=2)
    for i in range(0, 50, 10):
        index.add(items[i:i + 10], [], version=100)
    index.add([changed(items[0], platform="bulk")], [(items[1]["collection"], items[1]["id"])], version=200)
    index.add([items[1]], [], version=150)  # older than its delete: stays deleted
    index.optimize()
    assert len(store.get_json(MANIFEST)["segments"]) == 1
    found = present(SearchIndex(store))
    assert set(found) == {(it["collection"], it["id"]) for it in items} - {(items[1]["collection"], items[1]["id"])}
    assert found[(items[0]["collection"], items[0]["id"])]["properties"]["platform"] == "bulk"
    assert found == present(index)


def test_rebuild_replaces_all_or_one_collection(store: ObjectStore) -> None:
    items = make_items(60)
    index = SearchIndex(store, settle=0.05)  # clocks agree to 25 ms: older changes are replaced
    index.apply(items, [])
    warm = SearchIndex(store)
    assert len(present(warm)) == 60
    keep = [it for it in items if it["collection"] != "dem"]
    dem = [it for it in items if it["collection"] == "dem"]
    time.sleep(0.03)
    assert index.rebuild(keep + dem[:3]) == len(keep) + 3
    assert len(present(warm)) == len(keep) + 3
    time.sleep(0.03)
    assert index.rebuild(dem[5:], collection="dem") == len(dem) - 5
    want = {(it["collection"], it["id"]) for it in keep + dem[5:]}
    assert set(present(warm)) == want == set(present(SearchIndex(store)))
    late = make_items(1, seed=5, prefix="late")[0]
    index.apply([late], [])
    assert (late["collection"], late["id"]) in present(warm)
    with pytest.raises(ValueError):
        index.rebuild(keep, collection="dem")


def test_apply_rejects_items_without_id_or_collection(store: ObjectStore) -> None:
    index = SearchIndex(store)
    for bad in ({"id": "x"}, {"collection": "c"}, {"id": "", "collection": "c"}, "item"):
        with pytest.raises(ValueError):
            index.apply([bad], [])  # type: ignore[list-item]
    assert not list(store.list(LOG_PREFIX))


def test_publish_cost_does_not_grow_with_the_catalog(local_store: ObjectStore) -> None:
    counting = InstrumentedStore(local_store)
    index = SearchIndex(counting, settle=0.05, compact_entries=8)
    costs = {}
    items = make_items(5000)
    done = 0
    for size in (500, 5000):
        for i in range(done, size, 250):
            index.apply(items[i:i + 250], [])
        done = size
        time.sleep(0.06)
        index.apply(make_items(1, seed=size, prefix="flush"), [])  # settle the log
        counting.calls.clear()
        started = time.perf_counter()
        for k in range(5):
            index.apply(make_items(1, seed=size + k + 1, prefix=f"one{size}"), [])
        costs[size] = (counting.total / 5, (time.perf_counter() - started) / 5)
    assert costs[5000][0] == costs[500][0] == 3  # PUT + GET manifest + LIST
    assert costs[5000][1] < max(0.05, 5 * costs[500][1])


@pytest.mark.parametrize("delta_max", [1000, 3])
def test_updates_and_deletes_are_searchable_before_and_after_folding(store: ObjectStore, delta_max: int) -> None:
    from chalicelib.stac import search
    items = make_items(40)
    writer = SearchIndex(store)
    writer.apply(items, [])
    reader = SearchIndex(store, delta_max=delta_max)
    base = reader.snapshot().parts[0][0]
    moved = [changed(it, platform="moved") for it in items[:6]]
    for it in moved:
        writer.apply([it], [])
    writer.apply([], [(items[6]["collection"], items[6]["id"])])

    def find(**params: str) -> list[str]:
        req = search.parse_get({k: [v] for k, v in params.items()} | {"limit": ["100"]})
        page = search.execute(reader.snapshot(), req, known_collections={it["collection"] for it in items})
        return sorted(it["id"] for it in page.items)

    assert find(filter="platform = 'moved'") == sorted(it["id"] for it in moved)
    assert items[6]["id"] not in find()
    assert find(filter=f"platform = '{items[0]['properties']['platform']}' AND id = '{items[0]['id']}'") == []
    assert reader.snapshot().count == 39
    folded = reader.snapshot().parts[0][0] is not base
    assert folded == (delta_max == 3)


def test_rebuild_keeps_changes_newer_than_its_start(store: ObjectStore) -> None:
    """Changes observed after the rebuild's reads began stay, whether still in the log or already merged;
    older ones (a stale entry of an item the store lost) are replaced by what the rebuild read."""
    items = make_items(12)
    index = SearchIndex(store, settle=0.05, compact_entries=3, fanout=2)
    warm = SearchIndex(store)
    index.apply(items[:10], [])
    time.sleep(0.03)  # older than the clock skew (settle / 2)
    started = time.time_ns()  # the rebuild's reads begin; it reads items[:10] but items[5] is gone
    as_read = [it for i, it in enumerate(items[:10]) if i != 5]
    index.apply([items[10]], [])  # published meanwhile
    index.apply([], [(items[0]["collection"], items[0]["id"])])  # deleted after it was read
    present(warm)
    time.sleep(0.06)
    index.apply([items[11]], [])  # compacts the entries above into a segment
    assert store.get_json(MANIFEST)["floor"] > ""
    index.rebuild(as_read, version=started)
    want = {(it["collection"], it["id"]) for it in items[1:12] if it is not items[5]}
    assert set(present(SearchIndex(store))) == want == set(present(warm))


def test_apply_gives_up_on_a_store_too_slow_to_settle(local_store: ObjectStore) -> None:
    """Each log write is slower than settle / 2, so it is written again: within a bounded time, then an error."""
    from chalicelib.store.contention import Backoff, Contention
    slow, fast = InstrumentedStore(local_store), threading.Event()

    def slow_log(when: str, call: Call) -> None:  # every PUT of a log entry takes 30 ms until ``fast``
        if when == "before" and call.verb == "PUT" and call.key.startswith(LOG_PREFIX) and not fast.is_set():
            time.sleep(0.03)
    slow.hooks.append(slow_log)
    index = SearchIndex(slow, settle=0.02, backoff=Backoff(first=0.001, cap=0.01, budget=0.5))
    outcome: list[BaseException] = []

    def publish() -> None:
        try:
            index.apply(make_items(1), [])
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    thread.join(5)
    fast.set()  # lets a spinning writer finish
    assert not thread.is_alive(), "apply() kept retrying"
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], Contention), outcome
    assert "search index log entry" in str(outcome[0])


def test_a_reader_remembers_only_log_keys_past_the_floor(store: ObjectStore) -> None:
    items = make_items(24)
    writer = SearchIndex(store, settle=0.4, compact_entries=2, fanout=2)
    reader = SearchIndex(store)
    base = reader.snapshot().parts[0][0]
    for i, item in enumerate(items):
        writer.apply([item], [])
        reader.snapshot()
        if i % 8 == 7:
            time.sleep(0.45)  # past settle even on a loaded machine
    assert len(present(reader)) == len(items)
    assert reader.snapshot().parts[0][0] is base, "compactions are still adopted without reloading"
    floor = store.get_json(MANIFEST)["floor"]
    remembered = reader._seen  # white box: the set that used to grow with every log entry ever read
    assert floor
    assert all(key > floor for key in remembered)
    assert len(remembered) <= len(list(store.list(LOG_PREFIX)))


# -- segment format 2: lazily read, compressed; version-1 segments still served ------------------------
V1 = Path(__file__).parent / "data" / "index-v1"  # written by commit 03ff5dc (make_items(40, seed=7))


def _load_v1(store: ObjectStore) -> dict[tuple[str, str], dict[str, Any]]:
    for path in sorted(V1.rglob("*")):
        if path.is_file():
            store.put("stac-index/" + path.relative_to(V1).as_posix(), path.read_bytes())
    items = make_items(40, seed=7)
    return {(it["collection"], it["id"]): it for i, it in enumerate(items) if i != 3}


def _without_links(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "links"}


def test_an_index_written_by_version_1_is_served_and_migrated_by_the_next_writes(store: ObjectStore) -> None:
    expected = _load_v1(store)
    assert all(s["key"].endswith(".npz") and "core" not in s for s in store.get_json(MANIFEST)["segments"])
    served = present(SearchIndex(store))
    assert {k: _without_links(v) for k, v in served.items()} == {k: _without_links(v) for k, v in expected.items()}
    more = make_items(10, seed=8, prefix="more")
    writer = SearchIndex(store)
    writer.add(more, [], compact=False)
    writer.optimize()  # a merge rewrites the version-1 rows in format 2
    manifest = store.get_json(MANIFEST)
    assert [s["key"].endswith(".seg") and "core" in s for s in manifest["segments"]] == [True]
    expected.update({(it["collection"], it["id"]): it for it in more})
    assert {k: _without_links(v) for k, v in present(SearchIndex(store)).items()} == \
        {k: _without_links(v) for k, v in expected.items()}


def test_reindex_migrates_a_version_1_index(store: ObjectStore) -> None:
    expected = _load_v1(store)
    SearchIndex(store).rebuild(list(expected.values()))
    manifest = store.get_json(MANIFEST)
    assert all(s["key"].endswith(".seg") and "core" in s for s in manifest["segments"])
    assert set(present(SearchIndex(store))) == set(expected)


def test_a_cold_reader_reads_the_core_then_only_the_bodies_it_returns(store: ObjectStore) -> None:
    items = make_items(6000)
    writer = SearchIndex(store)
    writer.add(items, [], compact=False)
    seg = store.get_json(MANIFEST)["segments"][0]
    size = store.head(seg["key"]).size
    counted = InstrumentedStore(store)
    reader = SearchIndex(counted)
    before = store.meter.usage()
    snap = reader.snapshot()
    assert snap.count == 6000
    assert [c.verb for c in counted.log if c.key == seg["key"]] == ["GET"], "one ranged GET of the segment"
    read = (store.meter.usage() - before).bytes_read
    assert seg["core"] < read < seg["core"] + 1000, "its core, and the manifest"
    assert read < size / 2
    table = snap.parts[0][0]
    before = store.meter.usage()
    got = {table.item(r)["id"]: table.item(r) for r in [0, 1, 2, 5000]}
    fetched = (store.meter.usage() - before).bytes_read
    assert 0 < fetched < size / 4, "bodies are read in chunks, for the rows asked for"
    by_id = {it["id"]: it for it in items}
    assert all(_without_links(v) == _without_links(by_id[k]) for k, v in got.items())


def test_a_reader_reloads_before_a_segment_it_reads_lazily_is_retired(store: ObjectStore) -> None:
    items = make_items(1200)
    writer = SearchIndex(store, grace=0.0)
    writer.add(items[:600], [], compact=False)
    writer.add(items[600:], [], compact=False)
    reader = SearchIndex(store)
    before = reader.snapshot()
    old = {s["key"] for s in store.get_json(MANIFEST)["segments"]}
    writer.optimize()  # retires both segments; grace 0: deleted at once
    assert not any(store.exists(key) for key in old)
    after = reader.snapshot()
    assert after.parts[0][0] is not before.parts[0][0], "tables reading retired objects are replaced"
    assert {k: _without_links(v) for k, v in present(reader).items()} == \
        {(it["collection"], it["id"]): _without_links(it) for it in items}
