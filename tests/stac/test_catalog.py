"""The static catalog in the store: layout, links, extents, shards; read back with pystac."""
from __future__ import annotations

import json
import time
from typing import Any

import pystac
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stac_offline import validate_object

from chalicelib.stac import catalog
from chalicelib.stac.items import normalize
from chalicelib.stac.stacio import StoreStacIO
from chalicelib.store import NotFound, ObjectStore

from tests.helpers.stac_items import ids_in_shard, make_item, random_items, reachable, unrevised
from tests.helpers.stores import etags


def publish_direct(store: ObjectStore, items: list[dict[str, Any]]) -> None:
    """Write items and apply their catalog updates (what publishing does, minus the search index)."""
    per: dict[str, dict[str, Any]] = {}
    for raw in items:
        item, summary = normalize(raw, raw["collection"])
        store.put_json(catalog.item_key(item["collection"], item["id"]), item)
        per.setdefault(item["collection"], {})[item["id"]] = summary
    for cid, ups in per.items():
        catalog.update(store, cid, ups, ())


def static_tree(store: ObjectStore) -> dict[str, Any]:
    """Every document of the static catalog (root and collections/...), without revision numbers."""
    keys = ["catalog.json"] + [i.key for i in store.list("collections/")]
    return {key: unrevised(store.get_json(key)) for key in keys}


def test_tree_is_valid_stac_and_pystac_reads_every_item(local_store, offline_pystac) -> None:
    items = random_items(60) + random_items(15, "ai-model", seed=2)
    publish_direct(local_store, items)
    for key, doc in static_tree(local_store).items():
        assert validate_object(doc) == [], key

    root = pystac.Catalog.from_file(str(local_store.root / "catalog.json"))
    assert root.validate_all() == len(items)
    found = {(i.collection_id, i.id) for i in root.get_items(recursive=True)}
    assert found == {(i["collection"], i["id"]) for i in items}
    some = next(root.get_child("dataset").get_items(recursive=True))
    assert some.get_collection().id == "dataset"
    assert some.get_root().id == "stacflow"
    assert some.get_parent().id == f"dataset-{catalog.shard_of(some.id)}"


def test_pystac_reads_the_tree_from_s3_through_the_store(s3_store, offline_pystac) -> None:
    items = random_items(25) + random_items(5, "ai-model", seed=3)
    publish_direct(s3_store, items)
    io = StoreStacIO(s3_store)
    root_href = s3_store.url("catalog.json")
    assert root_href.startswith("s3://")
    root = pystac.Catalog.from_file(root_href, stac_io=io)
    assert root.validate_all() == len(items)
    assert {i.id for i in root.get_items(recursive=True)} == {i["id"] for i in items}
    assert root.get_child("dataset").get_self_href() == s3_store.url("collections/dataset/collection.json")


def test_links_are_relative_and_match_the_layout(local_store) -> None:
    publish_direct(local_store, [make_item("a1"), make_item("b2", lon=20, lat=40)])
    tree = static_tree(local_store)
    root = tree["catalog.json"]
    assert {(l["rel"], l["href"]) for l in root["links"]} == {
        ("root", "./catalog.json"), ("self", "./catalog.json"),
        ("child", "./collections/ai-model/collection.json"), ("child", "./collections/dataset/collection.json")}
    coll = tree["collections/dataset/collection.json"]
    children = sorted(l["href"] for l in coll["links"] if l["rel"] == "child")
    assert children == sorted({f"./shards/{catalog.shard_of(i)}.json" for i in ("a1", "b2")})
    item = tree["collections/dataset/items/a1.json"]
    rels = {l["rel"]: l["href"] for l in item["links"]}
    assert rels == {"root": "../../../catalog.json", "parent": f"../shards/{catalog.shard_of('a1')}.json",
                    "collection": "../collection.json", "self": "./a1.json",
                    "license": "https://example.com/license"}
    assert item["collection"] == "dataset"
    shard = tree[f"collections/dataset/shards/{catalog.shard_of('a1')}.json"]
    assert {"rel": "item", "href": "../items/a1.json", "type": "application/geo+json"} in shard["links"]


