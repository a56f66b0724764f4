"""Shards that split as they grow: pages stay bounded, the tree stays valid and exact under racing writers."""
from __future__ import annotations

import json
import random
from contextlib import contextmanager
from typing import Any, Iterator

import pystac
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stac_offline import validate_object

from chalicelib.stac import catalog
from chalicelib.stac.items import normalize
from chalicelib.store import ObjectStore

from tests.helpers.stac_items import ids_in_shard, make_item, reachable
from tests.helpers.stores import InstrumentedStore, etags
from tests.helpers.threads import run_paused, together


@contextmanager
def shard_limit(n: int) -> Iterator[None]:
    """Shards split over ``n`` items (a hypothesis test cannot take pytest's monkeypatch)."""
    was = catalog.SHARD_ITEMS
    catalog.SHARD_ITEMS = n
    try:
        yield
    finally:
        catalog.SHARD_ITEMS = was


@pytest.fixture
def limit_4() -> Iterator[None]:
    with shard_limit(4):
        yield


def summary_of(item_id: str, **where: Any) -> catalog.Summary:
    return normalize(make_item(item_id, **where), "dataset")[1]


def somewhere(iid: str) -> catalog.Summary:
    rng = random.Random(iid)
    return summary_of(iid, lon=rng.uniform(-170, 170), lat=rng.uniform(-80, 80))


def shard_docs(store: ObjectStore, cid: str = "dataset") -> dict[str, dict[str, Any]]:
    """Every stored shard and sub-shard document, by name."""
    return {info.key.rsplit("/", 1)[-1].removesuffix(".json"): store.get_json(info.key)
            for folder in ("shards", "subshards") for info in store.list(f"collections/{cid}/{folder}/")}


def linked_docs(store: ObjectStore, cid: str = "dataset") -> dict[str, dict[str, Any]]:
    """The shard documents a client reaches from the collection, by name."""
    def name(href: str) -> str:
        return href.rsplit("/", 1)[-1].removesuffix(".json")

    coll = store.get_json(catalog.collection_key(cid))
    todo = [name(link["href"]) for link in coll["links"] if link["rel"] == "child"]
    out = {}
    while todo:
        shard = todo.pop()
        out[shard] = doc = store.get_json(catalog.shard_key(cid, shard))
        todo += [name(link["href"]) for link in doc["links"] if link["rel"] == "child"]
    return out


def assert_exact(store: ObjectStore, held: dict[str, catalog.Summary]) -> None:
    """The collection's extent and every split shard's union are the merge of the items under them,
    and exactly the held items are reachable."""
    coll = store.get_json(catalog.collection_key("dataset"))
    assert coll["extent"] == catalog._extent(held.values())
    assert coll[catalog.UNION_FIELD] == catalog.merge(held.values())
    assert reachable(store) == set(held)
    for name, doc in shard_docs(store).items():
        if catalog.SHARDS_FIELD in doc:
            under = catalog.shard_items(store, "dataset", name)
            assert doc[catalog.UNION_FIELD] == catalog.merge(under.values()), name


def test_a_shard_over_the_limit_splits_and_every_page_stays_bounded(local_store, offline_pystac, limit_4) -> None:
    from chalicelib.stac.check import check_catalog
    crowded = ids_in_shard("3f", 70, prefix="crowd")
    others = [f"other-{i}" for i in range(20)]
    held = {iid: somewhere(iid) for iid in crowded + others}
    for iid in crowded[:30]:  # one by one, then in bulk: both split
        catalog.update(local_store, "dataset", {iid: held[iid]}, ())
    catalog.update(local_store, "dataset", {iid: held[iid] for iid in crowded[30:] + others}, ())
    for iid in crowded + others:
        local_store.put_json(catalog.item_key("dataset", iid), normalize(make_item(iid), "dataset")[0])

    docs = linked_docs(local_store)
    assert "3f" in docs, "the crowded shard is linked"
    assert catalog.SHARDS_FIELD in docs["3f"], "the crowded shard is split"
    assert any(len(name) == 4 for name in docs), "a bulk write over many limits splits sub-shards too"
    for name, doc in docs.items():
        assert len(doc.get(catalog.ITEMS_FIELD, {})) <= 4, name
        assert validate_object(catalog.public(doc)) == [], name
    assert_exact(local_store, held)
    assert check_catalog(local_store).problems == []
    root = pystac.Catalog.from_file(str(local_store.root / "catalog.json"))
    assert {i.id for i in root.get_items(recursive=True)} == set(held)

    # One more item inside the extent rewrites its leaf only.
    before = etags(local_store)
    new = ids_in_shard("3f", 71, prefix="crowd")[70]
    catalog.update(local_store, "dataset", {new: summary_of(new, lon=0, lat=0)}, ())
    changed = {k for k, v in etags(local_store).items() if before.get(k) != v}
    assert len(changed) == 1
    (leaf,) = changed
    assert new in local_store.get_json(leaf)[catalog.ITEMS_FIELD]
    assert len(leaf.rsplit("/", 1)[-1].removesuffix(".json")) > 2


