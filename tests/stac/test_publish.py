"""Publishing: events, parallel writers, bulk publish and reindex converge on the store's items."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from stac_offline import validate_object

from chalicelib import services
from chalicelib.stac import catalog
from chalicelib.stac.items import normalize
from chalicelib.stac.index import LOG_PREFIX, SearchIndex
from chalicelib.stac.publish import publish_paths, reindex
from chalicelib.store import InvalidKey, ObjectStore
from chalicelib.store.local import LocalStore
from tests.helpers.paths import REPO
from tests.helpers.stac_items import indexed, make_item, random_items, reachable, unrevised
from tests.helpers.threads import together


def catalogued(store: ObjectStore) -> set[tuple[str, str]]:
    out = set()
    for info in store.list("collections/"):
        if "/shards/" in info.key:
            cid = info.key.split("/")[1]
            out |= {(cid, iid) for iid in store.get_json(info.key)[catalog.ITEMS_FIELD]}
    return out


def tree_is_valid(store: ObjectStore) -> None:
    for info in store.list("collections/"):
        assert validate_object(store.get_json(info.key)) == [], info.key
    assert validate_object(store.get_json("catalog.json")) == []


@pytest.fixture
def wired(local_store) -> Iterator[ObjectStore]:
    """The local store as the service runs it: each write dispatches its event in-process."""
    services.configure(store=local_store)
    yield local_store
    services.configure()


def test_store_put_publishes_in_process(wired) -> None:
    wired.put_json("collections/dataset/items/p1.json", make_item("p1", collection=None))
    assert catalogued(wired) == {("dataset", "p1")} == indexed(wired)
    stored = wired.get_json("collections/dataset/items/p1.json")
    assert stored["collection"] == "dataset"
    before = {i.key: i.etag for i in wired.list("collections/")}
    wired.put_json("collections/dataset/items/p1.json", stored)  # same content: derived pages untouched
    assert {i.key: i.etag for i in wired.list("collections/") if i.key != "collections/dataset/items/p1.json"} == {
        k: v for k, v in before.items() if k != "collections/dataset/items/p1.json"}
    wired.delete("collections/dataset/items/p1.json")
    assert catalogued(wired) == set() == indexed(wired)


def test_delete_then_identical_reupload_is_searchable(wired) -> None:
    """The store's order wins, not the item's ``updated``: the re-upload is newer than the delete."""
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac.publish import apply_item_events
    key = catalog.item_key("dataset", "again")
    item = make_item("again", updated="2020-01-01T00:00:00Z")
    wired.put_json(key, item)
    wired.delete(key)
    assert indexed(wired) == set() == catalogued(wired)
    wired.put_json(key, item)
    assert indexed(wired) == {("dataset", "again")} == catalogued(wired)
    # The delete's event delivered again, late: the store still holds the item.
    apply_item_events(wired, [StoreEvent(False, key, "", "")])
    assert indexed(wired) == {("dataset", "again")} == catalogued(wired)
    wired.delete(key)
    apply_item_events(wired, [StoreEvent(True, key, "", "")])  # a stale create event: the item is gone
    assert indexed(wired) == set() == catalogued(wired)


def test_fifty_parallel_publishers_lose_nothing(wired) -> None:
    items = random_items(50)

    def publish(item: dict[str, Any]) -> None:
        wired.put_json(catalog.item_key("dataset", item["id"]), item)

    assert together(publish, [(item,) for item in items]) == []
    expected = {("dataset", i["id"]) for i in items}
    assert catalogued(wired) == expected
    assert indexed(wired) == expected
    coll = wired.get_json(catalog.collection_key("dataset"))
    assert reachable(wired) == {i["id"] for i in items}
    lons = [i["bbox"][0] for i in items]
    assert coll["extent"]["spatial"]["bbox"][0][0] == min(lons)
    tree_is_valid(wired)


def test_one_event_batch_is_one_index_write(local_store) -> None:
    from chalicelib.events.base import StoreEvent
    from chalicelib.events.dispatch import handle_events
    from chalicelib.services import Services
    items = random_items(120)
    for item in items:
        local_store.put_json(catalog.item_key("dataset", item["id"]), item)
    handle_events(Services(store=local_store),
                  [StoreEvent(True, catalog.item_key("dataset", i["id"]), "", "") for i in items])
    assert len(list(local_store.list(LOG_PREFIX))) == 1
    assert len(catalogued(local_store)) == 120


def _write_inputs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    for item in random_items(30):
        (folder / f"{item['id']}.json").write_text(json.dumps(item))
    (folder / "bad.json").write_text(json.dumps(make_item("no-coll", collection=None)))
    lines = [json.dumps(i) for i in random_items(20, "ai-model", seed=5)]
    lines.insert(3, "{not json")
    lines.append(json.dumps(make_item("wrong-time", dt="soon")))
    (tmp_path / "models.ndjson").write_text("\n".join(lines) + "\n")
    single = tmp_path / "one.json"
    single.write_text(json.dumps(make_item("single", collection="ai-model")))
    return [tmp_path / "in", tmp_path / "models.ndjson", single]


def test_publish_paths_reports_and_publishes(local_store, tmp_path) -> None:
    report = publish_paths(local_store, _write_inputs(tmp_path), progress=False)
    assert report.published == 51
    reasons = {r.source.rsplit("/", 1)[-1]: r.reason for r in report.rejected}
    assert set(reasons) == {"bad.json", "models.ndjson:4", "models.ndjson:22"}
    assert "no collection" in reasons["bad.json"]
    assert "not JSON" in reasons["models.ndjson:4"]
    assert "RFC 3339" in reasons["models.ndjson:22"]
    assert report.as_dict()["rejected"] == 3
    assert len(catalogued(local_store)) == 51 == len(indexed(local_store))
    tree_is_valid(local_store)


def test_bulk_publish_writes_without_events_into_one_segment(wired, tmp_path) -> None:
    report = publish_paths(wired, _write_inputs(tmp_path), progress=False)
    assert report.published == 51
    assert not list(wired.list(LOG_PREFIX)), "no item write went through the event path"
    assert len(wired.get_json("stac-index/manifest.json")["segments"]) == 1
    assert len(catalogued(wired)) == 51 == len(indexed(wired))


def test_reindex_restores_derived_data(local_store, tmp_path) -> None:
    publish_paths(local_store, _write_inputs(tmp_path), progress=False)
    tree = {i.key: unrevised(local_store.get_json(i.key)) for i in local_store.list("collections/")}
    before = indexed(local_store)
    for info in list(local_store.list("collections/")):
        if "/items/" not in info.key:
            local_store.delete(info.key)
    for info in list(local_store.list("stac-index/")):
        local_store.delete(info.key)
    local_store.put(catalog.item_key("dataset", "junk"), b"[]")
    report = reindex(local_store, progress=False)
    assert report.published == 51
    assert [r.source for r in report.rejected] == [catalog.item_key("dataset", "junk")]
    assert {i.key: unrevised(local_store.get_json(i.key)) for i in local_store.list("collections/")} == tree
    assert indexed(local_store) == before


def test_cli_publish_and_reindex(tmp_path) -> None:
    uri = (tmp_path / "store").as_uri()

    def run(command: str, *paths: Path | str) -> tuple[int, dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "chalicelib.cli", command, "--store", uri, "-q", *map(str, paths)],
                             cwd=REPO, capture_output=True, text=True)
        return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])

    code, report = run("publish", *_write_inputs(tmp_path))
    assert code == 1
    assert report["published"] == 51
    assert report["rejected"] == 3
    code, report = run("publish", "--collection", "ai-model", tmp_path / "in" / "nested" / "bad.json")
    assert code == 0
    assert report["published"] == 1
    code, report = run("reindex")
    assert code == 0
    assert report["published"] == 52


def test_bulk_publish_rejects_a_bad_item_and_goes_on(tmp_path) -> None:
    """Issue 7: an id ending in a newline passed validation, then its write aborted ``stacflow publish``
    half-way, leaving the items already written unindexed."""
    items = [make_item(f"ok-{i}", collection="dataset") for i in range(6)]
    items[2]["id"] = "bad-id\n"
    lines = [json.dumps(i) for i in items] + ['{"type": "Feature", "properties": ' + "[" * 5000 + "]" * 5000 + "}"]
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(lines))
    uri = (tmp_path / "store").as_uri()
    out = subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", uri, "-q", str(source)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-1000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["published"] == 5
    assert report["rejected"] == 2
    assert {r["source"].rsplit(":", 1)[-1] for r in report["rejections"]} == {"3", "7"}
    store = LocalStore(tmp_path / "store", fsync=False)
    assert indexed(store) == {("dataset", f"ok-{i}") for i in (0, 1, 3, 4, 5)} == catalogued(store)


class RefusingStore(LocalStore):
    """A store that refuses one key, as S3 or a filesystem refuse some names."""

    def __init__(self, root: Path, refused: str) -> None:
        super().__init__(root, fsync=False)
        self.refused = refused

    def _checked(self, key: str) -> str:  # every access, single and bulk writes alike
        if key == self.refused:
            raise InvalidKey(f"invalid object key: {key!r}")
        return super()._checked(key)


@pytest.mark.parametrize("workers", [0, 2])
def test_bulk_publish_records_an_item_the_store_refuses(tmp_path, monkeypatch, workers: int) -> None:
    """Written in this process or by the parsing workers (their copy of the store refuses it too)."""
    from chalicelib.stac import sources
    monkeypatch.setattr(sources, "workers_for", lambda paths: workers)
    store = RefusingStore(tmp_path / "store", catalog.item_key("dataset", "ok-1"))
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(make_item(f"ok-{i}", collection="dataset")) for i in range(4)))
    report = publish_paths(store, [source], progress=False)
    assert report.published == 3
    assert [(r.source, "cannot be stored" in r.reason) for r in report.rejected] == [(f"{source}:2", True)]
    assert indexed(store) == {("dataset", f"ok-{i}") for i in (0, 2, 3)} == catalogued(store)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bulk_load_of_items_turned_public_drops_their_private_copies_and_no_other(tmp_path, monkeypatch,
                                                                                    workers: int) -> None:
    """Items published private, then loaded again, some public: the private copies of those (and only
    those: of the collection they are in) go, the static catalog links them, search finds them public."""
    from chalicelib.stac import sources
    monkeypatch.setattr(sources, "workers_for", lambda paths: workers)
    store = LocalStore(tmp_path / "store", fsync=False)
    secret = {"stacflow:project": "group/secret", "stacflow:visibility": "private"}

    def load(name: str, items: list[dict[str, Any]]) -> None:
        source = tmp_path / name
        source.write_text("\n".join(json.dumps(item) for item in items) + "\n")
        assert publish_paths(store, [source], progress=False).published == len(items)

    def item(i: int, cid: str, private: bool) -> dict[str, Any]:
        out = make_item(f"p-{i}", collection=cid)
        if private:
            out["properties"].update(secret)
        return out

    load("first.ndjson", [item(i, cid, True) for i in range(4) for cid in ("dataset", "ai-model")])
    # p-0 and p-1 of "dataset" turn public; "ai-model"'s namesakes stay private.
    load("second.ndjson", [item(0, "dataset", False), item(1, "dataset", False), item(1, "ai-model", True)])
    assert sorted(i.key for i in store.list("private/")) == sorted(
        [catalog.item_key("dataset", f"p-{i}", private=True) for i in (2, 3)]
        + [catalog.item_key("ai-model", f"p-{i}", private=True) for i in range(4)])
    assert catalogued(store) == {("dataset", "p-0"), ("dataset", "p-1")}
    public = found(store, collections=["dataset"], ids=["p-0", "p-1"])
    assert sorted(public) == [("dataset", "p-0"), ("dataset", "p-1")]
    assert [found["properties"].get("stacflow:visibility") for found in public.values()] == [None, None]


class RacingStore(LocalStore):
    """Another writer replaces (or deletes) the item just after this worker's first read of it."""

    def __init__(self, root: Path, key: str, replacement: bytes | None) -> None:
        super().__init__(root, fsync=False)
        self.key, self.replacement, self.raced = key, replacement, False

    def get(self, key: str, *, if_none_match: str | None = None) -> Any:
        obj = super().get(key, if_none_match=if_none_match)
        if key == self.key and not self.raced:
            self.raced = True
            if self.replacement is None:
                self.delete(key)
            else:
                self.put(key, self.replacement)
        return obj


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_write_racing_the_event_still_converges(tmp_path, change: str, normalized: bool) -> None:
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac.publish import apply_item_events
    key = catalog.item_key("dataset", "raced")
    v2 = json.dumps(make_item("raced", lon=100, lat=-5)).encode() if change == "replaced" else None
    store = RacingStore(tmp_path / "store", key, v2)
    v1 = make_item("raced", lon=10, lat=5)
    store.put_json(key, normalize(v1, "dataset")[0] if normalized else v1)
    apply_item_events(store, [StoreEvent(True, key, "", "")])  # the racing write's own event never comes
    coll = store.get_json(catalog.collection_key("dataset"))
    if change == "replaced":
        assert coll["extent"]["spatial"]["bbox"] == [[100, -5, 100, -5]]
        assert indexed(store) == {("dataset", "raced")}
        assert SearchIndex(store).snapshot().count == 1
    else:
        assert reachable(store) == set()
        assert indexed(store) == set()


