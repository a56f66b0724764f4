"""The STAC search index in the object store: a change log compacted into immutable segments.

Layout (all under ``stac-index/``):

- ``log/<ns time>-<random>.json``: one create-only object per ``apply()`` call, holding the full
  upserted items and the deletes, each with a version. Publishing is one PUT, whatever the
  catalog size.
- ``segments/<uuid>.seg``: immutable, merged item versions: the live items as a persisted
  ``Table`` (format 3, see ``Table.to_bytes``: a reader loads its core with ranged GETs of at most
  4 MB side by side and the rest on first use, without parsing any item; item bodies are kept in
  one or more parts, each compressed with its own dictionary) and the tombstones. Format 2 (one
  dictionary per segment) and ``.npz`` segments (format 1, read whole) are still served; merges and
  rebuilds write format 3.
- ``manifest.json`` (compare-and-swap): the segment list, the last log key the segments cover
  (``floor``), a ``generation`` that changes only when ``rebuild()`` replaces the content,
  ``rebuilt``: per collection ("" for all), the version before which a rebuild replaced everything,
  and ``disjoint``: segment keys a pack checked to share no item and hold no tombstone (a reader
  whose segments are all listed joins them without checking; writers that add segments leave it
  as it is, since it names keys, not "all segments").

A version is the time (ns) at which the writer observed that state of the store: the
publisher re-reads each item key after the change it was told about, so the latest
observation is the store's current state, whatever the item's own fields say (an item
deleted and re-uploaded unchanged is searchable again). Per item, the highest
(version, log key) wins, so replays, duplicates and out-of-order deliveries converge.

Compaction (by the ``apply()`` that sees too many pending entries) merges settled log entries
into a level-0 segment and merges ``fanout`` segments of one level into one of the next
(size-tiered, never past ``SEGMENT_ROWS`` rows: bigger segments are final), then swaps the
manifest; bulk loads (``add()``) write a segment per batch and ``optimize()`` merges them: all
into one for a small load, else packed into segments of up to ``SEGMENT_ROWS`` rows (131,072)
and ``PACK_BYTES`` (32 MB), a group at a time, so memory stays that of one group. A bulk load's
segments share no item, so packing them is a concatenation: no item body or property is decoded,
bodies keep their compression, rows stay in runs (each in the default order). A 1M-item load
leaves 8 segments, which a cold reader opens with ~16 ranged GETs side by side;
losers of the swap delete their own output. An entry is "settled" once it is older than
``settle`` seconds, and a writer whose PUT was slower than ``settle / 2``, or whose key the
floor has already passed, writes its entry again under a new key, so compaction never skips an
entry that was still in flight (clocks are assumed synchronised to better than ``settle / 2``).

A rebuild (``stacflow reindex``) never touches the log: it writes the items it read as one
segment, keeps whatever the old segments hold that is newer than its start, and records its
start in ``rebuilt``, so log entries of publishes that raced it still apply on top while older
ones (and older segment rows) are superseded by the rebuilt content wherever they are merged or
read.

Every retry loop (a lost manifest swap, a slow log write) backs off with jitter and gives up
with ``Contention`` after a bounded time, so an event handler fails and is redelivered instead
of spinning.

Readers keep the merged segments as a columnar base table (parts of it still in the segment
objects until first used) and the log entries past the floor as a small delta table, refreshed per ``snapshot()`` with one LIST of the log and one
conditional GET of the manifest; the delta is folded into the base when it grows. What a reader
remembers of log keys is bounded by the entries past the floor.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from chalicelib.store import NotFound, NotModified, ObjectInfo, ObjectStore, PreconditionFailed
from chalicelib.store.contention import DEFAULT, Backoff, Contention, TryAgain

from .table import BIG, PIECE, Codec, Coded, Record, Table, id_hash, parallel, release_memory

PREFIX = "stac-index/"
LOG_PREFIX = PREFIX + "log/"
SEGMENT_PREFIX = PREFIX + "segments/"
MANIFEST = PREFIX + "manifest.json"
ALL = ""  # the ``rebuilt`` entry of a rebuild of every collection
# A merge writes segments of at most this many rows (and of about ``PACK_BYTES`` stored at most when
# packing a bulk load's): what one merge holds in memory, and what a cold reader opens side by side.
SEGMENT_ROWS = 1 << 17
PACK_BYTES = 32 << 20


def _empty_manifest() -> dict[str, Any]:
    return {"generation": "", "floor": "", "segments": [], "retired": [], "rebuilt": {}}


def _log_key(ns: int) -> str:
    return f"{LOG_PREFIX}{ns:020d}-{uuid.uuid4().hex[:16]}.json"


def _log_position(ns: int) -> str:
    """A LIST ``start_after`` that sorts before every log key written at or after ``ns``."""
    return f"{LOG_PREFIX}{max(ns, 0):020d}"


def _key_time(key: str) -> int:
    return int(key[len(LOG_PREFIX):len(LOG_PREFIX) + 20])


def _check_item(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"] \
            or not isinstance(item.get("collection"), str) or not item["collection"]:
        raise ValueError("an indexed item needs a string 'id' and 'collection'")
    return item


def latest(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The winning version of each item."""
    out: dict[tuple[str, str], Record] = {}
    for rec in records:
        cur = out.get(rec.key)
        if cur is None or rec.beats(cur.version, cur.log_key):
            out[rec.key] = rec
    return out


