"""Publishing: item JSON in the store -> static catalog pages and search index.

Writing ``collections/<cid>/items/<id>.json`` is publishing. Its event reaches
``apply_item_events``, which treats the store as the truth: it re-reads every key, so duplicate,
late and out-of-order events converge on the current state. A rejected item (not JSON, invalid
STAC, wrong collection or id) is moved to ``rejected/<key>`` with its reason, so the served tree
holds only valid items and the publisher can see why theirs is missing; a later valid upload
under the same key publishes as usual.

Each round of re-reads is one search-index change whose version is the time the round started:
every state it saw was the store's at or after that time, and a later change to a key has its own
event, read in a later round, so the latest version of an item is what the store holds now.

Bulk paths (``publish_paths``, ``reindex``) write items without per-item events (``notify=False``)
and apply the derived updates in batches: one CAS per touched shard and collection, index segments
written per batch (``publish_paths``: one per parsing task, built by the parsing workers; merged into
one at the end up to ``MERGE_ROWS``).
"""
from __future__ import annotations

import gc
import logging
import time
from contextlib import closing, contextmanager
from collections import deque
from itertools import chain
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import orjson

from ..store import InvalidKey, NotFound, ObjectStore, PreconditionFailed, StoredObject
from ..store.base import Usage
from . import catalog, sources
from .access import is_public
from .items import InvalidItem, normalize, parse

log = logging.getLogger(__name__)

REJECTED_PREFIX = "rejected/"
BATCH = 7_000  # items (whole parsing tasks) per batch of a bulk load: one manifest swap for its index segments
LISTING_FLUSH = 100_000  # items whose static catalog summaries a bulk load holds before writing shards (~26 MB as JSON)
WORKERS = 8  # parallel object writes/reads (I/O bound; S3 latency dominates)
VERIFY_ROUNDS = 3
# A bulk load merges its index segments into one only up to this many rows (a merge holds them all in
# memory); larger loads leave one segment per batch, merged size-tiered by later publishing.
MERGE_ROWS = 20_000


@dataclass
class Rejection:
    source: str  # object key or file[:line]
    reason: str


@dataclass
class Report:
    published: int = 0
    deleted: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "deleted": self.deleted, "rejected": len(self.rejected),
                "rejections": [{"source": r.source, "reason": r.reason} for r in self.rejected]}


def _index(store: ObjectStore) -> Any:
    from .index import SearchIndex
    return SearchIndex(store)


@dataclass
class _Batch:
    """Derived changes collected from many items, applied together. Every item goes to the search
    index; only public ones (``summary`` not None) are linked from the static catalog."""

    upserts: dict[str, dict[str, tuple[dict[str, Any], catalog.Summary | None]]] = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)

    def upsert(self, cid: str, item: dict[str, Any], summary: catalog.Summary) -> None:
        listed = summary if is_public(item) else None
        self.upserts.setdefault(cid, {})[item["id"]] = (item, listed)
        self.deletes.get(cid, set()).discard(item["id"])

    def delete(self, cid: str, iid: str) -> None:
        self.deletes.setdefault(cid, set()).add(iid)
        self.upserts.get(cid, {}).pop(iid, None)

    def apply(self, store: ObjectStore, version: int, *, bulk: bool = False, pool: Executor | None = None) -> None:
        """Catalog pages, then the index; ``version``: when the items were read (or written);
        ``pool``: runs the shards' compare-and-swaps side by side."""
        for cid in sorted(set(self.upserts) | set(self.deletes)):
            per = self.upserts.get(cid, {})
            ups = {iid: summary for iid, (_, summary) in per.items() if summary is not None}
            unlisted = {iid for iid, (_, summary) in per.items() if summary is None}
            catalog.update(store, cid, ups, self.deletes.get(cid, set()) | unlisted, pool=pool)
        items = [item for per in self.upserts.values() for item, _ in per.values()]
        gone = [(cid, iid) for cid, ids in self.deletes.items() for iid in sorted(ids)]
        if items or gone:
            index = _index(store)
            if bulk:
                index.add(items, gone, version=version, compact=False)
            else:
                index.apply(items, gone, version=version)


