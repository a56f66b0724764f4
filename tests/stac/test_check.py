"""``stacflow check``: pystac walks the static catalog through the store and every problem is named."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from chalicelib import services
from chalicelib.cli import main
from chalicelib.stac import catalog
from chalicelib.stac.check import Problem, check_catalog
from chalicelib.stac.publish import publish_paths
from chalicelib.store import ObjectStore

from tests.helpers.stac_items import ids_in_shard, make_item, random_items

ITEMS = random_items(20) + random_items(6, "ai-model", seed=2)


@pytest.fixture
def published(store: ObjectStore, tmp_path: Path) -> ObjectStore:
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in ITEMS))
    assert not publish_paths(store, [tmp_path / "items.ndjson"], progress=False).rejected
    return store


def test_a_published_catalog_passes(published: ObjectStore) -> None:
    report = check_catalog(published)  # on S3, every read goes through StoreStacIO
    assert report.problems == []
    assert (report.collections, report.items) == (2, len(ITEMS))


def test_an_item_changed_behind_the_catalog_is_invalid(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", ITEMS[0]["id"])
    broken = dict(published.get_json(key), bbox=[0, 0, 1, 1])
    published.put_json(key, broken, notify=False)
    (problem,) = check_catalog(published).problems
    assert problem.key == key
    assert problem.problem.startswith("invalid: bbox")


def test_an_item_edited_but_still_valid_is_not_in_published_form(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", ITEMS[1]["id"])
    edited = published.get_json(key)
    edited["links"] = [link for link in edited["links"] if link["rel"] != "parent"]
    published.put_json(key, edited, notify=False)
    assert [p.key for p in check_catalog(published).problems] == [key]


def test_an_item_deleted_behind_the_catalog_is_missing(published: ObjectStore) -> None:
    key = catalog.item_key("ai-model", ITEMS[-1]["id"])
    published.delete(key)
    assert check_catalog(published).problems == [Problem(key, "linked but missing")]


def test_an_item_whose_event_was_lost_is_not_linked(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", "lost-event")
    published.put_json(key, make_item("lost-event"), notify=False)
    (problem,) = check_catalog(published).problems
    assert problem.key == key
    assert problem.problem.startswith("not linked")


def test_an_unpublished_store_has_no_catalog(local_store: ObjectStore) -> None:
    report = check_catalog(local_store)
    assert [p.key for p in report.problems] == [catalog.ROOT_KEY]
    assert report.collections == 0


def test_the_command_exits_non_zero_on_problems(local_store: ObjectStore, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "item.json").write_text(json.dumps(make_item("one")))
    publish_paths(local_store, [tmp_path / "item.json"], progress=False)
    try:
        assert main(["check", "--store", local_store.uri]) == 0
        assert json.loads(capsys.readouterr().out) == {"collections": 2, "items": 1, "problems": []}
        local_store.delete(catalog.item_key("dataset", "one"))
        assert main(["check", "--store", local_store.uri]) == 1
        problems = json.loads(capsys.readouterr().out)["problems"]
        # the walk, the shard, the collection's view of it and the index all name it
        assert problems[0] == {"key": catalog.item_key("dataset", "one"), "problem": "linked but missing"}
        assert len(problems) == 4
    finally:
        services.configure()


# -- split shards, unreadable pages, one read per item -------------------------------------------
@pytest.fixture
def split(local_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """Shard 5e split into sub-shards (4 items a page), two levels deep, plus items elsewhere."""
    monkeypatch.setattr(catalog, "SHARD_ITEMS", 4)
    items = [make_item(iid) for iid in ids_in_shard("5e", 40, prefix="deep")] + random_items(8)
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in items))
    assert not publish_paths(local_store, [tmp_path / "items.ndjson"], progress=False).rejected
    return local_store


def _leaves(store: ObjectStore) -> dict[str, list[str]]:
    """The sub-shard pages of 5e holding items, deepest first: name -> item ids."""
    pages = {}
    for info in store.list("collections/dataset/subshards/"):
        doc = store.get_json(info.key)
        if doc.get(catalog.ITEMS_FIELD) and catalog.SHARDS_FIELD not in doc:
            pages[info.key.rsplit("/", 1)[-1].removesuffix(".json")] = sorted(doc[catalog.ITEMS_FIELD])
    return dict(sorted(pages.items(), key=lambda page: -len(page[0])))


def test_problems_deep_in_split_sub_shards_are_found(split: ObjectStore) -> None:
    assert check_catalog(split).problems == []
    (gone_from, ids), (missing, lost), (broken, hidden), *_ = _leaves(split).items()
    assert len(gone_from) > 3  # below a sub-shard, not a top shard
    split.delete(catalog.item_key("dataset", ids[0]))
    split.delete(catalog.shard_key("dataset", missing))
    split.put(catalog.shard_key("dataset", broken), b"{not json", content_type="application/json")
    report = check_catalog(split)
    found = {(p.key, p.problem.split(":")[0]) for p in report.problems}
    assert (catalog.item_key("dataset", ids[0]), "linked but missing") in found
    assert (catalog.shard_key("dataset", missing), "linked but missing") in found
    assert (catalog.shard_key("dataset", broken), "unreadable") in found
    for iid in lost + hidden:  # their pages cannot be read: the items are not linked
        assert (catalog.item_key("dataset", iid), "not linked from the catalog (its event is pending or was lost") \
            in found
    assert report.items == 48 - 1 - len(lost) - len(hidden)


def test_an_unreadable_shard_is_a_problem_for_the_derived_checks_too(split: ObjectStore) -> None:
    from chalicelib.stac.check import check_derived
    broken = next(iter(_leaves(split)))
    split.put(catalog.shard_key("dataset", broken), b"[1, 2", content_type="application/json")
    report = check_catalog(split)
    check_derived(split, report)  # used to raise on the page it could not parse
    top = catalog.shard_key("dataset", broken[:2])
    assert [p.problem.split(":")[0] for p in report.problems if p.key == top] == ["unreadable"]


def test_each_item_file_is_read_once_by_the_walk_and_the_derived_checks(published: ObjectStore) -> None:
    from chalicelib.stac.check import check_derived
    from tests.helpers.stores import InstrumentedStore
    observed = InstrumentedStore(published)
    report = check_catalog(observed)
    check_derived(observed, report)
    assert report.problems == []
    reads = Counter(c.key for c in observed.log if c.verb == "GET" and catalog.parse_item_key(c.key))
    assert sorted(reads.values()) == [1] * len(ITEMS)


def test_the_walk_holds_no_item_it_has_checked(local_store: ObjectStore, tmp_path: Path) -> None:
    """pystac's resolution caches every object it reads in the root and merges that cache at each
    catalog (quadratic, and every item held): while the walk reads item files, no pystac item it
    parsed before is still alive."""
    import gc

    import pystac

    from tests.helpers.stores import Call, InstrumentedStore
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in ITEMS))
    assert not publish_paths(local_store, [tmp_path / "items.ndjson"], progress=False).rejected
    here = local_store.url(catalog.ROOT_KEY).removesuffix(catalog.ROOT_KEY).removeprefix("file://")
    observed = InstrumentedStore(local_store)  # reads in turn, as the local store: the count is exact
    assert observed.read_parallelism == 1
    reads: list[str] = []
    alive: list[int] = []

    def count(at: str, call: Call) -> None:  # at the last item read (a full collection is slow)
        if at == "before" and call.verb == "GET" and catalog.parse_item_key(call.key):
            reads.append(call.key)
            if len(reads) == len(ITEMS):
                gc.collect()
                alive.append(sum(isinstance(obj, pystac.Item) and here in (obj.get_self_href() or "")
                                 for obj in gc.get_objects()))  # other tests' items may live on

    observed.hooks.append(count)
    assert check_catalog(observed).items == len(ITEMS)
    assert alive == [0]