def test_extents_follow_items_and_shrink_when_items_go(store) -> None:
    publish_direct(store, [make_item("west", lon=-100, lat=-10, dt="2020-01-01T00:00:00Z"),
                           make_item("east", lon=100, lat=30, size=2, dt="2024-05-01T12:30:00Z"),
                           make_item("mid", lon=0, lat=0, dt=None, start_datetime="2021-01-01T00:00:00Z",
                                     end_datetime="2022-01-01T00:00:00Z")])
    extent = store.get_json(catalog.collection_key("dataset"))["extent"]
    assert extent["spatial"]["bbox"] == [[-100, -10, 102, 32]]
    assert extent["temporal"]["interval"] == [["2020-01-01T00:00:00Z", "2024-05-01T12:30:00Z"]]

    catalog.update(store, "dataset", {}, ["east", "west"])
    doc = store.get_json(catalog.collection_key("dataset"))
    assert doc["extent"]["spatial"]["bbox"] == [[0, 0, 0, 0]]
    assert doc["extent"]["temporal"]["interval"] == [["2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z"]]
    assert reachable(store) == {"mid"}

    catalog.update(store, "dataset", {}, ["mid"])
    doc = store.get_json(catalog.collection_key("dataset"))
    assert doc["extent"]["temporal"]["interval"] == [[None, None]]
    assert [l for l in doc["links"] if l["rel"] == "child"] == []  # empty shards are unlinked
    assert validate_object(doc) == []


def test_one_item_touches_one_shard_and_the_collection_only_if_it_widens_it(local_store) -> None:
    publish_direct(local_store, random_items(300))
    before = etags(local_store)
    _, summary = normalize(make_item("new-one", lon=5, lat=5, dt="2022-06-01T00:00:00Z"), "dataset")
    catalog.update(local_store, "dataset", {"new-one": summary}, ())
    changed = {k for k, v in etags(local_store).items() if before.get(k) != v}
    assert changed == {catalog.shard_key("dataset", catalog.shard_of("new-one"))}  # inside the extent
    shard = local_store.get_json(catalog.shard_key("dataset", catalog.shard_of("new-one")))
    assert len(json.dumps(shard)) < 20_000  # ~300/256 items per shard: small pages

    before = etags(local_store)
    _, summary = normalize(make_item("far-one", lon=179, lat=89), "dataset")
    catalog.update(local_store, "dataset", {"far-one": summary}, ())
    changed = {k for k, v in etags(local_store).items() if before.get(k) != v}
    assert changed == {catalog.shard_key("dataset", catalog.shard_of("far-one")), catalog.collection_key("dataset")}
    bbox = local_store.get_json(catalog.collection_key("dataset"))["extent"]["spatial"]["bbox"][0]
    assert bbox[2:] == [179, 89]


def test_no_change_writes_nothing(local_store) -> None:
    publish_direct(local_store, [make_item("same")])
    before = etags(local_store)
    _, summary = normalize(make_item("same"), "dataset")
    catalog.update(local_store, "dataset", {"same": summary}, ())
    catalog.update(local_store, "dataset", {}, ["never-there"])
    assert etags(local_store) == before


def test_rebuild_matches_incremental_updates(local_store) -> None:
    items = random_items(80)
    publish_direct(local_store, items)
    incremental = static_tree(local_store)
    # A stray shard document and a stale entry linking it, that the rebuild must drop.
    local_store.put_json(catalog.shard_key("dataset", "zz"), catalog.empty_shard("dataset", "zz"))
    coll = local_store.get_json(catalog.collection_key("dataset"))
    coll[catalog.SHARDS_FIELD]["zz"] = {"rev": 2**62, "linked": True, "summary": None}
    coll["links"].append({"rel": "child", "href": "./shards/zz.json", "type": "application/json"})
    local_store.put_json(catalog.collection_key("dataset"), coll)
    summaries = {i["id"]: normalize(i, "dataset")[1] for i in items}
    catalog.rebuild(local_store, "dataset", summaries, since=time.time_ns(), current=lambda iid: None)
    assert static_tree(local_store) == incremental


def test_rebuild_restores_the_collections_fields_from_the_config(local_store) -> None:
    items = random_items(10)
    publish_direct(local_store, items)
    key = catalog.collection_key("dataset")
    coll = local_store.get_json(key)
    local_store.put_json(key, dict(coll, title="edited by hand", description="stale"))
    summaries = {i["id"]: normalize(i, "dataset")[1] for i in items}
    catalog.rebuild(local_store, "dataset", summaries, since=time.time_ns(), current=lambda iid: None)
    assert unrevised(local_store.get_json(key)) == unrevised(coll)


