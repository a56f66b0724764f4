"""The STAC search index in the object store: a change log compacted into immutable segments.

Layout (all under ``stac-index/``):

- ``log/<ns time>-<random>.json``: one create-only object per ``apply()`` call, holding the full
  upserted items and the deletes, each with a version (the item's ``properties.updated``, else
  the time of the call). Publishing is one PUT, whatever the catalog size.
- ``segments/<uuid>.ndjson.gz``: immutable, merged item versions (tombstones included).
- ``manifest.json`` (compare-and-swap): the segment list, the last log key the segments cover
  (``floor``), and a ``generation`` that changes only when ``rebuild()`` replaces the content.

Per item, the version with the highest (version, log key) wins, so replays, duplicates and
out-of-order deliveries converge to the same state. Compaction (by the ``apply()`` that sees
too many pending entries) merges settled log entries into a level-0 segment and merges
``fanout`` segments of one level into one of the next (size-tiered), then swaps the manifest;
losers of the swap delete their own output. An entry is "settled" once it is older than
``settle`` seconds, and a writer whose PUT was slower than ``settle / 2``, or whose key the
floor has already passed, writes its entry again under a new key, so compaction never skips an
entry that was still in flight (clocks are assumed synchronised to better than ``settle / 2``).

Readers keep the merged segments as a columnar base table and the log entries past the floor
as a small delta table, refreshed per ``snapshot()`` with one LIST of the log and one
conditional GET of the manifest; the delta is folded into the base when it grows.
"""
from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from chalicelib.store import NotFound, NotModified, ObjectInfo, ObjectStore, PreconditionFailed

from .datetimes import try_instant
from .table import Record, Table

PREFIX = "stac-index/"
LOG_PREFIX = PREFIX + "log/"
SEGMENT_PREFIX = PREFIX + "segments/"
MANIFEST = PREFIX + "manifest.json"


def _empty_manifest() -> dict[str, Any]:
    return {"generation": "", "floor": "", "segments": [], "retired": []}


def _log_key(ns: int) -> str:
    return f"{LOG_PREFIX}{ns:020d}-{uuid.uuid4().hex[:16]}.json"


def _log_position(ns: int) -> str:
    """A LIST ``start_after`` that sorts before every log key written at or after ``ns``."""
    return f"{LOG_PREFIX}{max(ns, 0):020d}"


def _key_time(key: str) -> int:
    return int(key[len(LOG_PREFIX):len(LOG_PREFIX) + 20])


def item_version(item: dict[str, Any], default: int) -> int:
    """Nanoseconds of ``properties.updated``, else ``default``."""
    props = item.get("properties")
    stamp = try_instant(props.get("updated")) if isinstance(props, dict) else None
    return int(stamp * 1e9) if stamp is not None else default


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


def _encode_segment(records: Iterable[Record]) -> bytes:
    # One line per record: JSON header, a tab (never inside compact JSON), the item JSON (or
    # nothing for a tombstone), so readers keep the item bytes without re-serialising them.
    lines = []
    for rec in records:
        head = json.dumps([rec.collection, rec.id, rec.version, rec.log_key], separators=(",", ":"),
                          ensure_ascii=False).encode()
        lines.append(head + b"\t" + (b"" if rec.deleted else rec.body()))
    return gzip.compress(b"\n".join(lines), compresslevel=1)


def _decode_segment(body: bytes) -> list[Record]:
    out = []
    for line in gzip.decompress(body).split(b"\n"):
        if not line:
            continue
        head, _, raw = line.partition(b"\t")
        coll, item_id, version, log_key = json.loads(head)
        out.append(Record(coll, item_id, version, log_key, None, raw or None))  # parsed on demand
    return out