def _reject(store: ObjectStore, key: str, obj: StoredObject, reason: str) -> None:
    """Move the object to ``rejected/`` (with the reason), unless it was replaced meanwhile."""
    log.warning("item rejected: %s: %s", key, reason, extra={"key": key, "reason": reason, "etag": obj.etag})
    record = {"key": key, "reason": reason, "etag": obj.etag, "rejected_at": time.time(),
              "body": obj.body.decode("utf-8", "replace")}
    store.put_json(REJECTED_PREFIX + key, record)
    try:
        store.delete(key, if_match=obj.etag)
    except PreconditionFailed:
        pass  # a newer upload: its own event handles it


def apply_item_events(store: ObjectStore, events: Iterable[Any]) -> Report:
    """Bring the catalog and index in line with the current state of the events' items.

    Two workers handling events of one key can interleave (read v1, read v2, write v2's pages,
    write v1's pages). So after its writes a round checks each key's ETag again and redoes the
    items whose keys changed meanwhile: the last writer of the derived pages has seen the last version.
    """
    items = list(dict.fromkeys(where for ev in events if (where := catalog.parse_item_key(ev.key))))
    report = Report()
    for _ in range(VERIFY_ROUNDS):
        applied = _apply_items(store, items, report)
        items = list(dict.fromkeys(catalog.parse_item_key(key) for key, etag in applied.items()  # type: ignore[misc]
                                   if _etag(store, key) != etag))
        if not items:
            break
    return report


def _etag(store: ObjectStore, key: str) -> str | None:
    try:
        return store.head(key).etag
    except NotFound:
        return None


@dataclass
class _Current:
    """What the store holds for one item: its winning copy (None: none valid) and the ETag each of
    its two keys was read at (None: absent)."""

    item: dict[str, Any] | None = None
    summary: catalog.Summary | None = None
    key: str | None = None
    etags: dict[str, str | None] = field(default_factory=dict)


def _current(store: ObjectStore, cid: str, iid: str, report: Report, *, known: dict[str, StoredObject | None]
             | None = None, notify: bool = True) -> _Current:
    """The item as stored now, placed where its visibility says (see ``_place``).

    An item has two possible keys, the static catalog's and the private prefix's; the private copy
    wins while both exist (fail closed: a project turning private writes its private copy first,
    one turning public deletes its private copy last). ``known``: objects already read, by key;
    ``notify``: whether the writes of ``_place`` raise events (bulk paths apply their own updates)."""
    out = _Current()
    for private in (True, False):
        key = catalog.item_key(cid, iid, private=private)
        obj = known[key] if known is not None and key in known else _read(store, key)
        out.etags[key] = obj.etag if obj is not None else None
        if obj is None or out.item is not None:
            continue
        try:
            item, summary = normalize(parse(obj.body), cid, iid)
        except InvalidItem as err:
            report.rejected.append(Rejection(key, str(err)))
            _reject(store, key, obj, str(err))
            out.etags[key] = None
            continue
        out.item, out.summary, out.key = item, summary, key
        out.etags[key] = _place(store, key, obj, item, notify=notify)
    return out


def _read(store: ObjectStore, key: str) -> StoredObject | None:
    try:
        return store.get(key)
    except (NotFound, InvalidKey):
        return None