def test_unknown_collection_is_refused(local_store) -> None:
    with pytest.raises(ValueError):
        catalog.update(local_store, "nope", {}, ["x"])
    with pytest.raises(NotFound):
        local_store.get("collections/nope/collection.json")


def summary_of(item_id: str, **where: Any) -> catalog.Summary:
    return normalize(make_item(item_id, **where), "dataset")[1]


@pytest.mark.parametrize("first, second", [
    # A empties the shard, B fills it again: A's late "empty" must not unlink B's item.
    ((["x"], {}), ([], {"y": {}})),
    # A widens the extent with z, B removes z again: A's late extent must not stay.
    (([], {"z": {"lon": 100.0, "lat": -40.0}}), (["z"], {})),
])
def test_writers_crossing_between_shard_and_collection_converge(local_store, first, second) -> None:
    """Writer A applies to the shard, then B to the shard and the collection, then A to the collection."""
    import threading

    from tests.helpers.stores import InstrumentedStore
    x, y, z = ids_in_shard("3f", 3)
    names = {"x": x, "y": y, "z": z}
    catalog.update(local_store, "dataset", {x: summary_of(x)}, ())
    paused = InstrumentedStore(local_store)
    held = paused.pause("before", "GET", lambda call: call.key == catalog.collection_key("dataset"))

    def run(store: ObjectStore, change: tuple[list[str], dict[str, Any]]) -> None:
        deletes, upserts = change
        catalog.update(store, "dataset", {names[k]: summary_of(names[k], **w) for k, w in upserts.items()},
                       [names[k] for k in deletes])

    a = threading.Thread(target=run, args=(paused, first))
    a.start()
    assert held.reached.wait(5), "writer A never reached the collection"
    run(local_store, second)  # B, while A holds its shard result
    held.release.set()
    a.join(10)
    assert not a.is_alive()

    shard = local_store.get_json(catalog.shard_key("dataset", "3f"))
    held = set(shard[catalog.ITEMS_FIELD])
    assert reachable(local_store) == held, "every item of the shard is reachable from the collection"
    coll = local_store.get_json(catalog.collection_key("dataset"))
    box = catalog.merge(shard[catalog.ITEMS_FIELD].values())
    assert coll["extent"]["spatial"]["bbox"] == [box[:4]]
    assert coll[catalog.SHARDS_FIELD]["3f"]["rev"] == shard[catalog.REV_FIELD]
    assert validate_object(coll) == []


def test_publishes_inside_a_shards_extent_leave_the_collection_alone(local_store) -> None:
    """16 concurrent publishers into one collection: no collection write, so no conflict on it."""
    from tests.helpers.stores import InstrumentedStore
    from tests.helpers.threads import together
    seeds = [ids_in_shard(f"{s:02x}", 1, prefix="seed")[0] for s in range(0, 256, 16)]
    catalog.update(local_store, "dataset", {iid: summary_of(iid) for iid in seeds}, ())
    observed = InstrumentedStore(local_store)
    news = [ids_in_shard(catalog.shard_of(seed), 3, prefix="new") for seed in seeds]

    def publish(ids: list[str]) -> None:
        for iid in ids:  # same place and time as the seed: the shard's extent already covers it
            catalog.update(observed, "dataset", {iid: summary_of(iid)}, ())

    assert together(publish, [(ids,) for ids in news]) == []
    coll = catalog.collection_key("dataset")
    assert observed.written[coll] == 0
    assert observed.lost[coll] == 0
    assert reachable(local_store) == set(seeds) | {iid for ids in news for iid in ids}


def test_publishes_that_grow_shards_inside_the_collections_extent_leave_it_alone(local_store) -> None:
    """16 concurrent publishers, each widening its own shard's extent but not the collection's."""
    from tests.helpers.stores import InstrumentedStore
    from tests.helpers.threads import together
    corners = [make_item("sw", lon=-170, lat=-80, dt="2020-01-01T00:00:00Z"),
               make_item("ne", lon=170, lat=80, dt="2024-01-01T00:00:00Z")]
    seeds = [ids_in_shard(f"{s:02x}", 1, prefix="seed")[0] for s in range(0, 256, 16)]
    publish_direct(local_store, corners + [make_item(iid) for iid in seeds])
    observed = InstrumentedStore(local_store)
    news = [ids_in_shard(catalog.shard_of(seed), 3, prefix="new") for seed in seeds]

    def publish(ids: list[str]) -> None:
        for k, iid in enumerate(ids):  # away from the seed: the shard's extent grows with each
            catalog.update(observed, "dataset", {iid: summary_of(iid, lon=-60 + 40 * k, lat=-40 + 30 * k)}, ())

    assert together(publish, [(ids,) for ids in news]) == []
    coll = catalog.collection_key("dataset")
    assert (observed.written[coll], observed.lost[coll]) == (0, 0)
    assert sum(n for k, n in observed.written.items() if "/shards/" in k) == 48
    assert reachable(local_store) == {"sw", "ne"} | set(seeds) | {iid for ids in news for iid in ids}