Tombs = dict[tuple[str, str], tuple[int, str]]  # deleted item -> (version, log key)
Part = tuple[Table, Tombs]  # a set of winning item versions: live rows and tombstones


def _part(records: Iterable[Record]) -> Part:
    winners = latest(records)
    tombs = {k: (r.version, r.log_key) for k, r in winners.items() if r.deleted}
    return Table.from_records([r for r in winners.values() if not r.deleted]), tombs


def _merge(parts: Sequence[Part], disjoint: bool | None = None) -> Part:
    """The winning version of each item over ``parts`` (no item is parsed); ``disjoint``: whether
    ``_disjoint(parts)``, when the caller knows."""
    if len(parts) == 1:
        return parts[0]
    if _disjoint(parts) if disjoint is None else disjoint:
        # A bulk load's segments: every row wins, tables stay as read (lazily).
        return Table.concat([(t, np.arange(t.n)) for t, _ in parts]), {}
    # Only rows whose id hash another row or a tombstone shares can lose: the others win as they are
    # (one sort of the hashes, not a Python step per row). Contested ones are decided in part order.
    every = np.concatenate([t.id_hashes for t, _ in parts])
    tomb_hashes = np.array([id_hash(i) for _, tombs in parts for _, i in tombs], dtype=np.int64)
    _, inverse, counts = np.unique(every, return_inverse=True, return_counts=True)
    contested = (counts[inverse.reshape(-1)] > 1) | np.isin(every, tomb_hashes)
    best: dict[tuple[str, str], tuple[int, str, int, int]] = {}  # key -> version, log key, part, row (-1: tomb)
    starts = np.cumsum([0] + [t.n for t, _ in parts])
    for p, (table, tombs) in enumerate(parts):
        for row in np.flatnonzero(contested[starts[p]:starts[p + 1]]).tolist():
            key, version, log_key = (table.coll_list[row], table.id_list[row]), int(table.version[row]), table.log_keys[row]
            cur = best.get(key)
            if cur is None or (version, log_key) > (cur[0], cur[1]):
                best[key] = (version, log_key, p, row)
        for key, (version, log_key) in tombs.items():
            cur = best.get(key)
            if cur is None or (version, log_key) > (cur[0], cur[1]):
                best[key] = (version, log_key, p, -1)
    won: list[list[int]] = [[] for _ in parts]
    merged_tombs: Tombs = {}
    for key, (version, log_key, p, row) in best.items():
        if row < 0:
            merged_tombs[key] = (version, log_key)
        else:
            won[p].append(row)
    rows = [np.sort(np.concatenate([np.flatnonzero(~contested[starts[p]:starts[p + 1]]),
                                    np.array(won[p], dtype=np.intp)])) for p in range(len(parts))]
    return Table.concat([(t, r) for (t, _), r in zip(parts, rows)]), merged_tombs


def _disjoint(parts: Sequence[Part]) -> bool:
    """Whether no item is in two parts and there are no tombstones (then merging keeps every row). Ids
    are compared by hash: one id in two collections, or a collision, only sends the merge down the
    general path."""
    if any(tombs for _, tombs in parts):
        return False
    hashes = np.concatenate([t.id_hashes for t, _ in parts])
    return len(np.unique(hashes)) == len(hashes)


def _certify(segments: Sequence[dict[str, Any]], hashes: Mapping[str, np.ndarray]) -> list[str]:
    """The manifest's ``disjoint``: the keys of ``segments`` if they are known to share no item and hold
    no tombstone (a cold reader then joins them without checking), else none."""
    if any(seg["key"] not in hashes for seg in segments):
        return []
    every = np.concatenate([hashes[seg["key"]] for seg in segments]) if segments else np.zeros(0, dtype=np.int64)
    return [seg["key"] for seg in segments] if len(np.unique(every)) == len(every) else []