@pytest.mark.slow
def test_bulk_publish_of_100k_items_is_practical(local_store, tmp_path) -> None:
    import time
    source = tmp_path / "bulk.ndjson"
    with source.open("w") as fh:
        for cid, n in (("dataset", 70_000), ("ai-model", 30_000)):
            for item in random_items(n, cid, seed=len(cid), prefix=cid):
                fh.write(json.dumps(item) + "\n")
    started = time.perf_counter()
    report = publish_paths(local_store, [source], progress=False)
    elapsed = time.perf_counter() - started
    assert report.published == 100_000
    assert not report.rejected
    assert elapsed < 120, f"bulk publish took {elapsed:.0f} s"
    for cid, n in (("dataset", 70_000), ("ai-model", 30_000)):
        coll = local_store.get_json(catalog.collection_key(cid))
        assert len(reachable(local_store, cid)) == n
        shards = [l for l in coll["links"] if l["rel"] == "child"]
        assert len(shards) == 256  # bounded pages, each ~n/256 items
    assert SearchIndex(local_store).snapshot().count == 100_000


def test_a_publish_during_reindex_stays_catalogued_and_searchable(wired) -> None:
    """Reindex is held after listing the items; meanwhile one item is published, one moved, one deleted."""
    from tests.helpers.stores import InstrumentedStore
    items = random_items(30)
    for item in items:
        wired.put_json(catalog.item_key("dataset", item["id"]), item)
    warm = SearchIndex(wired)
    assert len(present_ids(warm)) == 30
    held = InstrumentedStore(wired)
    first_read = held.pause("before", "GET", lambda call: call.key.startswith(catalog.items_prefix("dataset")))
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            reindex(held, collection="dataset", progress=False)
        except BaseException as err:  # surfaced below
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert first_read.reached.wait(10), "reindex never read an item"
    late = make_item("late", lon=-150, lat=-60)
    wired.put_json(catalog.item_key("dataset", "late"), late)
    moved = dict(items[1], bbox=[150, 60, 150, 60], geometry={"type": "Point", "coordinates": [150, 60]})
    wired.put_json(catalog.item_key("dataset", moved["id"]), moved)
    wired.delete(catalog.item_key("dataset", items[2]["id"]))
    first_read.release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert outcome == []

    want = {item["id"] for item in items if item is not items[2]} | {"late"}
    assert indexed(wired) == {("dataset", iid) for iid in want}
    assert {iid for _, iid in present_ids(warm)} == want
    assert reachable(wired) == want == {iid for _, iid in catalogued(wired)}
    extent = catalog.merge(normalize(wired.get_json(catalog.item_key("dataset", iid)), "dataset")[1] for iid in want)
    assert wired.get_json(catalog.collection_key("dataset"))["extent"]["spatial"]["bbox"] == [extent[:4]]
    shard = wired.get_json(catalog.shard_key("dataset", catalog.shard_of(moved["id"])))
    assert shard[catalog.ITEMS_FIELD][moved["id"]][:4] == [150, 60, 150, 60]
    tree_is_valid(wired)