def _place(store: ObjectStore, key: str, obj: StoredObject, item: dict[str, Any], *,
           notify: bool = True) -> str | None:
    """Store ``item`` (read as ``obj`` under ``key``) in its published form at the key its visibility
    gives it; a copy at the other key is then deleted. Returns the ETag ``key`` now has (None: moved).

    Items written straight into the bucket under the wrong prefix move; every write is conditional
    on what was read, so a newer upload always wins and its own event publishes it."""
    right = catalog.stored_item_key(item)
    try:
        if right == key:
            if item == obj.json():
                return obj.etag
            # Only this version: the rewrite's own event then finds nothing to change.
            return store.put_json(key, item, if_match=obj.etag, notify=notify).etag
        there = _read(store, right)
        if there is None:
            store.put_json(right, item, if_none_match=True, notify=notify)
        elif _json(there) != item:  # an equal copy is left alone: its write's event is this very move
            store.put_json(right, item, if_match=there.etag, notify=notify)
        store.delete(key, if_match=obj.etag)
        log.info("item moved to its visibility's place: %s -> %s", key, right)
        return None
    except (PreconditionFailed, NotFound):
        return obj.etag  # a key changed meanwhile: the check after the round redoes the item


def _json(obj: StoredObject) -> Any:
    try:
        return obj.json()
    except ValueError:
        return None


def _apply_items(store: ObjectStore, items: list[tuple[str, str]], report: Report) -> dict[str, str | None]:
    """One round: the derived updates for ``items``; returns the ETag (None: absent) each key was applied at."""
    batch = _Batch()
    applied: dict[str, str | None] = {}
    observed = time.time_ns()  # before any read: the version of what this round sees
    for cid, iid in items:
        known = catalog.config().category(cid) is not None
        now = _current(store, cid, iid, report)
        applied.update(now.etags)
        if now.item is None:
            if known:
                batch.delete(cid, iid)
                report.deleted += 1
            continue
        if now.etags.get(now.key or "") is None:
            continue  # moved: the event of its new key publishes it
        batch.upsert(cid, now.item, now.summary)  # type: ignore[arg-type]
        report.published += 1
    batch.apply(store, observed)
    return applied


# -- bulk -----------------------------------------------------------------------------
def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, mininterval=0.5)


@dataclass
class _Listing:
    """The static catalog's share of a bulk load: each item's summary (None: not public, so not
    listed), the last state of an item winning. Applied every ``LISTING_FLUSH`` items and at the end,
    not per batch: a shard is rewritten whole however few of its items change.

    With worker processes that hold the store (``procs``), each application runs there, its shards split
    among the workers (the collection's document takes their views by compare-and-swap, as from
    concurrent publishers), while this process goes on; an application waits for the previous one
    (an item in both: the later summary must land last). Items are sorted into the workers' shares as
    they are recorded (while the load goes on), not when the last application is handed out."""

    summaries: dict[str, list[dict[str, bytes | None]]] = field(default_factory=dict)
    count: int = 0
    procs: sources.Workers | None = None
    running: list[Future[None]] = field(default_factory=list)

    def _workers(self) -> Executor | None:
        return self.procs.pool if self.procs is not None else None

    def record(self, cid: str, iid: str, summary: bytes | None) -> None:
        shares = self.summaries.get(cid)
        if shares is None:
            count = self.procs.count if self.procs is not None and self._workers() is not None else 1
            shares = self.summaries[cid] = [{} for _ in range(count)]
        # By top shard: no shard is written by two workers.
        per = shares[int(catalog.shard_of(iid), 16) % len(shares)] if len(shares) > 1 else shares[0]
        self.count += iid not in per
        per[iid] = summary

    def apply(self, store: ObjectStore, pool: Executor) -> None:
        if not self.summaries:
            return  # nothing to wait for: the caller goes on while the workers write (the end of a load packs the index)
        self.wait()
        workers = self._workers()
        for cid in sorted(self.summaries):
            shares = self.summaries[cid]
            if workers is None:
                _update_listing(store, cid, shares[0], pool)
                continue
            self.running += [workers.submit(sources.in_worker, _update_listing, cid, part) for part in shares if part]
        self.summaries.clear()
        self.count = 0

    def wait(self) -> None:
        running, self.running = self.running, []
        for job in running:
            job.result()