def test_a_shard_of_a_catalog_from_before_splits_splits_on_its_next_change(local_store, offline_pystac) -> None:
    from chalicelib.stac.check import check_catalog
    ids = ids_in_shard("a0", 12, prefix="old")
    held = {iid: somewhere(iid) for iid in ids}
    catalog.update(local_store, "dataset", held, ())  # under the default limit: one unsplit page
    for iid in ids:
        local_store.put_json(catalog.item_key("dataset", iid), normalize(make_item(iid), "dataset")[0])
    assert catalog.SHARDS_FIELD not in local_store.get_json(catalog.shard_key("dataset", "a0"))
    with shard_limit(4):
        catalog.update(local_store, "dataset", {}, [ids[0]])
        del held[ids[0]]
        local_store.delete(catalog.item_key("dataset", ids[0]))
        assert catalog.SHARDS_FIELD in local_store.get_json(catalog.shard_key("dataset", "a0"))
        assert_exact(local_store, held)
        assert check_catalog(local_store).problems == []


def _third_digits(ids: list[str]) -> set[str]:
    return {catalog.shard_path(iid, 3) for iid in ids}


def test_a_split_whose_shard_changed_before_its_swap_is_left_to_the_next_writer(local_store, limit_4) -> None:
    """A takes shard 3f over the limit and writes its sub-shards, then (held) swaps 3f for the split shard.
    Meanwhile B publishes into 3f, still unsplit, an item whose sub-shard A's state left empty. A's swap
    must lose (B's item would be unlinked), and B, over the limit too, splits 3f with its item."""
    first = ids_in_shard("3f", 5, prefix="a")
    b_item = next(iid for iid in ids_in_shard("3f", 60, prefix="b") if catalog.shard_path(iid, 3) not in _third_digits(first))
    held = {iid: somewhere(iid) for iid in first[:4]}
    catalog.update(local_store, "dataset", held, ())
    key = catalog.shard_key("dataset", "3f")
    a = InstrumentedStore(local_store)
    # A's first PUT of 3f writes its item, its second swaps 3f for the split shard.
    held_swap = a.pause("before", "PUT", lambda call: call.key == key, nth=2)
    held[first[4]] = somewhere(first[4])
    held[b_item] = somewhere(b_item)
    _, error, _, other_error = run_paused(
        held_swap, lambda: catalog.update(a, "dataset", {first[4]: held[first[4]]}, ()), "A",
        lambda: catalog.update(local_store, "dataset", {b_item: held[b_item]}, ()))
    assert (error, other_error) == (None, None)
    assert a.lost[key] == 1, "A's swap lost to B's write"
    assert catalog.SHARDS_FIELD in local_store.get_json(key)
    assert_exact(local_store, held)