def present_ids(index: SearchIndex) -> set[tuple[str, str]]:
    out = set()
    for table, alive in index.snapshot().parts:
        out |= {(table.coll_list[row], table.id_list[row]) for row in range(table.n) if alive[row]}
    return out


def found(store: ObjectStore, **query: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The items a search finds, as the index serves them, by (collection, id)."""
    from chalicelib.stac import search
    page = search.execute(SearchIndex(store).snapshot(), search.parse_post({"limit": search.MAX_LIMIT, **query}),
                          known_collections=catalog.config().collection_ids)
    return {(item["collection"], item["id"]): item for item in page.items}


@pytest.mark.parametrize("workers", [0, 2])
def test_bulk_publish_in_overlapping_batches_ends_where_publishing_one_by_one_does(tmp_path, monkeypatch,
                                                                                    workers: int) -> None:
    """Batches flushed while the next is parsed (several, with an item repeated across them, its extent
    changed), public and private items, shards written several times during the load (by the worker
    processes, which also write the items, or in this process): the same item files, catalog pages and
    search results as the event path, and ``stacflow check`` finds nothing."""
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac import publish as publish_module
    from chalicelib.stac import sources
    from chalicelib.stac.check import check_catalog, check_derived
    from chalicelib.stac.publish import apply_item_events
    items = [make_item(f"it-{i}", collection="dataset" if i % 3 else "ai-model") for i in range(40)]
    for item in items[::4]:
        item["properties"].update({"stacflow:project": "group/secret", "stacflow:visibility": "private"})
    items.append(dict(items[5], properties=dict(items[5]["properties"], title="second version",
                                                datetime="2030-01-01T00:00:00Z")))
    # Next to its first copy: in another task of the same batch (its part's rows must win).
    items.insert(35, dict(items[33], properties=dict(items[33]["properties"], title="second version")))
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    monkeypatch.setattr(publish_module, "BATCH", 7)
    monkeypatch.setattr(sources, "TASK_BYTES", 600)  # an item a task: batches of several, each with its index rows
    monkeypatch.setattr(publish_module, "LISTING_FLUSH", 10)  # shards written during the load and at its end
    monkeypatch.setattr(sources, "workers_for", lambda paths: workers)
    bulk = LocalStore(tmp_path / "bulk", fsync=False)
    # A copy repeated within one batch is written once.
    assert len(items) - 1 <= publish_paths(bulk, [source], progress=False).published <= len(items)
    single = LocalStore(tmp_path / "single", fsync=False)
    for item in items:
        published, _ = normalize(item, item["collection"])
        key = catalog.stored_item_key(published)
        single.put_json(key, item)
        assert apply_item_events(single, [StoreEvent(True, key, "", "")]).published == 1

    def tree(store: ObjectStore) -> dict[str, Any]:
        return {i.key: unrevised(store.get_json(i.key)) for prefix in ("collections/", "private/", "catalog.json")
                for i in store.list(prefix)}

    assert tree(bulk) == tree(single)
    assert any(key.startswith("private/") for key in tree(bulk))
    assert indexed(bulk) == indexed(single) == {(it["collection"], it["id"]) for it in items}
    assert found(bulk) == found(single)
    assert found(bulk)["ai-model", "it-33"]["properties"]["title"] == "second version"
    report = check_catalog(bulk)
    check_derived(bulk, report)
    assert report.problems == []
    tree_is_valid(bulk)


def test_a_bulk_load_beyond_merge_rows_is_packed_into_bounded_segments_and_stays_searchable(tmp_path, monkeypatch) -> None:
    """Memory: a load larger than MERGE_ROWS is never merged in one go (a merge holds all its rows):
    its batches' segments are packed into segments of at most SEGMENT_ROWS rows, a group at a time."""
    from chalicelib.stac import index as index_module
    from chalicelib.stac import publish as publish_module
    from chalicelib.stac import sources
    monkeypatch.setattr(publish_module, "BATCH", 5)
    monkeypatch.setattr(publish_module, "MERGE_ROWS", 12)
    monkeypatch.setattr(index_module, "SEGMENT_ROWS", 10)
    monkeypatch.setattr(sources, "TASK_BYTES", 2000)
    store = LocalStore(tmp_path / "store", fsync=False)
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(make_item(f"m-{i}", collection="dataset")) for i in range(23)) + "\n")
    assert publish_paths(store, [source], progress=False).published == 23
    segments = store.get_json("stac-index/manifest.json")["segments"]
    per_task = [len(sources.parse_task(task, None).items) for task in sources.tasks([source])]
    assert len(per_task) > 3
    counts = [seg["count"] for seg in segments]
    assert max(counts) <= 10
    assert len(counts) < len(per_task)  # packed
    wanted = {("dataset", f"m-{i}") for i in range(23)}
    assert indexed(store) == wanted
    SearchIndex(store).optimize()
    assert len(store.get_json("stac-index/manifest.json")["segments"]) == 1
    assert indexed(store) == wanted