def _update_listing(store: ObjectStore, cid: str, per: dict[str, bytes | None],
                    pool: Executor | None = None) -> None:
    """``per``: item id -> its summary as JSON (``sources.Parsed``), None: not listed."""
    listed = [iid for iid, s in per.items() if s is not None]
    # One JSON array read at once: a call per summary cost as much again (a load's hundreds of thousands).
    summaries = orjson.loads(b"[" + b",".join([s for s in per.values() if s is not None]) + b"]")
    catalog.update(store, cid, dict(zip(listed, summaries)), {iid for iid, s in per.items() if s is None}, pool=pool)


# An item of a bulk batch: public, summary, stored body, where it came from (file; line or feature),
# the batch's part (task) holding its index rows, whether this process writes its file (else a worker did).
_Entry = tuple[bool, bytes, bytes, str, int | str, int, bool]


@dataclass
class _Bulk:
    """Whole tasks' items (the last copy of an item winning) and each task's index rows (``Parsed.index``);
    ``refused``: items the store refused to a worker."""

    items: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    refused: set[tuple[str, str]] = field(default_factory=set)
    usage: list[Usage] = field(default_factory=list)
    collection: str | None = None  # of items naming none (``publish_paths``)

    def take(self, task: sources.Task, outcome: sources.Parsed, recent: _Recent) -> None:
        """Add a task's outcome. An item a worker wrote is written again here if a task still in flight
        with it had a copy of it too (``recent``): the workers' writes of the two may have landed in
        either order, and the later copy in the input must win."""
        part = len(self.parts)
        self.parts.append(outcome.index)
        if outcome.usage is not None:
            self.usage.append(outcome.usage)
        keys = [(cid, iid) for cid, iid, *_ in outcome.items]
        again = recent.among(set(keys)) if outcome.written else None  # None: every item is written here
        items, refused, label = self.items, self.refused, task.label
        for (_, _, public, summary, body, where), key in zip(outcome.items, keys):
            items.pop(key, None)  # a later copy in the input wins
            if refused:
                refused.discard(key)  # a later copy the store took wins over a refused one
            items[key] = (public, summary, body, label, where, part, again is None or key in again)
        for key in outcome.refused:
            items.pop(key, None)  # its earlier copies are left out as well (see ``_flush``)
            refused.add(key)
        recent.add([*keys, *outcome.refused])
        # A worker sends no bodies back for NDJSON (``sources._write``): those written again here are parsed again.
        missing: dict[int, tuple[str, str]] = {}
        for key in again or ():
            entry = items.get(key)
            if entry is not None and not entry[2] and isinstance(entry[4], int):
                missing[entry[4]] = key
        for where, body in sources.stored_bodies(task, missing, self.collection).items():
            entry = items[missing[where]]
            items[missing[where]] = entry[:2] + (body,) + entry[3:]