def boundary_world(store: ObjectStore) -> tuple[str, str, str]:
    """Three items in three shards: ``west`` makes the collection's western edge (lon -100)."""
    west, east, mid = ids_in_shard("10", 1, prefix="w")[0], ids_in_shard("20", 1, prefix="e")[0], \
        ids_in_shard("30", 1, prefix="m")[0]
    catalog.update(store, "dataset", {west: summary_of(west, lon=-100, lat=0), east: summary_of(east, lon=100, lat=0),
                                      mid: summary_of(mid, lon=0, lat=0)}, ())
    return west, east, mid


def bbox_of(store: ObjectStore) -> list[float]:
    return store.get_json(catalog.collection_key("dataset"))["extent"]["spatial"]["bbox"][0]  # type: ignore[no-any-return]


def test_a_refresh_keeps_a_growth_whose_writer_saw_the_extent_of_before_it(local_store) -> None:
    """A delete shrinks the extent: its writer reads every shard, then (held here) swaps the collection.
    Meanwhile a publisher widens a shard it had already read, to a place the old extent covers, so it
    writes nothing to the collection. The refresh must still end with that item inside the extent."""
    from tests.helpers.stores import InstrumentedStore
    from tests.helpers.threads import run_paused
    west, _, mid = boundary_world(local_store)
    deleter = InstrumentedStore(local_store)
    held = deleter.pause("before", "PUT", lambda call: call.key == catalog.collection_key("dataset"))
    grower = InstrumentedStore(local_store)
    near = ids_in_shard("30", 2, prefix="m")[1]  # the mid item's shard

    def grow() -> None:
        catalog.update(grower, "dataset", {near: summary_of(near, lon=-90, lat=0)}, ())

    _, error, _, other_error = run_paused(held, lambda: catalog.update(deleter, "dataset", {}, [west]), "deleter", grow)
    assert (error, other_error) == (None, None)
    assert grower.written[catalog.collection_key("dataset")] == 0, "the grower saw the old extent covering it"
    assert bbox_of(local_store) == [-90, 0, 100, 0]
    assert reachable(local_store) - {west} == reachable(local_store)


def test_a_shrink_whose_writer_died_is_finished_by_the_next_writer_of_its_shard(local_store) -> None:
    """The writer of a delete dies between the shard and the collection; a later publish into the same
    shard (even one that only widens it) or the redelivered delete recomputes the extent."""
    from tests.helpers.stores import Crash, InstrumentedStore
    west, _, _ = boundary_world(local_store)
    dying = InstrumentedStore(local_store)
    dying.fail("before", "GET", lambda call: call.key == catalog.collection_key("dataset"))
    with pytest.raises(Crash):
        catalog.update(dying, "dataset", {}, [west])
    assert bbox_of(local_store) == [-100, 0, 100, 0]  # the shrink has not reached the collection
    other = ids_in_shard("10", 2, prefix="w")[1]  # west's shard, inside the old extent
    catalog.update(local_store, "dataset", {other: summary_of(other, lon=-50, lat=0)}, ())
    assert bbox_of(local_store) == [-50, 0, 100, 0]

    dying = InstrumentedStore(local_store)
    dying.fail("before", "GET", lambda call: call.key == catalog.collection_key("dataset"))
    with pytest.raises(Crash):
        catalog.update(dying, "dataset", {}, [other])
    catalog.update(local_store, "dataset", {}, [other])  # the redelivered event: its shard write is a no-op
    assert bbox_of(local_store) == [0, 0, 100, 0]