def encode_part(items: Iterable[tuple[dict[str, Any], tuple[float, float, float]]],
                dictionaries: dict[str, Codec] | None = None) -> bytes:
    """Index rows of ``items`` (each with its times as ``normalize_timed`` gives them; the later copy of
    an item winning) as a segment to be stamped by ``SearchIndex.add_encoded``: a bulk load builds them
    in the worker processes that parse the items, so the publishing process neither parses the items
    again nor builds their columns. ``dictionaries``: compression dictionaries kept from one call to the next
    (``Table.to_bytes``)."""
    winners: dict[tuple[str, str], tuple[dict[str, Any], tuple[float, float, float]]] = {}
    for item, times in items:
        _check_item(item)
        winners.pop((item["collection"], item["id"]), None)
        winners[item["collection"], item["id"]] = item, times
    table = Table.from_records([Record(c, i, 0, "", item) for (c, i), (item, _) in winners.items()],
                               [times for _, times in winners.values()])
    # from_records put the rows in the default search order: not sorted a second time to find that out.
    return _encode_segment((table, {}), ordered=False, dictionaries=dictionaries)[0]


def _stamped(body: bytes, drop: Collection[tuple[str, str]], version: int, log_key: str) -> Part:
    """An ``encode_part`` segment without the items ``drop``, its rows at ``version`` / ``log_key``
    (columns kept as encoded: no item is parsed)."""
    table, _ = Table.from_bytes(body)
    if drop:
        keep = np.ones(table.n, dtype=bool)
        for key in drop:
            row = table.row_of(key)
            if row is not None:
                keep[row] = False
        table = Table.concat([(table, np.flatnonzero(keep))])
    return Table(raw=table.raw, links=table.links, ids=table.id_list, colls=table.coll_list,
                 version=np.full(table.n, version, dtype=np.int64),
                 log_keys=Coded([log_key], np.zeros(table.n, dtype=np.int32)), box=table.box, times=table.times,
                 props=table.props, has_geom=table.has_geom, geoms=table.geoms, hashes=table.id_hashes), {}


def _ties(n: int) -> list[str]:
    """``n`` log keys, in increasing order, that sort after every log entry already written."""
    first = _log_key(time.time_ns())
    stem = first[:-len(".json")]
    return [f"{stem}-{i:06d}.json" for i in range(n)]


def _encode_segment(part: Part, ordered: bool = True, dictionaries: dict[str, Codec] | None = None) \
        -> tuple[bytes, int]:
    table, tombs = part
    return table.to_bytes({"tombs": [[c, i, v, k] for (c, i), (v, k) in tombs.items()]}, ordered=ordered,
                          dictionaries=dictionaries)


def _packs(segments: Sequence[dict[str, Any]], sizes: Mapping[str, int]) -> list[list[dict[str, Any]]]:
    """Groups of segments to merge into one each, in manifest order: as many as fit in ``SEGMENT_ROWS`` rows and
    ``PACK_BYTES`` stored (a segment past half of either bound stays as it is); groups of one are left out."""
    groups: list[list[dict[str, Any]]] = [[]]
    rows = size = 0
    for seg in segments:
        n, b = seg["count"], sizes.get(seg["key"], PACK_BYTES)
        if groups[-1] and (rows + n > SEGMENT_ROWS or size + b > PACK_BYTES):
            groups.append([])
            rows = size = 0
        if 2 * n > SEGMENT_ROWS or 2 * b > PACK_BYTES:
            continue  # half full already: rewriting it to add a little would read and write all its rows
        groups[-1].append(seg)
        rows, size = rows + n, size + b
    return [g for g in groups if len(g) > 1]


def _tombs(extra: dict[str, Any]) -> Tombs:
    return {(c, i): (v, k) for c, i, v, k in extra["tombs"]}


def _decode_segment(body: bytes) -> Part:
    table, extra = Table.from_bytes(body)
    return table, _tombs(extra)


def _decode_log(key: str, body: bytes) -> list[Record]:
    doc = json.loads(body)
    out = [Record(item["collection"], item["id"], version, key, item) for version, item in doc["upserts"]]
    out.extend(Record(coll, item_id, version, key, None) for coll, item_id, version in doc["deletes"])
    return out


Cutoffs = Mapping[str, int]  # manifest["rebuilt"]: collection ("" = all) -> versions below it are replaced


def _cutoff(cutoffs: Cutoffs, collection: str) -> int:
    return max(cutoffs.get(ALL, -1), cutoffs.get(collection, -1))


def _current(records: Iterable[Record], cutoffs: Cutoffs) -> list[Record]:
    """``records`` without those a rebuild has replaced."""
    return [r for r in records if r.version >= _cutoff(cutoffs, r.collection)] if cutoffs else list(records)


