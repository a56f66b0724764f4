"""Packing a bulk load's segments (``SearchIndex.optimize`` past ``max_rows``) and segment format 3:
the packed index answers as the segments it packs did, in bounded memory, without decoding an item,
while readers and writers race it; format-2 segments are still served."""
from __future__ import annotations

import json
import struct
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.stac import index as index_module
from chalicelib.stac import table as table_module
from chalicelib.stac.api import StacApi
from chalicelib.stac.index import MANIFEST, SEGMENT_PREFIX, SearchIndex
from chalicelib.stac.table import MAGIC
from chalicelib.store import ObjectStore

from tests.helpers.stores import InstrumentedStore
from tests.helpers.synthetic import make_items

BASE = "http://localhost/stac"
QUERIES: list[dict[str, Any]] = [
    {"limit": 50},
    {"bbox": [-10, 35, 30, 60], "limit": 40},
    {"bbox": [-180, -90, 0, 90], "datetime": "2020-01-01T00:00:00Z/..", "limit": 30},
    {"collections": ["dataset"], "limit": 25},
    {"q": "model", "limit": 20},
    {"filter-lang": "cql2-json", "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]}, "limit": 20},
    {"sortby": [{"field": "id", "direction": "asc"}], "limit": 20},
]


def _header(store: ObjectStore, key: str) -> dict[str, Any]:
    body = store.get(key).body
    assert body[:len(MAGIC)] == MAGIC
    (size,) = struct.unpack("<I", body[len(MAGIC):len(MAGIC) + 4])
    return json.loads(body[len(MAGIC) + 4:len(MAGIC) + 4 + size])  # type: ignore[no-any-return]


def _segment_format(store: ObjectStore, key: str) -> int:
    return int(_header(store, key)["format"])


def _answers(store: ObjectStore) -> list[tuple[list[str], Any]]:
    """Each query's ids in order and its match count, from a cold reader; and every id paged in the
    default order, 100 at a time."""
    api = StacApi(store)
    out = []
    for body in QUERIES:
        doc = json.loads(api.search_post(BASE, body))
        out.append(([f["id"] for f in doc["features"]], doc.get("numberMatched")))
    paged, params = [], {"limit": ["100"]}
    while True:
        doc = json.loads(api.search_get(BASE, params))
        paged.extend(f["id"] for f in doc["features"])
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        if not nxt:
            break
        params = {"limit": ["100"], "token": [nxt[0].rsplit("token=", 1)[1]]}
    out.append((paged, len(paged)))
    return out


def _bulk_load(store: ObjectStore, items: list[dict[str, Any]], batch: int) -> None:
    index = SearchIndex(store)
    for lo in range(0, len(items), batch):
        index.add(items[lo:lo + batch], [], compact=False)


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(index_module, "SEGMENT_ROWS", 1000)
    return 1000


def test_a_packed_bulk_load_answers_like_the_segments_it_packs(store: ObjectStore, small_segments: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    items = make_items(1500)
    _bulk_load(store, items, 300)  # 300 rows: each segment's bodies under a dictionary of its own
    assert len(store.get_json(MANIFEST)["segments"]) == 5
    before = _answers(store)

    def refuse(*_: Any) -> Any:
        raise AssertionError("packing a bulk load decodes nothing")
    monkeypatch.setattr(table_module.Codec, "decode", refuse)
    monkeypatch.setattr(table_module.Codec, "trained", refuse)
    monkeypatch.setattr(table_module, "_unpack", refuse)
    SearchIndex(store).optimize(max_rows=500)
    monkeypatch.undo()
    segments = sorted(store.get_json(MANIFEST)["segments"], key=lambda seg: seg["count"])
    assert [seg["count"] for seg in segments] == [600, 900]
    assert {_segment_format(store, seg["key"]) for seg in segments} == {3}
    assert len(_header(store, segments[1]["key"])["codecs"]["bodies"]) == 3, "each run keeps its dictionary"
    assert sorted(store.get_json(MANIFEST)["disjoint"]) == sorted(seg["key"] for seg in segments), \
        "certified to share no item: a cold reader joins them without sorting every id"
    assert _answers(store) == before
    assert len(before[-1][0]) == len(items)


def test_a_bulk_load_into_a_packed_index_packs_only_its_own_segments(store: ObjectStore, small_segments: int) -> None:
    items = make_items(2700)
    _bulk_load(store, items[:2400], 300)
    SearchIndex(store).optimize(max_rows=500)
    first = {seg["key"] for seg in store.get_json(MANIFEST)["segments"]}
    assert sorted(seg["count"] for seg in store.get_json(MANIFEST)["segments"]) == [600, 900, 900]
    _bulk_load(store, items[2400:], 100)  # a second load: 3 small segments next to 3 packed ones
    SearchIndex(store).optimize(max_rows=500)
    segments = store.get_json(MANIFEST)["segments"]
    assert first <= {seg["key"] for seg in segments}, \
        "segments past half the bound are not rewritten (600 + 300 would fit in 1,000)"
    assert sorted(seg["count"] for seg in segments) == [300, 600, 900, 900]
    assert len(_answers(store)[-1][0]) == len(items)


def test_an_overlapping_run_is_merged_with_its_newest_versions(store: ObjectStore, small_segments: int) -> None:
    items = make_items(900)
    _bulk_load(store, items, 300)
    index = SearchIndex(store)
    changed = [dict(it, properties=dict(it["properties"], platform="again")) for it in items[:99]]
    index.add(changed, [(items[500]["collection"], items[500]["id"])], compact=False)
    index.optimize(max_rows=500)
    segments = store.get_json(MANIFEST)["segments"]
    assert [seg["count"] for seg in segments] == [900]  # 899 rows and a tombstone
    assert store.get_json(MANIFEST)["disjoint"] == [], "a segment with a tombstone is not certified"
    got = {(it["collection"], it["id"]): it for it in
           (t.item(r) for t, alive in SearchIndex(store).snapshot().parts for r in range(t.n) if alive[r])}
    assert len(got) == 899
    assert (items[500]["collection"], items[500]["id"]) not in got
    assert all(got[(it["collection"], it["id"])]["properties"]["platform"] == "again" for it in items[:99])


def test_compaction_never_merges_past_the_segment_bound(store: ObjectStore, small_segments: int) -> None:
    items = make_items(1840)
    _bulk_load(store, items[:1800], 300)
    SearchIndex(store).optimize(max_rows=500)
    packed = {seg["key"] for seg in store.get_json(MANIFEST)["segments"]}
    assert len(packed) == 2  # 900 rows each, one level up
    writer = SearchIndex(store, fanout=2)
    for lo in range(1800, 1840, 10):  # each add merges by size tiers: 2 segments of a level make one
        writer.add(items[lo:lo + 10], [])
    segments = store.get_json(MANIFEST)["segments"]
    assert packed <= {seg["key"] for seg in segments}, "two 900-row segments would merge past 1,000 rows"
    assert sorted(seg["count"] for seg in segments) == [40, 900, 900]


def _pack_peak(store: ObjectStore) -> int:
    tracemalloc.start()
    try:
        SearchIndex(store).optimize(max_rows=500)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_packing_holds_one_run_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.store.local import LocalStore
    items = make_items(4000)
    peaks = {}
    for rows in (1000, 4000):
        store = LocalStore(tmp_path / str(rows), fsync=False)
        _bulk_load(store, items, 250)
        stored = sum(o.size for o in store.list(SEGMENT_PREFIX))
        monkeypatch.setattr(index_module, "SEGMENT_ROWS", rows)
        peaks[rows] = _pack_peak(store)
        assert len(store.get_json(MANIFEST)["segments"]) == 4000 // rows
    assert peaks[4000] > stored, "packing all in one run holds them all"
    assert peaks[1000] < peaks[4000] / 3, "runs of a quarter of the rows: about a quarter of the memory"


def test_a_reader_racing_a_pack_keeps_answering_and_reloads(store: ObjectStore, small_segments: int) -> None:
    items = make_items(1500)
    _bulk_load(store, items, 300)
    reader = SearchIndex(store)
    before = reader.snapshot()
    writer = SearchIndex(store, grace=0.0)
    writer.optimize(max_rows=500)  # retires the segments the reader reads lazily; grace 0: deleted
    assert before.count == len(items)
    after = reader.snapshot()
    assert after.parts[0][0] is not before.parts[0][0]
    assert sorted(t.item(r)["id"] for t, alive in after.parts for r in range(t.n) if alive[r]) == \
        sorted(it["id"] for it in items)


def test_a_segment_added_while_a_pack_swaps_is_kept(store: ObjectStore, small_segments: int) -> None:
    items = make_items(1300)
    _bulk_load(store, items[:1200], 300)
    packer_store = InstrumentedStore(store)
    held = packer_store.pause("before", "PUT", lambda call: call.key == MANIFEST, thread="packer")
    packer = threading.Thread(target=SearchIndex(packer_store).optimize, kwargs={"max_rows": 500}, name="packer")
    packer.start()
    assert held.reached.wait(20)
    SearchIndex(store).add(items[1200:], [], compact=False)  # lands between the pack's read and its swap
    held.release.set()
    packer.join(20)
    assert not packer.is_alive()
    segments = store.get_json(MANIFEST)["segments"]
    assert sorted(seg["count"] for seg in segments) == [100, 300, 900]
    assert store.get_json(MANIFEST)["disjoint"] == [], "the added segment was not checked by the pack"
    assert packer_store.lost[MANIFEST] == 1, "the first swap lost to the add, the second one landed"
    live = {seg["key"] for seg in segments} | {key for key, _ in store.get_json(MANIFEST)["retired"]}
    assert {o.key for o in store.list(SEGMENT_PREFIX)} == live, "no orphan segment"
    assert len(_answers(store)[-1][0]) == len(items)


def test_a_pack_whose_runs_were_merged_meanwhile_drops_its_output(store: ObjectStore, small_segments: int) -> None:
    items = make_items(900)
    _bulk_load(store, items, 300)
    packer_store = InstrumentedStore(store)
    held = packer_store.pause("before", "PUT", lambda call: call.key == MANIFEST, thread="packer")
    packer = threading.Thread(target=SearchIndex(packer_store).optimize, kwargs={"max_rows": 500}, name="packer")
    packer.start()
    assert held.reached.wait(20)
    SearchIndex(store).optimize(max_rows=500)  # another packer wins
    held.release.set()
    packer.join(20)
    segments = store.get_json(MANIFEST)["segments"]
    assert [seg["count"] for seg in segments] == [900]
    live = {seg["key"] for seg in segments} | {key for key, _ in store.get_json(MANIFEST)["retired"]}
    assert {o.key for o in store.list(SEGMENT_PREFIX)} == live, "the loser's segment is deleted"


# -- segment format 2 (one body codec per segment) is still served --------------------------------------
V2 = Path(__file__).parent / "data" / "index-v2"  # written by commit ba0cacd: make_items(400, seed=11),
# added as 300 then 100 items, the second add also deleting item 5


def test_an_index_written_in_segment_format_2_is_served_and_rewritten_in_format_3(store: ObjectStore) -> None:
    for path in sorted(V2.rglob("*")):
        if path.is_file():
            store.put("stac-index/" + path.relative_to(V2).as_posix(), path.read_bytes())
    old = store.get_json(MANIFEST)["segments"]
    assert {_segment_format(store, seg["key"]) for seg in old} == {2}
    items = make_items(400, seed=11)
    expected = {it["id"]: {k: v for k, v in it.items() if k != "links"} for i, it in enumerate(items) if i != 5}
    served = {}
    for t, alive in SearchIndex(store).snapshot().parts:
        for r in range(t.n):
            if alive[r]:
                item = t.item(r)
                served[item["id"]] = {k: v for k, v in item.items() if k != "links"}
    assert served == expected
    more = make_items(10, seed=12, prefix="more")
    writer = SearchIndex(store)
    writer.add(more, [], compact=False)
    writer.optimize()
    segments = store.get_json(MANIFEST)["segments"]
    assert [_segment_format(store, seg["key"]) for seg in segments] == [3]
    assert len(_answers(store)[-1][0]) == len(expected) + len(more)


# -- the general merge: only rows sharing an id hash are decided one by one -------------------------------
_records = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5), st.integers(0, 3),
                              st.sampled_from(["k0", "k1", "k2"]), st.booleans()), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(_records, min_size=2, max_size=4))