def to_old_layout(store: ObjectStore, cid: str) -> None:
    """Rewrite the collection and its shards as the per-shard-summary layout wrote them (commit 03ff5dc):
    the collection keeps each shard's view, with no union; shards have no shrink revision."""
    coll = store.get_json(catalog.collection_key(cid))
    entries = {}
    for info in store.list(f"collections/{cid}/shards/"):
        shard = store.get_json(info.key)
        shard.pop(catalog.SHRUNK_FIELD, None)
        store.put_json(info.key, shard)
        hh = info.key.rsplit("/", 1)[-1].removesuffix(".json")
        view = catalog.ShardView.of(shard)
        entries[hh] = {"rev": view.rev, "linked": view.linked, "summary": view.summary}
    coll.pop(catalog.UNION_FIELD)
    coll[catalog.SHARDS_FIELD] = entries
    store.put_json(catalog.collection_key(cid), coll)


def test_a_catalog_of_the_per_shard_summary_layout_upgrades_on_its_next_change(local_store, offline_pystac) -> None:
    from chalicelib.stac.check import check_catalog
    items = random_items(40)
    publish_direct(local_store, items)
    upgraded = static_tree(local_store)
    to_old_layout(local_store, "dataset")
    old = local_store.get_json(catalog.collection_key("dataset"))
    assert all("summary" in e for e in old[catalog.SHARDS_FIELD].values())
    assert catalog.UNION_FIELD not in old
    assert check_catalog(local_store).problems == []  # the old layout is a consistent catalog

    # A publish inside the extent upgrades the collection (same extent and links, no per-shard summaries).
    first = items[0]
    _, summary = normalize(dict(first, properties=dict(first["properties"], title="again")), "dataset")
    catalog.update(local_store, "dataset", {"in-" + first["id"]: summary}, ())
    catalog.update(local_store, "dataset", {}, ["in-" + first["id"]])
    now = static_tree(local_store)
    key = catalog.collection_key("dataset")
    assert catalog.public(now[key]) == catalog.public(upgraded[key])
    assert now[key][catalog.UNION_FIELD] == upgraded[key][catalog.UNION_FIELD]
    stored = local_store.get_json(key)[catalog.SHARDS_FIELD]
    assert all(set(e) == {"rev", "linked"} for e in stored.values())
    # Deletes still shrink it: the edge-making items go, the extent follows the rest.
    west = min(items, key=lambda it: it["bbox"][0])
    catalog.update(local_store, "dataset", {}, [west["id"]])
    rest = [normalize(it, "dataset")[1] for it in items if it is not west]
    assert local_store.get_json(key)["extent"] == catalog._extent(rest)
    local_store.delete(catalog.item_key("dataset", west["id"]))
    assert check_catalog(local_store).problems == []
    assert reachable(local_store) == {it["id"] for it in items if it is not west}


def test_a_delete_that_leaves_the_collections_extent_as_it_is_reads_no_other_shard(local_store) -> None:
    """Only a shrink at the collection's edge recomputes it from every shard; others record the shard's
    revision (and drop its link if it emptied) in one write."""
    from tests.helpers.stores import InstrumentedStore
    west, east, mid = boundary_world(local_store)
    mid2 = ids_in_shard("30", 2, prefix="m")[1]
    south, north = ids_in_shard("40", 1, prefix="s")[0], ids_in_shard("50", 1, prefix="n")[0]
    catalog.update(local_store, "dataset", {mid2: summary_of(mid2, lon=50, lat=0),
                                            south: summary_of(south, lat=-50, dt="2020-01-01T00:00:00Z"),
                                            north: summary_of(north, lat=50, dt="2023-01-01T00:00:00Z")}, ())
    observed = InstrumentedStore(local_store)
    catalog.update(observed, "dataset", {}, [mid2])  # shrinks shard 30, inside the extent
    shard_reads = [c.key for c in observed.log if c.verb == "GET" and "/shards/" in c.key]
    assert shard_reads == [catalog.shard_key("dataset", "30")]
    assert observed.calls["LIST"] == 0
    assert observed.written[catalog.collection_key("dataset")] == 1
    coll = local_store.get_json(catalog.collection_key("dataset"))
    assert coll[catalog.SHARDS_FIELD]["30"]["rev"] == local_store.get_json(catalog.shard_key("dataset", "30"))[
        catalog.REV_FIELD]
    assert bbox_of(local_store) == [-100, -50, 100, 50]

    observed = InstrumentedStore(local_store)
    catalog.update(observed, "dataset", {}, [mid])  # empties shard 30: its link goes, the extent stays
    assert observed.calls["LIST"] == 0
    assert reachable(local_store) == {west, east, south, north}
    assert bbox_of(local_store) == [-100, -50, 100, 50]

    catalog.update(observed, "dataset", {}, [east])  # the eastern edge: a refresh
    assert observed.calls["LIST"] == 2  # the shards, before and after the swap
    assert bbox_of(local_store) == [-100, -50, 10, 50]


