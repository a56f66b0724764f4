"""The catalog as stac-geoparquet: one Parquet file per collection, next to its ``collection.json``.

``collections/<cid>/<cid>.parquet`` holds the collection's **public** items (what the static catalog
holds), written with the ``stac-geoparquet`` package (spec 1.1: ``bbox`` as a struct of
``xmin/ymin/xmax/ymax``, ``geometry`` as GeoArrow WKB, properties as top-level columns, datetimes
as UTC timestamps). The collection links it as an asset with role ``collection-mirror``
(``catalog.geoparquet_asset``).

The items come from the search index (its snapshot holds every item's JSON), never from listing
item files, so a regeneration reads the index's segments once per process and then only what
changed. A fingerprint of the selection (ids, versions and log keys of the rows, the public URL
that absolute hrefs are built from, the format) is kept in the file's collection metadata
(``stacflow:fingerprint``), so an
unchanged collection costs a HEAD and two ranged GETs of the footer and no write.

Writes are conditional: a regeneration reads the file's ETag *before* taking the index snapshot and
writes with ``If-Match`` that ETag (``If-None-Match: *`` when absent). A writer that loses starts
over, so every file that lands was built from a snapshot taken after the file it replaced was
written: concurrent regenerations converge on the newest state, and a reader (S3 or the local
store's rename) never sees a partial file.

This module imports pyarrow and stac-geoparquet (``requirements-geoparquet.txt``): only the
geoparquet function, ``stacflow export`` and the local regenerator import it, never the API.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..auth.access import ReadScope
from ..store import NotFound, ObjectStore, PreconditionFailed
from . import catalog
from .hrefs import resolve_item

FORMAT = "stacflow-geoparquet/1"  # bump to rewrite every file after a change of how they are built
FINGERPRINT_FIELD = "stacflow:fingerprint"  # in the file's collection metadata
GEOPARQUET_META = b"stac-geoparquet"  # the spec's key-value metadata key
PUBLIC = ReadScope(public=True)  # what the static catalog (and so its mirror) holds
ATTEMPTS = 8  # lost compare-and-swaps before giving up (each retry re-reads the index)


@dataclass(frozen=True)
class Selection:
    """The rows of one collection in an index snapshot, and their fingerprint."""

    cid: str
    rows: tuple[tuple[Any, np.ndarray], ...]  # (table, row numbers)
    fingerprint: str

    @property
    def count(self) -> int:
        return sum(len(rows) for _, rows in self.rows)

    def items(self, public_url: str | None) -> Iterator[dict[str, Any]]:
        """The stored items, their relative hrefs made absolute when the public URL is known."""
        base = f"{public_url.rstrip('/')}/stac" if public_url else None
        for table, rows in self.rows:
            for item in table.items(rows):
                if base:
                    resolve_item(item, base)
                yield item


def select(snapshot: Any, cid: str, public_url: str | None, *, scope: ReadScope = PUBLIC) -> Selection:
    """The live items of ``cid`` that ``scope`` reads, from an index snapshot."""
    parts = []
    digest = hashlib.sha256(f"{FORMAT}\n{public_url or ''}\n{cid}\n".encode())
    for table, alive in snapshot.parts:
        if table.n == 0:
            continue
        mask = alive & table.collection_mask([cid])
        readable = table.readable(scope)
        if readable is not None:
            mask &= readable
        rows = np.flatnonzero(mask)
        parts.append((table, rows))
    keyed = sorted((table.id_list[r], int(table.version[r]), table.log_keys[r]) for table, rows in parts for r in rows)
    for iid, version, log_key in keyed:
        digest.update(f"{iid}\t{version}\t{log_key}\n".encode())
    return Selection(cid, tuple(parts), digest.hexdigest())


def encode(items: Sequence[dict[str, Any]] | Iterator[dict[str, Any]], cid: str, *,
           fingerprint: str = "", collection: dict[str, Any] | None = None) -> bytes:
    """The stac-geoparquet file of ``items`` (an empty collection gets the core columns, no rows)."""
    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    items = list(items)
    if items:
        table = parse_stac_items_to_arrow(items).read_all()
    else:  # stac-geoparquet infers its schema from items: take the shape of a placeholder, no rows
        table = parse_stac_items_to_arrow([_placeholder(cid)]).read_all().slice(0, 0)
    # The fingerprint rides in the file's STAC collection metadata (one pass: the writer replaces the
    # schema's key-value metadata with its own), as a namespaced field of the collection.
    meta = dict(collection or {"type": "Collection", "id": cid})
    if fingerprint:
        meta[FINGERPRINT_FIELD] = fingerprint
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{cid}.parquet")
        to_parquet(table, path, collections={cid: meta}, compression="zstd")
        with open(path, "rb") as fh:
            return fh.read()


def _placeholder(cid: str) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": catalog.STAC_VERSION, "stac_extensions": [], "id": "",
            "collection": cid, "bbox": [0.0, 0.0, 0.0, 0.0],
            "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
            "properties": {"datetime": "1970-01-01T00:00:00Z"}, "links": [], "assets": {}}


def stored_fingerprint(store: ObjectStore, key: str) -> tuple[str, str] | None:
    """(ETag, fingerprint) of the stored file, read from its footer with two ranged GETs; None if absent."""
    import pyarrow.parquet as pq
    try:
        info = store.head(key)
        if info.size < 12:
            return info.etag, ""
        tail = store.open(key, start=info.size - 8, length=8).read()
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length + 12 > info.size:
            return info.etag, ""
        footer = store.open(key, start=info.size - 8 - length, length=length).read()
    except NotFound:
        return None
    try:  # a parquet file whose only content is the footer: enough for its metadata
        meta = pq.read_metadata(io.BytesIO(b"PAR1" + footer + tail))
    except Exception:  # noqa: BLE001 - not ours or damaged: rewrite it
        return info.etag, ""
    try:
        doc = json.loads((meta.metadata or {}).get(GEOPARQUET_META, b"{}"))
        found = [c.get(FINGERPRINT_FIELD) for c in (doc.get("collections") or {}).values() if isinstance(c, dict)]
    except (ValueError, AttributeError):
        found = []
    return info.etag, next((f for f in found if isinstance(f, str)), "")


@dataclass(frozen=True)
class Result:
    cid: str
    key: str
    items: int
    written: bool  # False: the stored file was already current
    bytes: int
    seconds: float
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.cid, "key": self.key, "items": self.items, "written": self.written,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "attempts": self.attempts}


def regenerate(store: ObjectStore, index: Any, cid: str, *, public_url: str | None = None,
               force: bool = False) -> Result:
    """Bring ``collections/<cid>/<cid>.parquet`` up to the index's current state (see the module doc)."""
    key = catalog.geoparquet_key(cid)
    start = time.monotonic()
    if catalog.config().category(cid) is None:
        raise ValueError(f"unknown collection {cid!r}")
    for attempt in range(1, ATTEMPTS + 1):
        stored = stored_fingerprint(store, key)  # before the snapshot: what we replace is older than it
        selection = select(index.snapshot(), cid, public_url)
        if stored is not None and stored[1] == selection.fingerprint and not force:
            return Result(cid, key, selection.count, False, 0, time.monotonic() - start, attempt)
        collection = catalog.read_collection(store, cid) or {}  # the file's STAC collection metadata
        body = encode(selection.items(public_url), cid, fingerprint=selection.fingerprint,
                      collection=catalog.public(collection))
        try:
            if stored is None:
                store.put(key, body, if_none_match=True, content_type=catalog.PARQUET)
            else:
                store.put(key, body, if_match=stored[0], content_type=catalog.PARQUET)
        except PreconditionFailed:
            force = False  # someone wrote meanwhile: their file may already be current
            time.sleep(min(0.05 * attempt, 0.5))
            continue
        link_from_collection(store, cid)
        return Result(cid, key, selection.count, True, len(body), time.monotonic() - start, attempt)
    raise PreconditionFailed(f"{key}: lost {ATTEMPTS} compare-and-swaps in a row")


