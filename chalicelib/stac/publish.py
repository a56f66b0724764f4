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
and apply the derived updates in batches: one CAS per touched shard and collection, one index
segment per batch (merged into one at the end).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..store import InvalidKey, NotFound, ObjectStore, PreconditionFailed, StoredObject
from . import catalog
from .items import InvalidItem, normalize, parse

log = logging.getLogger(__name__)

REJECTED_PREFIX = "rejected/"
BATCH = 10_000  # items per derived-update batch in bulk publishing
WORKERS = 8  # parallel object writes/reads (I/O bound; S3 latency dominates)
VERIFY_ROUNDS = 3


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
    """Derived changes collected from many items, applied together."""

    upserts: dict[str, dict[str, tuple[dict[str, Any], catalog.Summary]]] = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)

    def upsert(self, cid: str, item: dict[str, Any], summary: catalog.Summary) -> None:
        self.upserts.setdefault(cid, {})[item["id"]] = (item, summary)
        self.deletes.get(cid, set()).discard(item["id"])

    def delete(self, cid: str, iid: str) -> None:
        self.deletes.setdefault(cid, set()).add(iid)
        self.upserts.get(cid, {}).pop(iid, None)

    def apply(self, store: ObjectStore, version: int, *, bulk: bool = False) -> None:
        """Catalog pages, then the index; ``version``: when the items were read (or written)."""
        for cid in sorted(set(self.upserts) | set(self.deletes)):
            ups = {iid: summary for iid, (_, summary) in self.upserts.get(cid, {}).items()}
            catalog.update(store, cid, ups, self.deletes.get(cid, ()))
        items = [item for per in self.upserts.values() for item, _ in per.values()]
        gone = [(cid, iid) for cid, ids in self.deletes.items() for iid in sorted(ids)]
        if items or gone:
            index = _index(store)
            (index.add if bulk else index.apply)(items, gone, version=version)


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
    """Bring the catalog and index in line with the current state of the events' item keys.

    Two workers handling events of one key can interleave (read v1, read v2, write v2's pages,
    write v1's pages). So after its writes a round checks each key's ETag again and redoes the
    keys that changed meanwhile: the last writer of the derived pages has seen the last version.
    """
    keys = list(dict.fromkeys(ev.key for ev in events if catalog.parse_item_key(ev.key)))
    report = Report()
    for _ in range(VERIFY_ROUNDS):
        applied = _apply_keys(store, keys, report)
        keys = [key for key, etag in applied.items() if _etag(store, key) != etag]
        if not keys:
            break
    return report


def _etag(store: ObjectStore, key: str) -> str | None:
    try:
        return store.head(key).etag
    except NotFound:
        return None


def _apply_keys(store: ObjectStore, keys: list[str], report: Report) -> dict[str, str | None]:
    """One round: the derived updates for ``keys``; returns the ETag (None: absent) each was applied at."""
    batch = _Batch()
    applied: dict[str, str | None] = {}
    observed = time.time_ns()  # before any read: the version of what this round sees
    for key in keys:
        cid, iid = catalog.parse_item_key(key)  # type: ignore[misc]
        known = catalog.config().category(cid) is not None
        try:
            obj = store.get(key)
        except NotFound:
            if known:
                batch.delete(cid, iid)
                applied[key] = None
                report.deleted += 1
            continue
        try:
            item, summary = normalize(parse(obj.body), cid, iid)
        except InvalidItem as err:
            report.rejected.append(Rejection(key, str(err)))
            _reject(store, key, obj, str(err))
            if known:
                batch.delete(cid, iid)  # an earlier valid version may be listed
            continue
        etag = obj.etag
        if item != obj.json():
            try:
                # Only this version: the rewrite's own event then finds nothing to change.
                etag = store.put_json(key, item, if_match=obj.etag).etag
            except (PreconditionFailed, NotFound):
                applied[key] = obj.etag  # replaced meanwhile: the check after this round redoes it
                continue
        batch.upsert(cid, item, summary)
        applied[key] = etag
        report.published += 1
    batch.apply(store, observed)
    return applied