def test_a_late_split_of_an_older_state_leaves_live_sub_shards_alone(local_store, limit_4) -> None:
    """A takes shard 3f over the limit, then is held before writing its sub-shards. Meanwhile B takes 3f
    further and splits it, and C publishes into one of the live sub-shards. A's sub-shard writes
    (from an older state of 3f) must not overwrite them."""
    ids = ids_in_shard("3f", 7, prefix="late")
    held = {iid: somewhere(iid) for iid in ids[:4]}
    catalog.update(local_store, "dataset", held, ())
    a = InstrumentedStore(local_store)
    held_parts = a.pause("before", ("GET", "PUT"), lambda call: call.key.startswith("collections/dataset/subshards/3f"))

    def meanwhile() -> None:
        catalog.update(local_store, "dataset", {ids[5]: held[ids[5]]}, ())  # B: splits 3f
        assert catalog.SHARDS_FIELD in local_store.get_json(catalog.shard_key("dataset", "3f"))
        catalog.update(local_store, "dataset", {ids[6]: held[ids[6]]}, ())  # C: into a live sub-shard

    held[ids[4]], held[ids[5]], held[ids[6]] = somewhere(ids[4]), somewhere(ids[5]), somewhere(ids[6])
    _, error, _, other_error = run_paused(held_parts, lambda: catalog.update(a, "dataset", {ids[4]: held[ids[4]]}, ()),
                                          "A", meanwhile)
    assert (error, other_error) == (None, None)
    assert sum(n for k, n in a.written.items() if "/subshards/3f" in k) == 0
    assert_exact(local_store, held)


def test_concurrent_publishers_into_one_shard_split_it_and_lose_nothing(local_store, limit_4) -> None:
    """8 threads publish 6 items each into one shard at once: splits race with item writes."""
    batches = [ids_in_shard("c4", 6, prefix=f"t{k}") for k in range(8)]
    held = {iid: somewhere(iid) for ids in batches for iid in ids}

    def publish(ids: list[str]) -> None:
        for iid in ids:
            catalog.update(local_store, "dataset", {iid: held[iid]}, ())

    assert together(publish, [(ids,) for ids in batches]) == []
    assert catalog.SHARDS_FIELD in local_store.get_json(catalog.shard_key("dataset", "c4"))
    assert_exact(local_store, held)


def test_a_rebuild_of_split_shards_matches_incremental_updates(local_store, limit_4) -> None:
    import time

    from tests.helpers.stac_items import unrevised
    ids = ids_in_shard("3f", 30, prefix="rb") + [f"x-{i}" for i in range(10)]
    held = {iid: somewhere(iid) for iid in ids}
    for iid in ids:
        catalog.update(local_store, "dataset", {iid: held[iid]}, ())
    catalog.update(local_store, "dataset", {}, ids[:5])
    for iid in ids[:5]:
        del held[iid]

    def tree() -> dict[str, Any]:
        return {k: unrevised({f: v for f, v in doc.items() if f != catalog.FROM_FIELD})
                for k, doc in linked_docs(local_store).items()}

    incremental = tree()
    catalog.rebuild(local_store, "dataset", held, since=time.time_ns(), current=lambda iid: None)
    assert tree() == incremental
    assert_exact(local_store, held)


# Ids in two shards, enough that sub-shards split again under a limit of 2.
_IDS = [iid for hh in ("30", "a0") for iid in ids_in_shard(hh, 12, prefix=f"s{hh}")]
_SUMMARIES = st.builds(lambda x, y, d, t: [x, y, x + d, y + d, t, t],
                       st.integers(-5, 5).map(float), st.integers(-5, 5).map(float), st.integers(0, 3),
                       st.sampled_from([None, "2021-01-01T00:00:00.000000Z", "2022-01-01T00:00:00.000000Z",
                                        "2023-01-01T00:00:00.000000Z"]))