def _decode_log(key: str, body: bytes) -> list[Record]:
    doc = json.loads(body)
    out = [Record(item["collection"], item["id"], version, key, item) for version, item in doc["upserts"]]
    out.extend(Record(coll, item_id, version, key, None) for coll, item_id, version in doc["deletes"])
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
                 grace: float = 3600.0) -> None:
        self.store = store
        self.settle_ns = int(settle * 1e9)
        self.compact_entries = compact_entries
        self.compact_bytes = compact_bytes
        self.fanout = fanout
        self.delta_max = delta_max
        self.grace = grace
        self._lock = threading.Lock()
        self._reset_reader(_empty_manifest(), None, Table.from_records([]), {})

    # == writers ============================================================================
    def apply(self, upserts: Sequence[dict[str, Any]], deletes: Sequence[tuple[str, ...]]) -> None:
        """Persist changes: one create-only log object, plus compaction when the log is long.

        ``deletes`` are (collection, id) or (collection, id, timestamp): a delete beats
        upserts whose ``updated`` is older than its timestamp (default: now).
        """
        now = time.time_ns()
        ups = [[item_version(_check_item(item), now), item] for item in upserts]
        dels = []
        for entry in deletes:
            coll, item_id = entry[0], entry[1]
            if not isinstance(coll, str) or not isinstance(item_id, str):
                raise ValueError("a delete is (collection, id[, timestamp])")
            stamp = try_instant(entry[2]) if len(entry) > 2 else None
            dels.append([coll, item_id, int(stamp * 1e9) if stamp is not None else now])
        if not ups and not dels:
            return
        body = json.dumps({"upserts": ups, "deletes": dels}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        while True:
            started = time.time_ns()
            key = _log_key(started)
            try:
                self.store.put(key, body, if_none_match=True, content_type="application/json")
            except PreconditionFailed:
                continue
            if time.time_ns() - started > self.settle_ns // 2:
                continue  # too slow to be sure compaction saw it: write it again, newer
            manifest, etag = self._read_manifest()
            if manifest["floor"] >= key:  # a compaction passed over this entry
                self.store.delete(key)
                continue
            break
        # The oldest pending entries only: one LIST page however far compaction lags behind.
        pending = list(self.store.list(LOG_PREFIX, start_after=manifest["floor"] or None,
                                       limit=4 * self.compact_entries))
        self._maybe_compact(manifest, etag, pending)

    def rebuild(self, items: Iterable[dict[str, Any]], collection: str | None = None) -> int:
        """Replace the index (or one collection's part) with exactly ``items``; returns their count.

        Log entries written after the rebuild started still apply on top (their versions win
        over rebuilt items that carry no ``updated``).
        """
        fresh = latest(Record(item["collection"], item["id"], item_version(item, 0), "", item)
                       for item in map(_check_item, items))
        if collection is not None and any(c != collection for c, _ in fresh):
            raise ValueError(f"rebuild of collection {collection!r} got items of another collection")
        for _ in range(50):
            manifest, etag = self._read_manifest()
            pending = list(self.store.list(LOG_PREFIX, start_after=manifest["floor"] or None))
            keep: list[Record] = []
            if collection is not None:
                current = self._load_all(manifest, [o.key for o in pending])
                if current is None:
                    continue
                keep = [r for r in current.values() if r.collection != collection]
            records = keep + list(fresh.values())
            seg = self._write_segment(records, level=0)
            new = {"generation": uuid.uuid4().hex, "floor": pending[-1].key if pending else manifest["floor"],
                   "segments": [seg], "retired": self._retire(manifest, manifest["segments"])}
            if not self._swap_manifest(new, etag, [seg]):
                continue
            self._cleanup(new, [o.key for o in pending])
            return len(fresh)
        raise PreconditionFailed("too much contention rebuilding the search index")

    # -- compaction ------------------------------------------------------------------------
    def _maybe_compact(self, manifest: dict[str, Any], etag: str | None, pending: list[ObjectInfo]) -> None:
        cutoff = time.time_ns() - self.settle_ns
        ready = [o for o in pending if _key_time(o.key) < cutoff]
        if len(ready) < self.compact_entries and sum(o.size for o in ready) < self.compact_bytes:
            return
        try:
            records = [r for o in ready for r in _decode_log(o.key, self.store.get(o.key).body)]
        except NotFound:
            return  # another writer is compacting the same entries
        written = [self._write_segment(list(latest(records).values()), level=0,
                                       covers=[o.key for o in ready])]
        published = {seg["key"] for seg in manifest["segments"]}
        segments = list(manifest["segments"]) + written
        retired: list[dict[str, Any]] = []
        while True:  # size-tiered: merge `fanout` segments of one level into the next level
            by_level: dict[int, list[dict[str, Any]]] = {}
            for seg in segments:
                by_level.setdefault(seg["level"], []).append(seg)
            full = [lvl for lvl, segs in by_level.items() if len(segs) >= self.fanout]
            if not full:
                break
            group = by_level[min(full)][:self.fanout]
            try:
                merged = latest(r for seg in group for r in self._read_segment(seg["key"]))
            except NotFound:
                return
            # Lineage lets readers that hold all inputs adopt the output without reading it:
            # published inputs by key, inputs made in this round by what they came from.
            merges = [k for s in group for k in ([s["key"]] if s["key"] in published else s.get("merges", []))]
            covers = [k for s in group if s["key"] not in published for k in s.get("covers", [])]
            out = self._write_segment(list(merged.values()), level=min(full) + 1, covers=covers,
                                      merges=merges)
            written.append(out)
            segments = [s for s in segments if s not in group] + [out]
            retired.extend(group)
        new = dict(manifest, floor=ready[-1].key, segments=segments,
                   retired=self._retire(manifest, [s for s in retired if s in manifest["segments"]]))
        # Intermediate merge outputs that a later merge consumed were never published.
        transient = [s for s in written if s not in segments]
        for seg in transient:
            self.store.delete(seg["key"])
        if self._swap_manifest(new, etag, [s for s in written if s in segments]):
            self._cleanup(new, [o.key for o in ready])

    def _write_segment(self, records: list[Record], *, level: int, covers: list[str] | None = None,
                       merges: list[str] | None = None) -> dict[str, Any]:
        key = f"{SEGMENT_PREFIX}{uuid.uuid4().hex}.ndjson.gz"
        self.store.put(key, _encode_segment(records), if_none_match=True, content_type="application/gzip")
        seg: dict[str, Any] = {"key": key, "count": len(records), "level": level}
        if covers is not None:
            seg["covers"] = covers
        if merges is not None:
            seg["merges"] = merges
        return seg

    def _read_segment(self, key: str) -> list[Record]:
        return _decode_segment(self.store.get(key).body)

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
            for seg in written:
                self.store.delete(seg["key"])
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

    def _load_all(self, manifest: dict[str, Any], logs: list[str]) -> dict[tuple[str, str], Record] | None:
        try:
            records = [r for seg in manifest["segments"] for r in self._read_segment(seg["key"])]
            records += [r for key in logs for r in _decode_log(key, self.store.get(key).body)]
        except NotFound:
            return None  # compacted meanwhile: the caller starts over
        return latest(records)

    # == readers ============================================================================
    def snapshot(self) -> Snapshot:
        """The current view: one LIST of the log and one conditional GET of the manifest."""
        with self._lock:
            for _ in range(5):
                if self._refresh():
                    break
            return self._snap

    def _reset_reader(self, manifest: dict[str, Any], etag: str | None, base: Table,
                      tombs: dict[tuple[str, str], tuple[int, str]]) -> None:
        self._manifest = manifest
        self._etag = etag
        self._known = {seg["key"] for seg in manifest["segments"]}
        self._base = base
        self._tombs = tombs
        self._delta: dict[tuple[str, str], Record] = {}
        self._applied: set[str] = set()  # log keys past the floor already in the view
        self._seen: set[str] = set()  # every log key in the view (to recognise compactions)
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
            for rec in records:
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
            self._known |= {seg["key"] for seg in manifest["segments"]}
            self._manifest, self._etag = manifest, etag
            return True
        try:
            records = [r for seg in manifest["segments"] for r in self._read_segment(seg["key"])]
        except NotFound:
            return False
        winners = latest(records)
        tombs = {k: (r.version, r.log_key) for k, r in winners.items() if r.deleted}
        self._reset_reader(manifest, etag, Table.from_records(list(winners.values())), tombs)
        return False  # list again from the new floor

    def _offer(self, rec: Record) -> bool:
        cur = self._delta.get(rec.key)
        if cur is not None:
            version, log_key = cur.version, cur.log_key
        else:
            row = self._base.index.get(rec.key)
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
            row = self._base.index.get(key)
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
            row = self._base.index.get(key)
            if row is not None:
                alive[row] = False
        delta = Table.from_records([r for r in self._delta.values() if not r.deleted])
        self._snap = Snapshot(parts=((self._base, alive), (delta, np.ones(delta.n, dtype=bool))),
                              generation=self._manifest["generation"])