# Ids in four shards, so that grows, shrinks, empties and refreshes meet on few shards.
_IDS = [iid for hh in ("30", "31", "a0", "ff") for iid in ids_in_shard(hh, 3, prefix=f"h{hh}")]
_SUMMARIES = st.builds(lambda x, y, d, t: [x, y, x + d, y + d, t, t],
                       st.integers(-5, 5).map(float), st.integers(-5, 5).map(float), st.integers(0, 3),
                       st.sampled_from([None, "2021-01-01T00:00:00.000000Z", "2022-01-01T00:00:00.000000Z",
                                        "2023-01-01T00:00:00.000000Z"]))
_STEPS = st.lists(st.tuples(st.sampled_from(_IDS), st.none() | _SUMMARIES), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(_STEPS)
def test_any_sequence_of_publishes_and_deletes_leaves_the_exact_extent_and_links(steps) -> None:
    """After every change (a summary: publish; None: delete), the collection's extent is the merge of
    the items held and it links exactly the non-empty shards, however extents grew and shrank."""
    import tempfile

    from chalicelib.store.local import LocalStore
    store = LocalStore(tempfile.mkdtemp(prefix="extent-"), fsync=False)
    held: dict[str, catalog.Summary] = {}
    for iid, summary in steps:
        if summary is None:
            held.pop(iid, None)
            catalog.update(store, "dataset", {}, [iid])
        else:
            held[iid] = summary
            catalog.update(store, "dataset", {iid: summary}, ())
        coll = store.get_json(catalog.collection_key("dataset"))
        assert coll["extent"] == catalog._extent(held.values())
        assert coll[catalog.UNION_FIELD] == catalog.merge(held.values())
        assert reachable(store) == set(held)


# Bounds that tie as numbers but print apart (1 and 1.0), so that taking another of equal bounds shows.
_TIED = st.sampled_from([-1, -1.0, 0, 0.0, 1, 1.0, 2.0])
_SHARD_SUMMARIES = st.builds(lambda box, t0, t1: (box or [None] * 4) + [t0, t1],
                             st.none() | st.lists(_TIED, min_size=4, max_size=4),
                             st.sampled_from([None, "2021-01-01T00:00:00.000000Z", "2022-01-01T00:00:00.000000Z"]),
                             st.sampled_from([None, "2021-01-01T00:00:00.000000Z", "2023-01-01T00:00:00.000000Z"]))
# What a write does to an item it held: keeps it, drops it, gives it an equal summary that prints
# apart (ints and floats swapped), or another one.
_EDITS = st.sampled_from(["keep", "drop", "retype"]) | _SHARD_SUMMARIES


def _retyped(summary: catalog.Summary) -> catalog.Summary:
    return [float(v) if type(v) is int else int(v) if type(v) is float else v for v in summary]


@settings(max_examples=300, deadline=None)
@given(st.lists(_SHARD_SUMMARIES, max_size=8), st.data())
def test_the_view_after_a_write_is_the_merge_of_the_whole_shard_to_the_byte(held, data) -> None:
    """A write's view, merged from the view before when the write only added items, prints as the merge
    of all the shard's items does, whatever the write did to the items it held."""
    import orjson
    old = {f"i{k}": s for k, s in enumerate(held)}
    only_adds = data.draw(st.booleans(), label="only adds")  # else most writes would touch a held item
    items: dict[str, catalog.Summary] = {}
    for iid, summary in old.items():
        edit = "keep" if only_adds else data.draw(_EDITS, label=iid)
        if edit != "drop":
            items[iid] = summary if edit == "keep" else _retyped(summary) if edit == "retype" else edit
    items |= {f"n{k}": s for k, s in enumerate(data.draw(st.lists(_SHARD_SUMMARIES, max_size=4), label="added"))}
    doc = catalog.empty_shard("dataset", "3f") | {catalog.ITEMS_FIELD: old, catalog.REV_FIELD: 5}
    new = doc | {catalog.ITEMS_FIELD: items, catalog.REV_FIELD: 6}

    after = catalog.ShardView.of(new, since=(doc, catalog.ShardView.of(doc)))
    assert after == catalog.ShardView.of(new)
    assert orjson.dumps(after.summary) == orjson.dumps(catalog.merge(items.values()))