def _supersede(part: Part, cutoffs: Cutoffs) -> Part:
    """``part`` without the rows and tombstones a rebuild has replaced."""
    table, tombs = part
    if not cutoffs:
        return part
    floor = np.full(table.n, cutoffs.get(ALL, -1), dtype=np.int64)
    for coll, cut in cutoffs.items():
        if coll != ALL:
            mask = table.collection_mask([coll])
            floor[mask] = np.maximum(floor[mask], cut)
    return (Table.concat([(table, np.flatnonzero(table.version >= floor))]),
            {k: v for k, v in tombs.items() if v[0] >= _cutoff(cutoffs, k[0])})


def _rebuilt(cutoffs: Cutoffs, collection: str | None, cut: int) -> dict[str, int]:
    """The cutoffs after a rebuild of ``collection`` (None: all) that replaced versions below ``cut``."""
    if collection is None:
        out = {c: v for c, v in cutoffs.items() if v > cut}
        out[ALL] = max(cut, cutoffs.get(ALL, -1))
        return out
    out = dict(cutoffs)
    out[collection] = max(cut, cutoffs.get(collection, -1))
    return out


@dataclass(frozen=True)
class Snapshot:
    """An immutable searchable view: (table, live-row mask) parts, base first."""

    parts: tuple[tuple[Table, np.ndarray], ...]
    generation: str

    @property
    def count(self) -> int:
        return sum(int(alive.sum()) for _, alive in self.parts)