# -- bulk -----------------------------------------------------------------------------
def _sources(paths: Sequence[Path]) -> Iterator[tuple[str, Any]]:
    """(source label, parsed JSON or an InvalidItem) for every item in files, folders and NDJSON."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".geojson", ".ndjson"))
        else:
            files = [path]
        for file in files:
            try:
                text = file.read_text()
            except (OSError, UnicodeDecodeError) as err:
                yield str(file), InvalidItem(f"unreadable: {err}")
                continue
            if file.suffix == ".ndjson":
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        yield f"{file}:{n}", _parsed(line)
                continue
            doc = _parsed(text)
            if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
                for n, feature in enumerate(doc.get("features") or [], 1):
                    yield f"{file}#{n}", feature
            else:
                yield str(file), doc


def _parsed(text: str) -> Any:
    try:
        return parse(text)
    except InvalidItem as err:
        return err


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, mininterval=0.5)


def publish_paths(store: ObjectStore, paths: Sequence[Path], progress: bool = True,
                  collection: str | None = None) -> Report:
    """Publish every item found in ``paths``, into its ``collection`` (else ``collection``)."""
    report = Report()
    with _progress(None, "publish", progress) as bar, ThreadPoolExecutor(WORKERS) as pool:
        batch, pending = _Batch(), 0  # items are written and their pages updated BATCH at a time
        sources: dict[tuple[str, str], str] = {}
        for source, doc in _sources(paths):
            try:
                if isinstance(doc, InvalidItem):
                    raise doc
                cid = doc.get("collection", collection) if isinstance(doc, dict) else collection
                if not isinstance(cid, str):
                    raise InvalidItem("the item has no collection (and no default collection was given)")
                item, summary = normalize(doc, cid)
            except InvalidItem as err:
                report.rejected.append(Rejection(source, str(err)))
                continue
            batch.upsert(cid, item, summary)
            sources[cid, item["id"]] = source
            pending += 1
            if pending >= BATCH:
                _flush(store, batch, pool, bar, sources, report)
                batch, pending, sources = _Batch(), 0, {}
        _flush(store, batch, pool, bar, sources, report)
    _index(store).optimize()
    return report


def _flush(store: ObjectStore, batch: _Batch, pool: ThreadPoolExecutor, bar: Any,
           sources: dict[tuple[str, str], str], report: Report) -> None:
    """Write the batch's items, then their derived updates; an item the store refuses (its key)
    is a rejection, and the others are published all the same."""
    writes = [(cid, iid, item) for cid, per in batch.upserts.items() for iid, (item, _) in per.items()]

    def write(entry: tuple[str, str, dict[str, Any]]) -> str | None:
        cid, iid, item = entry
        try:
            store.put_json(catalog.item_key(cid, iid), item, notify=False)
        except InvalidKey as err:
            return str(err)
        return None

    for (cid, iid, _), error in zip(writes, pool.map(write, writes)):
        bar.update()
        if error is None:
            report.published += 1
        else:
            report.rejected.append(Rejection(sources.get((cid, iid), iid), f"cannot be stored: {error}"))
            batch.upserts[cid].pop(iid)
    # Versioned after the writes: an item another writer replaces later gets a newer version.
    batch.apply(store, time.time_ns(), bulk=True)


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
        catalog.rebuild(store, cid, {item["id"]: summary for item, summary in items}, since=observed,
                        current=partial(_summary_now, store, cid))
        every.extend(item for item, _ in items)
    # All collections: one rebuild also drops index entries of collections no longer configured.
    report.published = _index(store).rebuild(every, collection=collection, version=observed)
    return report


def _summary_now(store: ObjectStore, cid: str, iid: str) -> catalog.Summary | None:
    """The catalog summary of the item as the store holds it now (None: absent or invalid)."""
    try:
        return normalize(parse(store.get(catalog.item_key(cid, iid)).body), cid, iid)[1]
    except (NotFound, InvalidItem):
        return None


def _reload(store: ObjectStore, cid: str, report: Report, progress: bool) -> list[tuple[dict[str, Any], catalog.Summary]]:
    """Every valid item of ``cid`` (normalized in place when needed); invalid ones are rejected."""
    keys = [info.key for info in store.list(catalog.items_prefix(cid)) if catalog.parse_item_key(info.key)]

    def load(key: str) -> StoredObject | None:
        try:
            return store.get(key)
        except NotFound:
            return None  # deleted while listing

    out = []
    with _progress(len(keys), f"reindex {cid}", progress) as bar, ThreadPoolExecutor(WORKERS) as pool:
        for key, obj in zip(keys, pool.map(load, keys)):
            bar.update()
            if obj is None:
                continue
            try:
                item, summary = normalize(parse(obj.body), cid, catalog.parse_item_key(key)[1])  # type: ignore[index]
            except InvalidItem as err:
                report.rejected.append(Rejection(key, str(err)))
                _reject(store, key, obj, str(err))
                continue
            if item != obj.json():
                try:
                    store.put_json(key, item, if_match=obj.etag, notify=False)
                except PreconditionFailed:
                    pass  # replaced meanwhile: its event publishes the newer version
            out.append((item, summary))
    return out