def test_parsing_in_worker_processes_publishes_what_parsing_in_process_does(tmp_path, monkeypatch) -> None:
    """NDJSON cut into many small tasks (a line longer than a task included, an item repeated in a
    later task, bad lines on both sides of a cut), parsed by two forked workers: the same store,
    search results and rejections (with their line numbers) as parsing in this process."""
    from chalicelib.stac import sources
    items = [make_item(f"w-{i}", collection="dataset" if i % 2 else "ai-model") for i in range(60)]
    items[7]["properties"]["description"] = "long " * 400  # ~2 kB: longer than a task
    items[50] = dict(items[3], properties=dict(items[3]["properties"], title="the later copy"))
    lines = [json.dumps(item) for item in items]
    lines[20:20] = ["{not json", ""]
    lines.insert(41, json.dumps(make_item("bad-time", dt="soon")))
    inputs = _write_inputs(tmp_path) + [tmp_path / "many.ndjson"]
    inputs[-1].write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(sources, "TASK_BYTES", 1500)
    monkeypatch.setattr(sources, "TASK_FILES", 7)
    assert len(list(sources.tasks([inputs[-1]]))) > 10

    def run(workers: int) -> tuple[LocalStore, list[tuple[str, str]]]:
        monkeypatch.setattr(sources, "workers_for", lambda paths: workers)
        store = LocalStore(tmp_path / f"store-{workers}", fsync=False)
        report = publish_paths(store, inputs, progress=False)
        assert report.published == 51 + 59
        return store, sorted((r.source.removeprefix(str(tmp_path)), r.reason) for r in report.rejected)

    def tree(store: ObjectStore) -> dict[str, Any]:
        return {i.key: unrevised(store.get_json(i.key)) for prefix in ("collections/", "catalog.json")
                for i in store.list(prefix)}

    inline, inline_rejected = run(0)
    pooled, pooled_rejected = run(2)
    assert pooled_rejected == inline_rejected
    assert [source for source, _ in pooled_rejected] == [
        "/in/nested/bad.json", "/many.ndjson:21", "/many.ndjson:42", "/models.ndjson:22", "/models.ndjson:4"]
    assert tree(pooled) == tree(inline)
    assert pooled.get_json(catalog.item_key("dataset", "w-3"))["properties"]["title"] == "the later copy"
    assert indexed(pooled) == indexed(inline)
    tree_is_valid(pooled)