def test_a_merge_keeps_the_winning_version_of_each_item(groups: list[list[tuple[str, int, int, str, bool]]]) -> None:
    from chalicelib.stac.index import _merge, _part, latest
    from chalicelib.stac.table import Record

    def record(coll: str, i: int, version: int, log_key: str, deleted: bool) -> Record:
        item = None if deleted else {"id": f"item-{i}", "collection": coll, "properties": {"v": [version, log_key]}}
        return Record(coll, f"item-{i}", version, log_key, item)
    parts = [_part([record(*r) for r in group]) for group in groups]
    table, tombs = _merge(parts)
    # What each part holds, in part order (rows, then tombstones), through the reference ``latest``.
    held = []
    for t, ts in parts:
        held += [Record(coll, i, int(t.version[r]), t.log_keys[r], t.item(r))
                 for r, (coll, i) in enumerate(zip(t.coll_list, t.id_list))]
        held += [Record(c, i, v, k, None) for (c, i), (v, k) in ts.items()]
    expected = latest(held)
    live = {(table.coll_list[r], table.id_list[r]): (int(table.version[r]), table.log_keys[r]) for r in range(table.n)}
    assert live == {key: (rec.version, rec.log_key) for key, rec in expected.items() if not rec.deleted}
    assert tombs == {key: (rec.version, rec.log_key) for key, rec in expected.items() if rec.deleted}
    assert table.n == len(live), "no item twice"