_STEPS = st.lists(st.tuples(st.lists(st.sampled_from(_IDS), min_size=1, max_size=4, unique=True),
                            st.none() | _SUMMARIES), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(_STEPS)
def test_any_sequence_of_publishes_and_deletes_through_splits_leaves_exact_extents_and_links(steps) -> None:
    """After every change (a summary: publish those ids; None: delete them), the collection's extent and
    every split shard's union are the merge of the items under them, and exactly those are linked."""
    import tempfile

    from chalicelib.store.local import LocalStore
    store = LocalStore(tempfile.mkdtemp(prefix="split-"), fsync=False)
    held: dict[str, catalog.Summary] = {}
    with shard_limit(2):
        for ids, summary in steps:
            if summary is None:
                for iid in ids:
                    held.pop(iid, None)
                catalog.update(store, "dataset", {}, ids)
            else:
                held |= {iid: summary for iid in ids}
                catalog.update(store, "dataset", {iid: summary for iid in ids}, ())
            assert_exact(store, held)


def test_pages_of_a_split_shard_are_small_json(local_store, limit_4) -> None:
    ids = ids_in_shard("77", 40, prefix="size")
    catalog.update(local_store, "dataset", {iid: somewhere(iid) for iid in ids}, ())
    sizes = [len(json.dumps(doc)) for doc in shard_docs(local_store).values()]
    assert max(sizes) < 4_000


def test_a_bulk_publish_splits_and_check_and_reindex_see_through_sub_shards(local_store, tmp_path, offline_pystac,
                                                                            limit_4) -> None:
    """The bulk path (``publish_paths``) splits crowded shards; ``stacflow check`` finds drift inside a
    sub-shard, and ``stacflow reindex`` clears it."""
    from chalicelib.stac.check import check_catalog, check_derived
    from chalicelib.stac.publish import publish_paths, reindex
    items = [make_item(iid, lon=random.Random(iid).uniform(-50, 50)) for iid in ids_in_shard("5e", 30, prefix="bulk")]
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in items))
    assert not publish_paths(local_store, [tmp_path / "items.ndjson"], progress=False).rejected

    def problems() -> list[str]:
        report = check_catalog(local_store)
        check_derived(local_store, report)
        return [p.problem for p in report.problems]

    assert catalog.SHARDS_FIELD in local_store.get_json(catalog.shard_key("dataset", "5e"))
    assert problems() == []
    leaf = next(name for name, doc in linked_docs(local_store).items() if doc.get(catalog.ITEMS_FIELD))
    key = catalog.shard_key("dataset", leaf)
    doc = local_store.get_json(key)
    doc[catalog.ITEMS_FIELD]["ghost"] = [0, 0, 1, 1, None, None]
    local_store.put_json(key, doc, notify=False)
    assert "lists 'ghost', which has no item" in problems()
    reindex(local_store, progress=False)
    assert problems() == []
    assert reachable(local_store) == {item["id"] for item in items}


def test_a_writer_that_has_seen_a_shard_split_goes_straight_to_its_sub_shards(local_store, limit_4) -> None:
    """A split is never undone: the second publish of a process into a split shard does not read it
    when its leaf's view holds the item (same place and time as the items there)."""
    ids = ids_in_shard("3f", 24, prefix="seen")
    catalog.update(local_store, "dataset", {iid: summary_of(iid) for iid in ids[:20]}, ())
    observed = InstrumentedStore(local_store)
    top = catalog.shard_key("dataset", "3f")
    catalog.update(observed, "dataset", {ids[20]: summary_of(ids[20])}, ())
    assert [c.key for c in observed.log if c.verb == "GET"][0] == top  # found split on the way down
    observed.log.clear()
    for iid in ids[21:]:
        catalog.update(observed, "dataset", {iid: summary_of(iid)}, ())
    reads = [c.key for c in observed.log if c.verb == "GET"]
    assert top not in reads
    assert all("/subshards/3f" in key for key in reads)
    assert reachable(local_store) == set(ids)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40), st.integers(min_value=0, max_value=catalog.SHARD_DEPTH))
def test_a_shard_path_is_the_top_shard_then_the_hash_bits_level_by_level(item_id: str, length: int) -> None:
    """The per-hex-digit lookup names the sub-shards the hash's bits do, read as one integer."""
    import hashlib
    digest = hashlib.sha1(item_id.encode()).hexdigest()
    bits = catalog.SHARD_FANOUT.bit_length() - 1
    rest, width = int(digest[2:], 16), 4 * (len(digest) - 2)
    wanted = digest[:min(length, 2)] + "".join(
        "0123456789abcdef"[(rest >> (width - bits * (k + 1))) & (catalog.SHARD_FANOUT - 1)] for k in range(length - 2))
    assert catalog.shard_path(item_id, length) == wanted