def link_from_collection(store: ObjectStore, cid: str) -> None:
    """Add the mirror's asset to a collection document stored before it existed (one CAS, once)."""
    want = catalog.geoparquet_asset(cid)

    def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
        found = doc.get("assets")
        assets: dict[str, Any] = found if isinstance(found, dict) else {}
        if assets.get(catalog.GEOPARQUET_ASSET) == want:
            return None
        return dict(doc, assets=dict(assets, **{catalog.GEOPARQUET_ASSET: want}))

    try:
        store.update_json(catalog.collection_key(cid), mutate)
    except NotFound:
        pass  # the catalog function creates it (with the asset) on the first publication


def regenerate_all(store: ObjectStore, index: Any, *, public_url: str | None = None,
                   collections: Sequence[str] | None = None, force: bool = False) -> list[Result]:
    cids = list(collections) if collections else sorted(catalog.config().collection_ids)
    return [regenerate(store, index, cid, public_url=public_url, force=force) for cid in cids]


def export(store: ObjectStore, index: Any, out: str, *, collections: Sequence[str] | None = None,
           public_url: str | None = None, progress: Callable[[int], None] | None = None,
           on_total: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Write ``<out>/<cid>.parquet`` for each collection (``out`` a file path when there is one
    collection and it ends in ``.parquet``); ``progress`` is told of each item converted."""
    cids = list(collections) if collections else sorted(catalog.config().collection_ids)
    snapshot = index.snapshot()
    selections = [select(snapshot, cid, public_url) for cid in cids]
    if on_total is not None:
        on_total(sum(s.count for s in selections))
    single = len(cids) == 1 and out.endswith(".parquet")
    if not single:
        os.makedirs(out, exist_ok=True)
    done = []
    for sel in selections:
        def counted() -> Iterator[dict[str, Any]]:
            for item in sel.items(public_url):
                yield item
                if progress is not None:
                    progress(1)
        collection = catalog.read_collection(store, sel.cid)
        body = encode(counted(), sel.cid, fingerprint=sel.fingerprint,
                      collection=catalog.public(collection) if collection else None)
        path = out if single else os.path.join(out, f"{sel.cid}.parquet")
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)  # a reader never sees half a file
        done.append({"collection": sel.cid, "path": path, "items": sel.count, "bytes": len(body)})
    return done


class Refresher:
    """``stacflow serve``'s regenerator: every write of the search index (a publication or a deletion
    landing) marks the files stale; a daemon thread regenerates them once writes have paused for
    ``quiet`` seconds, or ``max_delay`` after the first one under a steady stream (debounced, so a
    bulk publish costs a few regenerations, not one per item), and every ``interval`` seconds anyway
    (another process's writes to the same store notify no one here). Unchanged collections are
    skipped by their fingerprint."""

    def __init__(self, store: ObjectStore, *, public_url: str | None = None, quiet: float = 1.0,
                 max_delay: float = 10.0, interval: float = 60.0, index: Any = None) -> None:
        import threading
        from ..observability import logger
        from .index import PREFIX, SearchIndex
        self.store = store
        self.public_url = public_url
        self.quiet, self.max_delay = quiet, max_delay
        self.interval = interval  # also check this often: other processes' writes notify no one here
        self.index = index if index is not None else SearchIndex(store)
        self._prefix = PREFIX
        self._cond = threading.Condition()
        self._first: float | None = None  # when the oldest unhandled change arrived
        self._last = 0.0
        self._log = logger
        self._thread = threading.Thread(target=self._loop, name="geoparquet", daemon=True)

    def start(self) -> Refresher:
        self.store.subscribe(self._changed)
        self._thread.start()
        self.mark()  # a store published into while nobody served it
        return self

    def _changed(self, change: Any) -> None:
        if change.key.startswith(self._prefix):
            self.mark()

    def mark(self) -> None:
        with self._cond:
            now = time.monotonic()
            self._first = self._first if self._first is not None else now
            self._last = now
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._first is None:
                    if not self._cond.wait(self.interval):
                        self._first = self._last = time.monotonic()
                while True:
                    now = time.monotonic()
                    due = min(self._last + self.quiet, self._first + self.max_delay)
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                self._first = None
            try:
                results = regenerate_all(self.store, self.index, public_url=self.public_url)
                self._log().info("geoparquet", extra={"results": [r.as_dict() for r in results if r.written]})
            except Exception:  # noqa: BLE001 - logged; the next change or `stacflow geoparquet` retries
                self._log().exception("geoparquet regeneration failed")


def summary(results: Sequence[Result]) -> str:
    return json.dumps([r.as_dict() for r in results])