class _LastFirst(Executor):
    """Runs what was submitted to it when a result is first asked for, the last submitted first: the
    writes of a worker's earlier task land after those of a later one."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = _Deferred(self)
        self.pending.append((future, fn, args))
        return future

    def run(self) -> None:
        while self.pending:
            future, fn, args = self.pending.pop()
            future.set_result(fn(*args))


class _Deferred(Future):  # type: ignore[type-arg]
    def __init__(self, executor: _LastFirst) -> None:
        super().__init__()
        self.executor = executor

    def result(self, timeout: float | None = None) -> Any:
        if not self.done():
            self.executor.run()
        return super().result(timeout)


def test_an_item_in_two_tasks_in_flight_ends_as_its_later_copy_whatever_order_the_workers_write_in(
        tmp_path, monkeypatch) -> None:
    """Workers write the items they parse; two tasks in flight together may land in either order, so the
    publisher writes the later copy again: the file, the catalog and search all end with it."""
    from chalicelib.stac import sources
    from chalicelib.stac.check import check_catalog, check_derived

    def parsed(all_tasks: Any, collection: str | None, procs: sources.Workers, store: ObjectStore | None = None) -> Any:
        assert store is not None
        monkeypatch.setattr(sources, "_CHILD_STORE", store.for_child_process())
        yield from sources._windowed(_LastFirst(), all_tasks, collection, window=sources.window(procs.count))

    monkeypatch.setattr(sources, "parsed", parsed)
    monkeypatch.setattr(sources, "workers_for", lambda paths: 1)
    monkeypatch.setattr(sources, "TASK_BYTES", 200)  # an item a task
    items = [make_item(f"t-{i}", collection="dataset") for i in range(6)]
    items.insert(2, dict(items[0], properties=dict(items[0]["properties"], title="later copy")))
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    assert len(list(sources.tasks([source]))) == len(items)
    store = LocalStore(tmp_path / "store", fsync=False)
    assert publish_paths(store, [source], progress=False).published == 6
    assert store.get_json(catalog.item_key("dataset", "t-0"))["properties"]["title"] == "later copy"
    assert found(store)["dataset", "t-0"]["properties"]["title"] == "later copy"
    report = check_catalog(store)
    check_derived(store, report)
    assert report.problems == []


@pytest.mark.parametrize("writing", [True, False])
def test_an_item_the_batch_being_flushed_writes_is_written_again_when_a_worker_wrote_a_later_copy(
        writing: bool) -> None:
    """The batch being flushed may write its copy after a worker wrote a later one: the later copy is
    written again by the publisher (its next flush comes after that one), and only then."""
    from chalicelib.stac import sources
    from chalicelib.stac.publish import _Bulk, _Recent
    key = ("dataset", "x")
    recent = _Recent(size=0, writing={key} if writing else set())
    outcome = sources.Parsed(items=[(*key, True, b"[0.0,0.0,1.0,1.0,null,null]", b"{}", 1)], written=True)
    batch = _Bulk()
    batch.take(sources.Task("f"), outcome, recent)
    assert batch.items[key][6] is writing


def test_bulk_publish_on_s3_makes_a_bounded_number_of_requests(s3_store, tmp_path, monkeypatch) -> None:
    """On S3 (moto's server), parsed by worker processes: one PUT per item (sent in parallel), and per
    batch and per shard flush a fixed number of requests, whatever the number of items: the count per
    1,000 items has a stated bound."""
    from chalicelib.stac import publish as publish_module
    from chalicelib.stac import sources
    from tests.helpers.stores import InstrumentedStore
    n, batch = 600, 200
    monkeypatch.setattr(publish_module, "BATCH", batch)
    monkeypatch.setattr(sources, "TASK_BYTES", 60_000)
    monkeypatch.setattr(sources, "workers_for", lambda paths: 2)
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(item) for item in random_items(n, "dataset")) + "\n")
    tasks = len(list(sources.tasks([source])))
    assert 3 < tasks < n // 20
    store = InstrumentedStore(s3_store)
    assert publish_paths(store, [source], progress=False).published == n
    shards = len({catalog.shard_of(iid) for _, iid in catalogued(s3_store)})
    calls = dict(store.calls)
    batches = n // batch  # at most: a batch is whole tasks of at least ``batch`` items, but for the last
    # PUT: the items; per task a segment, per batch the manifest; per shard flush (one here) each touched
    # shard and the collection; the root and the collections it creates; the final merge (<= MERGE_ROWS).
    assert calls["PUT"] <= n + tasks + batches + shards + 1 + 3 + 2, calls
    # GET: the shards and the collection (then the root), the manifest per batch, the merge's reads.
    assert calls["GET"] + calls.get("HEAD", 0) <= shards + 2 + batches + (1 + tasks) + 1, calls
    assert calls["LIST"] <= batches + 1, calls
    assert catalogued(s3_store) == {("dataset", item["id"]) for item in random_items(n, "dataset")} \
        == indexed(s3_store)


def test_a_listing_with_nothing_to_hand_out_does_not_wait_for_the_shards_the_workers_are_writing(
        tmp_path: Path) -> None:
    """A load whose last batch handed its shards out: the final application has nothing left, so the
    publisher goes on (packing the index) while the workers write, and waits for them only at the end."""
    from chalicelib.stac.publish import _Listing
    writing: Future[None] = Future()
    listing = _Listing(running=[writing])
    applied = threading.Thread(target=listing.apply, args=(LocalStore(tmp_path / "store"), None))
    applied.start()
    applied.join(2)
    try:
        assert not applied.is_alive()
        assert listing.running == [writing]
    finally:
        writing.set_result(None)
    listing.wait()
    assert listing.running == []