class SearchIndex:
    def __init__(self, store: ObjectStore, *, settle: float = 10.0, compact_entries: int = 64,
                 compact_bytes: int = 8 << 20, fanout: int = 4, delta_max: int = 500,
                 grace: float = 3600.0, backoff: Backoff = DEFAULT) -> None:
        self.store = store
        self.settle_ns = int(settle * 1e9)
        self.skew_ns = self.settle_ns // 2  # how far writers' clocks may disagree
        self.backoff = backoff
        self.compact_entries = compact_entries
        self.compact_bytes = compact_bytes
        self.fanout = fanout
        self.delta_max = delta_max
        self.grace = grace
        self._lock = threading.Lock()
        self._lazy: set[str] = set()  # segments the base table still reads from (ranged GETs on first use)
        self._reset_reader(_empty_manifest(), None, Table.from_records([]), {})

    # == writers ============================================================================
    def apply(self, upserts: Sequence[dict[str, Any]], deletes: Sequence[tuple[str, str]], *,
              version: int | None = None) -> None:
        """Persist changes: one create-only log object, plus compaction when the log is long.

        ``version`` (ns; default now) is when the caller observed these items present and these
        (collection, id) absent in the store: it orders them against other writers' changes.
        """
        ups, dels = self._entries(upserts, deletes)
        if not ups and not dels:
            return
        stamp = time.time_ns() if version is None else int(version)
        body = json.dumps({"upserts": [[stamp, item] for item in ups], "deletes": [[c, i, stamp] for c, i in dels]},
                          separators=(",", ":"), ensure_ascii=False).encode()

        def write() -> tuple[dict[str, Any], str | None]:
            started = time.time_ns()
            key = _log_key(started)
            self.store.put(key, body, if_none_match=True, content_type="application/json")
            if time.time_ns() - started > self.skew_ns:
                raise TryAgain  # too slow to be sure compaction saw it: write it again, newer
            manifest, etag = self._read_manifest()
            if manifest["floor"] >= key:  # a compaction passed over this entry
                self.store.delete(key)
                raise TryAgain
            return manifest, etag

        manifest, etag = self.backoff.run(write, "writing a search index log entry")
        # The oldest pending entries only: one LIST page however far compaction lags behind.
        pending = list(self.store.list(LOG_PREFIX, start_after=manifest["floor"] or None,
                                       limit=4 * self.compact_entries))
        self._maybe_compact(manifest, etag, pending)

    def add(self, upserts: Sequence[dict[str, Any]], deletes: Sequence[tuple[str, str]], *,
            version: int | None = None, compact: bool = True) -> None:
        """Bulk ``apply``: the changes go straight into a new segment (no log entry to compact later).
        ``compact=False``: leave merging segments to later writers (a bulk load's memory stays that of
        one batch; merging holds every row of the merged segments)."""
        ups, dels = self._entries(upserts, deletes)
        if not ups and not dels:
            return
        stamp = time.time_ns() if version is None else int(version)
        # A log key that sorts after every entry already written: equal versions still order by write.
        tie = _log_key(time.time_ns())
        part = _part([Record(it["collection"], it["id"], stamp, tie, it) for it in ups]
                     + [Record(c, i, stamp, tie, None) for c, i in dels])
        self._add_parts([part], compact=compact)

    def add_encoded(self, parts: Sequence[tuple[bytes, Collection[tuple[str, str]]]], *, version: int,
                    compact: bool = True) -> None:
        """Bulk ``add`` of items whose rows were built elsewhere (``encode_part``, in the worker process
        that parsed them): each (rows, items to leave out) becomes one segment, stamped here with
        ``version`` (taken after the items were written) and a tie-breaker that ranks a later part above
        an earlier one, so the later copy of an item in several parts wins."""
        if not parts:
            return
        ties = _ties(len(parts))
        self._add_parts([_stamped(body, drop, version, tie) for (body, drop), tie in zip(parts, ties)],
                        compact=compact)

    def _add_parts(self, parts: list[Part], *, compact: bool) -> None:
        """Each part as a level-0 segment, all in one manifest swap."""
        written: list[tuple[Any, list[dict[str, Any]]]] = []  # (cutoffs they were filtered by, segments)

        def swap() -> None:
            manifest, etag = self._read_manifest()
            cutoffs = manifest.get("rebuilt", {})
            if not written or written[0][0] != cutoffs:  # first round, or a rebuild came between
                self._drop([seg for _, segs in written for seg in segs])
                written[:] = [(cutoffs, [self._write_segment(_supersede(part, cutoffs), level=0)
                                         for part in parts if part[0].n or part[1]])]
            if not written[0][1]:
                return
            if not self._swap_manifest(dict(manifest, segments=manifest["segments"] + written[0][1]), etag, []):
                raise TryAgain

        try:
            self.backoff.run(swap, "adding to the search index")
        except Contention:
            self._drop([seg for _, segs in written for seg in segs])
            raise
        if compact:
            manifest, etag = self._read_manifest()
            self._compact_segments(manifest, etag, [])

    def optimize(self, max_rows: int | None = None) -> None:
        """After a bulk load: fewer segments, for the fastest cold start; best effort. Every segment is
        merged into one (that merge holds them all in memory) if they hold at most ``max_rows`` rows
        (None: any number); else runs of segments are packed into segments of at most ``SEGMENT_ROWS``
        rows (``_pack``: memory bounded by one run)."""
        manifest, etag = self._read_manifest()
        if len(manifest["segments"]) <= 1:
            return
        if max_rows is None or sum(seg["count"] for seg in manifest["segments"]) <= max_rows:
            self._compact_segments(manifest, etag, [], everything=True)
        else:
            self._pack(manifest)

    def _pack(self, manifest: dict[str, Any]) -> None:
        """Merge runs of segments (``_packs``), one run at a time: a bulk load's segments share no item,
        so their merge is a concatenation that decodes no item body or property and keeps their
        compression (rows stay in runs, each in the default order); a run with shared items is merged
        as compaction merges. Then one manifest swap replaces every run still current."""
        sizes = {o.key: o.size for o in self.store.list(SEGMENT_PREFIX)}
        done: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []  # (run, its merged segment)
        hashes: dict[str, np.ndarray] = {}  # id hashes of segments known to hold no tombstone
        runs = _packs(manifest["segments"], sizes)
        for run in runs:
            try:
                parts = [self._read_segment(seg["key"]) for seg in run]
            except NotFound:
                break  # retired and expired meanwhile: the manifest has moved on
            disjoint = _disjoint(parts)
            merged = _merge(parts, disjoint)
            del parts
            out = self._write_segment(merged, level=max(seg["level"] for seg in run) + 1,
                                      merges=[seg["key"] for seg in run], ordered=not disjoint)
            done.append((run, out))
            if not merged[1]:
                hashes[out["key"]] = merged[0].id_hashes
            del merged
            release_memory()
        if not done:
            return
        packed = {seg["key"] for run in runs for seg in run}
        others = [seg for seg in manifest["segments"] if seg["key"] not in packed]
        try:
            for seg, (table, tombs) in zip(others, self._open_segments(others, set())):
                if not tombs:
                    hashes[seg["key"]] = table.id_hashes
        except NotFound:
            pass  # the manifest has moved on: the swap finds out

        def swap() -> None:
            current, etag = self._read_manifest()
            keys = {seg["key"] for seg in current["segments"]}
            stale = [out for run, out in done if not all(seg["key"] in keys for seg in run)]
            self._drop(stale)  # a run another writer merged or replaced meanwhile
            done[:] = [(run, out) for run, out in done if out not in stale]
            if not done:
                return
            merged = {seg["key"] for run, _ in done for seg in run}
            segments = [seg for seg in current["segments"] if seg["key"] not in merged] + [out for _, out in done]
            new = dict(current, segments=segments, disjoint=_certify(segments, hashes),
                       retired=self._retire(current, [seg for run, _ in done for seg in run]))
            if not self._swap_manifest(new, etag, []):
                raise TryAgain
            self._cleanup(new, [])

        try:
            self.backoff.run(swap, "packing the search index's segments")
        except Contention:
            self._drop([out for _, out in done])
            raise

    @staticmethod
    def _entries(upserts: Sequence[dict[str, Any]], deletes: Sequence[tuple[str, str]]) \
            -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        ups = [_check_item(item) for item in upserts]
        dels = []
        for entry in deletes:
            if len(entry) != 2 or not all(isinstance(v, str) and v for v in entry):
                raise ValueError("a delete is (collection, id)")
            dels.append((entry[0], entry[1]))
        return ups, dels

    def rebuild(self, items: Iterable[dict[str, Any]], collection: str | None = None, *,
                version: int | None = None) -> int:
        """Replace the index (or one collection's part) with ``items``; returns their count.

        ``version`` (default now) is when the caller started reading ``items`` from the store.
        Changes observed after it, in the log or already merged, still apply on top: a publish
        that lands during a rebuild stays searchable. Everything older (by more than the clock
        skew) in the rebuilt scope is replaced, so items the store no longer holds disappear.
        """
        stamp = time.time_ns() if version is None else int(version)
        fresh = latest(Record(item["collection"], item["id"], stamp, "", item) for item in map(_check_item, items))
        if collection is not None and any(c != collection for c, _ in fresh):
            raise ValueError(f"rebuild of collection {collection!r} got items of another collection")
        part = _part(fresh.values())
        loaded: dict[str, Part] = {}  # segments are immutable: read each once across attempts

        def swap() -> None:
            manifest, etag = self._read_manifest()
            cutoffs = _rebuilt(manifest.get("rebuilt", {}), collection, stamp - self.skew_ns)
            try:
                for seg in manifest["segments"]:
                    if seg["key"] not in loaded:
                        loaded[seg["key"]] = self._read_segment(seg["key"])
            except NotFound:
                raise TryAgain from None  # retired and expired meanwhile: the manifest has moved on
            kept = _supersede(_merge([loaded[s["key"]] for s in manifest["segments"]] or [_part([])]), cutoffs)
            seg = self._write_segment(_merge([kept, part]), level=0)
            new = {"generation": uuid.uuid4().hex, "floor": manifest["floor"], "segments": [seg],
                   "retired": self._retire(manifest, manifest["segments"]), "rebuilt": cutoffs}
            if not self._swap_manifest(new, etag, [seg]):
                raise TryAgain
            self._cleanup(new, [])

        self.backoff.run(swap, "rebuilding the search index")
        return len(fresh)

    # -- compaction ------------------------------------------------------------------------
    def _maybe_compact(self, manifest: dict[str, Any], etag: str | None, pending: list[ObjectInfo]) -> None:
        cutoff = time.time_ns() - self.settle_ns
        ready = [o for o in pending if _key_time(o.key) < cutoff]
        if len(ready) < self.compact_entries and sum(o.size for o in ready) < self.compact_bytes:
            return
        self._compact_segments(manifest, etag, ready)

    def _compact_segments(self, manifest: dict[str, Any], etag: str | None, ready: list[ObjectInfo], *,
                          everything: bool = False) -> None:
        """Merge settled log entries ``ready`` into a level-0 segment, then ``fanout`` segments of one
        level into one of the next (size-tiered; ``everything``: all into one), and swap the manifest."""
        written: list[dict[str, Any]] = []
        if ready:
            try:
                records = [r for o in ready for r in _decode_log(o.key, self.store.get(o.key).body)]
            except NotFound:
                return  # another writer is compacting the same entries
            records = _current(records, manifest.get("rebuilt", {}))
            written.append(self._write_segment(_part(records), level=0, covers=[o.key for o in ready]))
        published = {seg["key"] for seg in manifest["segments"]}
        segments = list(manifest["segments"]) + written
        retired: list[dict[str, Any]] = []
        while True:
            by_level: dict[int, list[dict[str, Any]]] = {}
            for seg in segments:
                # A merge of ``fanout`` segments stays within ``SEGMENT_ROWS``: bigger ones are final.
                if everything or seg["count"] * self.fanout <= SEGMENT_ROWS:
                    by_level.setdefault(seg["level"], []).append(seg)
            full = [lvl for lvl, segs in by_level.items() if len(segs) >= self.fanout]
            if everything and len(segments) > 1:
                group, level = segments, max(by_level) + 1
            elif full:
                group, level = by_level[min(full)][:self.fanout], min(full) + 1
            else:
                break
            try:
                merged = _merge([self._read_segment(seg["key"]) for seg in group])
            except NotFound:
                self._drop(written)
                return
            # Lineage lets readers that hold all inputs adopt the output without reading it:
            # published inputs by key, inputs made in this round by what they came from.
            merges = [k for s in group for k in ([s["key"]] if s["key"] in published else s.get("merges", []))]
            covers = [k for s in group if s["key"] not in published for k in s.get("covers", [])]
            out = self._write_segment(merged, level=level, covers=covers, merges=merges)
            written.append(out)
            segments = [s for s in segments if s not in group] + [out]
            retired.extend(group)
        if not written:
            return
        new = dict(manifest, floor=ready[-1].key if ready else manifest["floor"], segments=segments,
                   retired=self._retire(manifest, [s for s in retired if s in manifest["segments"]]))
        # Intermediate merge outputs that a later merge consumed were never published.
        transient = [s for s in written if s not in segments]
        for seg in transient:
            self.store.delete(seg["key"])
        if self._swap_manifest(new, etag, [s for s in written if s in segments]):
            self._cleanup(new, [o.key for o in ready])

    def _write_segment(self, part: Part, *, level: int, covers: list[str] | None = None,
                       merges: list[str] | None = None, ordered: bool = True) -> dict[str, Any]:
        key = f"{SEGMENT_PREFIX}{uuid.uuid4().hex}.seg"
        body, core = _encode_segment(part, ordered)
        self.store.put(key, body, if_none_match=True, content_type="application/octet-stream")
        # ``core``: a reader's first ranged GET (header, ids, bounds, times...); version-1 entries lack it.
        seg: dict[str, Any] = {"key": key, "count": part[0].n + len(part[1]), "level": level, "core": core}
        if covers is not None:
            seg["covers"] = covers
        if merges is not None:
            seg["merges"] = merges
        return seg

    def _read_segment(self, key: str) -> Part:
        """A whole segment in one GET (writers: a merge reads all of it)."""
        return _decode_segment(self.store.get(key).body)

    def _open_segments(self, segments: list[dict[str, Any]], lazy: set[str]) -> list[Part]:
        """Each segment's core, read side by side in ranged GETs of at most ``PIECE`` bytes (on S3 a GET's
        latency, not its bytes, is what a cold reader waits for), then opened side by side (zstd
        decompresses without holding the GIL). Property columns and item bodies are read with ranged
        GETs when first used. Version-1 segments (no core) are read whole."""
        pieces = [(seg["key"], at, min(PIECE, seg["core"] - at))
                  for seg in segments if seg.get("core") for at in range(0, seg["core"], PIECE)]
        got = dict(zip(pieces, parallel(lambda p: self._fetch(*p), pieces)))

        def open_one(seg: dict[str, Any]) -> Part:
            if not seg.get("core"):
                return self._read_segment(seg["key"])
            key = seg["key"]
            head = b"".join(got.pop((key, at, min(PIECE, seg["core"] - at))) for at in range(0, seg["core"], PIECE))
            table, extra = Table.open(lambda start, length: self._fetch(key, start, length), head)
            lazy.add(key)
            return table, _tombs(extra)
        return parallel(open_one, segments)

    def _fetch(self, key: str, start: int, length: int) -> bytes:
        with self.store.open(key, start=start, length=length) as reader:
            return reader.read()

    def _drop(self, segments: list[dict[str, Any]]) -> None:
        for seg in segments:
            self.store.delete(seg["key"])

    def _retire(self, manifest: dict[str, Any], segments: list[dict[str, Any]]) -> list[list[Any]]:
        now = time.time()
        return list(manifest.get("retired", [])) + [[seg["key"], now] for seg in segments]

    def _swap_manifest(self, new: dict[str, Any], etag: str | None, written: list[dict[str, Any]]) -> bool:
        try:
            if etag is None:
                self.store.put_json(MANIFEST, new, if_none_match=True)
            else:
                self.store.put_json(MANIFEST, new, if_match=etag)
            return True
        except PreconditionFailed:
            self._drop(written)
            return False

    def _cleanup(self, manifest: dict[str, Any], logs: list[str]) -> None:
        """Best effort: merged log entries, and segments retired longer ago than ``grace``."""
        for key in logs:
            self.store.delete(key)
        expired = [k for k, when in manifest.get("retired", []) if time.time() - when > self.grace]
        if expired:
            def drop(doc: dict[str, Any]) -> dict[str, Any]:
                return dict(doc, retired=[r for r in doc.get("retired", []) if r[0] not in expired])
            self.store.update_json(MANIFEST, drop, default=_empty_manifest)
            for key in expired:
                self.store.delete(key)

    def _read_manifest(self) -> tuple[dict[str, Any], str | None]:
        try:
            obj = self.store.get(MANIFEST)
        except NotFound:
            return _empty_manifest(), None
        return obj.json(), obj.etag

    # == readers ============================================================================
    def snapshot(self) -> Snapshot:
        """The current view: one LIST of the log and one conditional GET of the manifest."""
        with self._lock:
            for _ in range(5):
                if self._refresh():
                    break
            return self._snap

    def _reset_reader(self, manifest: dict[str, Any], etag: str | None, base: Table, tombs: Tombs) -> None:
        self._manifest = manifest
        self._etag = etag
        self._known = {seg["key"] for seg in manifest["segments"]}
        self._base = base
        self._tombs = tombs
        self._delta: dict[tuple[str, str], Record] = {}
        self._applied: set[str] = set()  # log keys past the floor already in the view
        self._seen: set[str] = set()  # log keys past the floor in the view (to recognise compactions)
        self._newest = 0
        self._build_snapshot()

    def _refresh(self) -> bool:
        """One refresh round; False when the manifest moved under us and the round must rerun."""
        floor = self._manifest["floor"]
        start = max(floor, _log_position(self._newest - self.settle_ns)) if self._newest else floor
        listed = [o.key for o in self.store.list(LOG_PREFIX, start_after=start or None)]
        manifest: dict[str, Any]
        etag: str | None
        try:
            obj = self.store.get(MANIFEST, if_none_match=self._etag) if self._etag else self.store.get(MANIFEST)
            manifest, etag = obj.json(), obj.etag
        except NotModified:
            manifest, etag = self._manifest, self._etag
        except NotFound:
            manifest, etag = _empty_manifest(), None
        if etag != self._etag:
            if not self._adopt(manifest, etag):
                return False
        changed = False
        for key in listed:
            if key <= self._manifest["floor"] or key in self._applied:
                continue
            try:
                records = _decode_log(key, self.store.get(key).body)
            except NotFound:
                return False  # compacted between our LIST and GET: the manifest has it now
            self._applied.add(key)
            self._seen.add(key)
            self._newest = max(self._newest, _key_time(key))
            for rec in _current(records, self._manifest.get("rebuilt", {})):
                changed |= self._offer(rec)
        self._applied = {k for k in self._applied if not start or k > start}
        if changed:
            if len(self._delta) > self.delta_max:
                self._fold()
            self._build_snapshot()
        return True

    def _adopt(self, manifest: dict[str, Any], etag: str | None) -> bool:
        """Take a new manifest: cheaply if its new segments hold only what we already have."""
        same = manifest["generation"] == self._manifest["generation"] and all(
            seg["key"] in self._known
            or (("covers" in seg or "merges" in seg) and set(seg.get("covers", [])) <= self._seen
                and set(seg.get("merges", [])) <= self._known)
            for seg in manifest["segments"])
        if same:
            # A retired segment is deleted ``grace`` after: the base must not read from it lazily by then.
            kept = {seg["key"] for seg in manifest["segments"]}
            same = self._lazy <= kept
        if same:
            # Later compactions name only segments of this manifest and entries past its floor.
            self._known = {seg["key"] for seg in manifest["segments"]}
            self._seen = {key for key in self._seen if key > manifest["floor"]}
            self._manifest, self._etag = manifest, etag
            return True
        lazy: set[str] = set()
        # Segments a pack certified as sharing no item: joined without sorting every id hash.
        certified = set(manifest.get("disjoint", ()))
        disjoint = True if all(seg["key"] in certified for seg in manifest["segments"]) else None
        try:
            base, tombs = _merge(self._open_segments(manifest["segments"], lazy) or [_part([])], disjoint)
        except NotFound:
            return False
        self._lazy = lazy
        self._reset_reader(manifest, etag, base, tombs)
        if base.n >= BIG:
            release_memory()
        return False  # list again from the new floor

    def _offer(self, rec: Record) -> bool:
        cur = self._delta.get(rec.key)
        if cur is not None:
            version, log_key = cur.version, cur.log_key
        else:
            row = self._base.row_of(rec.key)
            if row is not None:
                version, log_key = int(self._base.version[row]), self._base.log_keys[row]
            else:
                version, log_key = self._tombs.get(rec.key, (-1, ""))
        if not rec.beats(version, log_key):
            return False
        self._delta[rec.key] = rec
        return True

    def _fold(self) -> None:
        """Merge the delta into the base table (no re-parse of base items)."""
        delta = Table.from_records(list(self._delta.values()))
        keep = np.ones(self._base.n, dtype=bool)
        for key, rec in self._delta.items():
            row = self._base.row_of(key)
            if row is not None:
                keep[row] = False
            if rec.deleted:
                self._tombs[key] = (rec.version, rec.log_key)
            else:
                self._tombs.pop(key, None)
        self._base = Table.concat([(self._base, np.flatnonzero(keep)), (delta, np.arange(delta.n))])
        self._delta = {}

    def _build_snapshot(self) -> None:
        alive = np.ones(self._base.n, dtype=bool)
        for key in self._delta:
            row = self._base.row_of(key)
            if row is not None:
                alive[row] = False
        delta = Table.from_records([r for r in self._delta.values() if not r.deleted])
        self._snap = Snapshot(parts=((self._base, alive), (delta, np.ones(delta.n, dtype=bool))),
                              generation=self._manifest["generation"])