@dataclass
class _Recent:
    """Items whose earlier writes may land after a worker's write of a later copy: those of the last
    ``size`` tasks (still in flight when it was handed out), and those the batch being flushed writes."""

    size: int
    tasks: deque[set[tuple[str, str]]] = field(default_factory=deque)
    writing: set[tuple[str, str]] = field(default_factory=set)

    def among(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``keys`` that are recent (a task's items looked up together, by set operations)."""
        hits = keys & self.writing
        for seen in self.tasks:
            hits |= keys & seen
        return hits

    def add(self, keys: Iterable[tuple[str, str]]) -> None:
        self.tasks.append(set(keys))
        while len(self.tasks) > self.size:
            self.tasks.popleft()


def publish_paths(store: ObjectStore, paths: Sequence[Path], progress: bool = True,
                  collection: str | None = None) -> Report:
    """Publish every item found in ``paths``, into its ``collection`` (else ``collection``).

    Worker processes parse and check the items and build their index rows (``sources``); this process
    takes them about ``BATCH`` at a time (whole tasks), each batch (``flusher``) while the next is
    gathered: the item files in one ``put_many`` (on a local store the workers wrote them already: here
    only an item whose copies in two tasks may have landed out of order), then the batch's index
    segments (one per task) in one manifest swap, and the static catalog's shards once every
    ``LISTING_FLUSH`` items (in the workers, when they hold the store). Publishing the same inputs again
    ends in the same state, so a load that stopped half-way is completed by running it again."""
    with _no_cycle_collection():
        return _publish_paths(store, paths, progress, collection)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Items are trees (freed by reference counting), yet a load allocates millions of containers,
    each allocation counting towards a collection that walks every live one: ~5% of a load's CPU."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _publish_paths(store: ObjectStore, paths: Sequence[Path], progress: bool, collection: str | None) -> Report:
    report = Report()
    listing = _Listing()
    # Workers are forked now, before this process starts threads.
    with sources.workers(sources.workers_for(paths), store) as procs, \
            closing(sources.parsed(sources.tasks(paths), collection, procs, store)) as results:
        recent = _Recent(sources.window(procs.count))
        listing.procs = procs if procs.writes else None
        first = next(results, None)
        with _progress(None, "publish", progress) as bar, ThreadPoolExecutor(WORKERS) as pool, \
                ThreadPoolExecutor(1) as flusher:
            flushing: Future[None] | None = None

            def flush(batch: _Bulk) -> Future[None]:
                if flushing is not None:
                    flushing.result()
                recent.writing = {key for key, entry in batch.items.items() if entry[6]}
                return flusher.submit(_flush, store, batch, pool, bar, report, listing)

            batch = _Bulk(collection=collection)
            for task, outcome in chain([first] if first is not None else [], results):
                report.rejected.extend(Rejection(task.source(where), reason) for where, reason in outcome.rejected)
                batch.take(task, outcome, recent)
                if len(batch.items) >= BATCH:
                    flushing = flush(batch)
                    batch = _Bulk(collection=collection)
            flush(batch).result()
            listing.apply(store, pool)
            # The index is packed here while the workers write the last shards (both touch nothing of the other).
            _index(store).optimize(max_rows=MERGE_ROWS)
            listing.wait()
    return report


def _flush(store: ObjectStore, batch: _Bulk, pool: ThreadPoolExecutor, bar: Any, report: Report,
           listing: _Listing) -> None:
    """Write the batch's items the workers did not write, then their index segments, and record their
    summaries for the static catalog; an item the store refuses (its key) is a rejection, and the others
    are published all the same."""
    for usage in batch.usage:  # the workers' writes, as if made here
        for kind, n in usage.requests.items():
            store.meter.request(kind, n)
        store.meter.moved(read=usage.bytes_read, written=usage.bytes_written)
    if not batch.items and not batch.refused:
        return
    items = batch.items
    writes = [(cid, iid, catalog.item_key(cid, iid, private=not entry[0]), entry)
              for (cid, iid), entry in items.items() if entry[6]]
    _drop_private_copies(store, items)
    stored = store.put_many([(key, entry[2]) for _, _, key, entry in writes], workers=WORKERS)
    refused: set[tuple[str, str]] = set(batch.refused)
    for (cid, iid, key, (_, _, _, label, where, _, _)), result in zip(writes, stored):
        if isinstance(result, InvalidKey):
            source = f"{label}:{where}" if isinstance(where, int) else where
            report.rejected.append(Rejection(source, f"cannot be stored: {result}"))
            refused.add((cid, iid))
    private: list[str] = []
    for (cid, iid), (listed, summary, *_) in items.items():
        if refused and (cid, iid) in refused:
            continue
        report.published += 1
        listing.record(cid, iid, summary if listed else None)
        if not listed:
            private.append(catalog.item_key(cid, iid))
    # Never left readable in the static catalog's prefix (a delete notifies only if it existed).
    list(pool.map(store.delete, private))
    bar.update(len(items))
    del writes, stored
    batch.items.clear()  # the bodies (~10 MB a batch) are not needed while the index segments are written
    # Versioned after the writes (the workers' too: their outcomes came back before this batch was
    # flushed): an item another writer replaces later gets a newer version. A refused item leaves every
    # part: an earlier copy in the batch was not written either.
    _index(store).add_encoded([(part, refused) for part in batch.parts if part], version=time.time_ns(),
                              compact=False)
    if listing.count >= LISTING_FLUSH:
        listing.apply(store, pool)


def _drop_private_copies(store: ObjectStore, items: dict[tuple[str, str], _Entry]) -> None:
    """Delete private copies of the public ones of ``items`` (they would win over the new public ones): one
    listing of the private prefix of each collection with a public item, which is usually small."""
    for cid in dict.fromkeys(cid for (cid, _), entry in items.items() if entry[0]):
        for info in store.list(catalog.items_prefix(cid, private=True)):
            where = catalog.parse_item_key(info.key)
            entry = items.get(where) if where is not None and where[0] == cid else None
            if entry is not None and entry[0]:
                store.delete(info.key)


def reindex(store: ObjectStore, collection: str | None = None, progress: bool = True) -> Report:
    """Rebuild shards, extents and the search index of one or all collections from the item JSONs.

    Safe while others publish: an item published, changed or deleted during the run keeps the state
    its own event wrote, in the catalog pages and in search.
    """
    cids = [collection] if collection else sorted(catalog.config().collection_ids)
    if any(catalog.config().category(cid) is None for cid in cids):
        raise ValueError(f"unknown collection {collection!r}")
    report = Report()
    catalog.ensure_root(store)
    every: list[dict[str, Any]] = []
    observed = time.time_ns()  # before the first read: the version of the rebuilt items
    for cid in cids:
        items = _reload(store, cid, report, progress)
        catalog.rebuild(store, cid, {item["id"]: summary for item, summary in items if is_public(item)}, since=observed,
                        current=partial(_summary_now, store, cid))
        every.extend(item for item, _ in items)
    # All collections: one rebuild also drops index entries of collections no longer configured.
    report.published = _index(store).rebuild(every, collection=collection, version=observed)
    return report


def _summary_now(store: ObjectStore, cid: str, iid: str) -> catalog.Summary | None:
    """The static catalog's summary of the item as the store holds it now (None: absent, invalid or
    not public)."""
    now = _current(store, cid, iid, Report())
    return now.summary if now.item is not None and is_public(now.item) else None


def _reload(store: ObjectStore, cid: str, report: Report, progress: bool) -> list[tuple[dict[str, Any], catalog.Summary]]:
    """Every valid item of ``cid``, public and private, each placed where its visibility says and in
    its published form; invalid ones are rejected."""
    keys = [info.key for private in (True, False) for info in store.list(catalog.items_prefix(cid, private=private))
            if catalog.parse_item_key(info.key)]

    def load(key: str) -> StoredObject | None:
        try:
            return store.get(key)
        except NotFound:
            return None  # deleted while listing

    read: dict[str, StoredObject | None] = {}
    with _progress(len(keys), f"reindex {cid}", progress) as bar, ThreadPoolExecutor(WORKERS) as pool:
        for key, obj in zip(keys, pool.map(load, keys)):
            bar.update()
            read[key] = obj
    ids = list(dict.fromkeys(catalog.parse_item_key(key)[1] for key in keys))  # type: ignore[index]
    for iid in ids:
        for private in (True, False):
            read.setdefault(catalog.item_key(cid, iid, private=private), None)
    out = []
    for iid in ids:
        now = _current(store, cid, iid, report, known=read, notify=False)
        if now.item is not None and now.summary is not None:
            out.append((now.item, now.summary))
    return out
