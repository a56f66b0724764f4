"""The catalog as stac-geoparquet: one partitioned Parquet dataset per collection, next to its ``collection.json``.

Layout, under ``collections/<cid>/geoparquet/``:

- ``manifest.json`` (compare-and-swap): the current ``layout`` (``<P>-<random>``), its number of
  partitions ``P`` (a power of two) and the ``retired`` layouts awaiting deletion;
- ``<layout>/part-<k>.parquet``, ``k < P``: the collection's **public** items (what the static
  catalog holds) whose id hashes to partition ``k`` (the top bits of its SHA-256), written with the
  ``stac-geoparquet`` package (spec 1.1: ``bbox`` a struct of ``xmin/ymin/xmax/ymax``, ``geometry``
  GeoArrow WKB, properties as top-level columns, datetimes as UTC timestamps). Every file of a
  layout has the same Arrow schema (the union of what the items need), so the folder reads as one
  dataset (DuckDB ``read_parquet('<layout>/*.parquet')``, ``pyarrow.dataset``, GeoPandas).

``P`` keeps partitions at ``MAX_ROWS`` items or fewer: chosen as the smallest power of two that
does when a layout is made, kept while the collection stays between ``P * MIN_ROWS`` and
``P * MAX_ROWS`` (hysteresis: an item published and deleted at a boundary does not repartition).

The items come from the search index (its snapshot holds every item's JSON), never from listing
item files. Each file keeps a fingerprint of its rows (ids, versions and log keys, the public URL
that absolute hrefs are built from, the format) in its collection metadata
(``stacflow:fingerprint``); a warm process remembers the fingerprint and schema of each file it has
seen by ETag, so a run costs one conditional GET of the manifest and one LIST of the layout, and a
change rewrites only the partitions whose fingerprint it changed (unchanged ones are neither parsed
nor written), unless it widens the schema (a new property or asset key): then every file is
conformed to the new schema (the unchanged ones from their stored Parquet, not from JSON).

Writes are conditional. A partition file is written with ``If-Match`` the ETag listed *before* the
index snapshot (``If-None-Match: *`` when absent); a writer that loses starts over, so every file
that lands was built from a snapshot taken after the file it replaced was written. A new layout is
written into a fresh folder (create-only) and published by swapping the manifest; the old one is
retired and deleted ``GRACE`` seconds later. After writing, a writer checks the other side of a
possible race (an updater re-reads the manifest, a re-layouter re-lists the old layout) and starts
over when it moved, so concurrent regenerations converge on the newest state. A reader never sees
a partial file nor an item twice (an id has one partition per layout, and a layout's files are read
from one folder); between the partition writes of one run it may see some partitions of the newer
snapshot and others of the older one.

This module imports pyarrow and stac-geoparquet (``requirements-geoparquet.txt``): only the
geoparquet function, ``stacflow export`` and the local regenerator import it, never the API.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..auth.access import ReadScope
from ..store import NotFound, NotModified, ObjectInfo, ObjectStore, PreconditionFailed
from . import catalog
from .hrefs import resolve_item

FORMAT = "stacflow-geoparquet/2"  # bump to rewrite every dataset after a change of how files are built
FINGERPRINT_FIELD = "stacflow:fingerprint"  # in each file's collection metadata
GEOPARQUET_META = b"stac-geoparquet"  # the spec's key-value metadata key
PUBLIC = ReadScope(public=True)  # what the static catalog (and so its mirror) holds
ATTEMPTS = 8  # lost compare-and-swaps before giving up (each retry re-reads the index)
MAX_ROWS = 10_000  # items per partition at most when a layout is chosen (~1 MB, ~3 s to rebuild)
MIN_ROWS = 2_500  # fewer per partition on average: a new layout with fewer partitions
GRACE = 600.0  # seconds a retired layout stays readable (presigned URLs live 300 s)


def partitions_for(count: int, current: int | None = None) -> int:
    """The number of partitions for ``count`` items (a power of two), keeping ``current`` while it fits."""
    if current and count <= current * MAX_ROWS and (current == 1 or count >= current * MIN_ROWS):
        return current
    p = 1
    while count > p * MAX_ROWS:
        p *= 2
    return p


def partition_of(iid: str, partitions: int) -> int:
    """Stable: the top log2(P) bits of the id's SHA-256 (so doubling P splits each partition in two)."""
    if partitions <= 1:
        return 0
    top = int.from_bytes(hashlib.sha256(iid.encode()).digest()[:8], "big")
    return top >> (65 - partitions.bit_length())


@dataclass(frozen=True)
class Rows:
    """Rows of an index snapshot: (table, row number) and what identifies their content."""

    cid: str
    public_url: str | None
    entries: tuple[tuple[str, int, str, Any, int], ...]  # (id, version, log key, table, row), by id

    @property
    def count(self) -> int:
        return len(self.entries)

    def fingerprint(self, label: str = "") -> str:
        digest = hashlib.sha256(f"{FORMAT}\n{self.public_url or ''}\n{self.cid}\n{label}\n".encode())
        for iid, version, log_key, _, _ in self.entries:
            digest.update(f"{iid}\t{version}\t{log_key}\n".encode())
        return digest.hexdigest()

    def items(self, public_url: str | None = None) -> Iterator[dict[str, Any]]:
        """The stored items, their relative hrefs made absolute when the public URL is known."""
        url = public_url if public_url is not None else self.public_url
        base = f"{url.rstrip('/')}/stac" if url else None
        # A segment's bodies are read a batch at a time (Table.items), so rows go by table.
        for table, run in groupby(self.entries, key=lambda entry: entry[3]):
            for item in table.items([entry[4] for entry in run]):
                if base:
                    resolve_item(item, base)
                yield item

    def split(self, partitions: int) -> list[Rows]:
        buckets: list[list[tuple[str, int, str, Any, int]]] = [[] for _ in range(partitions)]
        for entry in self.entries:
            buckets[partition_of(entry[0], partitions)].append(entry)
        return [Rows(self.cid, self.public_url, tuple(b)) for b in buckets]


def select(snapshot: Any, cid: str, public_url: str | None, *, scope: ReadScope = PUBLIC) -> Rows:
    """The live items of ``cid`` that ``scope`` reads, from an index snapshot."""
    entries = []
    for table, alive in snapshot.parts:
        if table.n == 0:
            continue
        mask = alive & table.collection_mask([cid])
        readable = table.readable(scope)
        if readable is not None:
            mask &= readable
        for r in np.flatnonzero(mask):
            row = int(r)
            entries.append((table.id_list[row], int(table.version[row]), table.log_keys[row], table, row))
    entries.sort(key=lambda e: e[:3])
    return Rows(cid, public_url, tuple(entries))


def to_arrow(items: Sequence[dict[str, Any]] | Iterator[dict[str, Any]], cid: str) -> Any:
    """The items as a STAC Arrow table (an empty collection gets the core columns, no rows)."""
    from stac_geoparquet.arrow import parse_stac_items_to_arrow

    items = list(items)
    if items:
        return parse_stac_items_to_arrow(items).read_all()
    # stac-geoparquet infers its schema from items: take the shape of a placeholder, no rows
    return parse_stac_items_to_arrow([_placeholder(cid)]).read_all().slice(0, 0)


def unify(schemas: Sequence[Any]) -> Any:
    """One schema every table converts to (a column missing somewhere becomes null there; ints and
    floats meet as floats; structs such as ``assets`` take the union of their fields)."""
    import pyarrow as pa
    return pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")


def conform(table: Any, schema: Any) -> Any:
    """``table`` with exactly ``schema``'s columns, in its order (absent ones null)."""
    import pyarrow as pa
    columns = []
    for f in schema:
        if f.name in table.schema.names:
            column = table[f.name]
            columns.append(column if column.type == f.type else column.cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def write_parquet(table: Any, cid: str, *, fingerprint: str = "", collection: dict[str, Any] | None = None) -> bytes:
    """The stac-geoparquet file of a STAC Arrow table, the fingerprint in its collection metadata."""
    from stac_geoparquet.arrow import to_parquet

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


def encode(items: Sequence[dict[str, Any]] | Iterator[dict[str, Any]], cid: str, *,
           fingerprint: str = "", collection: dict[str, Any] | None = None) -> bytes:
    """One stac-geoparquet file of ``items``."""
    return write_parquet(to_arrow(items, cid), cid, fingerprint=fingerprint, collection=collection)


def _placeholder(cid: str) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": catalog.STAC_VERSION, "stac_extensions": [], "id": "",
            "collection": cid, "bbox": [0.0, 0.0, 0.0, 0.0],
            "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
            "properties": {"datetime": "1970-01-01T00:00:00Z"}, "links": [], "assets": {}}


@dataclass(frozen=True)
class Footer:
    fingerprint: str  # "" when the file is not ours or damaged: rewritten
    schema: Any  # its Arrow schema (metadata removed), None if unreadable


_footers: dict[tuple[str, str], Footer] = {}  # (key, ETag) -> footer: an ETag names one content
_footers_lock = threading.Lock()


def read_footer(store: ObjectStore, info: ObjectInfo) -> Footer:
    """The fingerprint and schema of a stored file, from its footer (two ranged GETs), remembered by ETag."""
    import pyarrow.parquet as pq
    with _footers_lock:
        known = _footers.get((info.key, info.etag))
    if known is not None:
        return known
    footer = Footer("", None)
    try:
        if info.size >= 12:
            tail = store.open(info.key, start=info.size - 8, length=8).read()
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] == b"PAR1" and length + 12 <= info.size:
                body = store.open(info.key, start=info.size - 8 - length, length=length).read()
                # a parquet file whose only content is the footer: enough for its metadata
                meta = pq.read_metadata(io.BytesIO(b"PAR1" + body + tail))
                footer = Footer(_fingerprint_of(meta.metadata or {}), meta.schema.to_arrow_schema().remove_metadata())
    except NotFound:
        raise
    except Exception:  # noqa: BLE001 - not ours or damaged: rewrite it
        footer = Footer("", None)
    remember(info.key, info.etag, footer)
    return footer


def remember(key: str, etag: str, footer: Footer) -> None:
    with _footers_lock:
        if len(_footers) > 4096:  # layouts come and go: forget the oldest half
            for old in list(_footers)[:2048]:
                del _footers[old]
        _footers[(key, etag)] = footer


def _fingerprint_of(metadata: dict[bytes, bytes]) -> str:
    try:
        doc = json.loads(metadata.get(GEOPARQUET_META, b"{}"))
        found = [c.get(FINGERPRINT_FIELD) for c in (doc.get("collections") or {}).values() if isinstance(c, dict)]
    except (ValueError, AttributeError):
        found = []
    return next((f for f in found if isinstance(f, str)), "")


def stored_fingerprint(store: ObjectStore, key: str) -> tuple[str, str] | None:
    """(ETag, fingerprint) of a stored file; None if absent."""
    try:
        info = store.head(key)
        return info.etag, read_footer(store, info).fingerprint
    except NotFound:
        return None


# == the manifest ==========================================================================
@dataclass(frozen=True)
class Manifest:
    layout: str
    partitions: int
    format: str = FORMAT
    retired: tuple[tuple[str, float], ...] = ()  # (key prefix, retired at, epoch s)
    etag: str | None = None  # None: not stored

    def key(self, cid: str, part: int) -> str:
        return catalog.geoparquet_part_key(cid, self.layout, part)

    def prefix(self, cid: str) -> str:
        return f"{catalog.geoparquet_prefix(cid)}{self.layout}/"

    def doc(self) -> dict[str, Any]:
        return {"format": self.format, "layout": self.layout, "partitions": self.partitions,
                "retired": [{"prefix": p, "since": t} for p, t in self.retired]}


def read_manifest(store: ObjectStore, cid: str, known: Manifest | None = None) -> Manifest | None:
    """The stored manifest (one conditional GET when ``known`` is what was read last); None if absent."""
    key = catalog.geoparquet_manifest_key(cid)
    try:
        obj = store.get(key, if_none_match=known.etag) if known is not None and known.etag else store.get(key)
    except NotModified:
        return known
    except NotFound:
        return None
    doc = obj.json()
    return Manifest(layout=str(doc["layout"]), partitions=int(doc["partitions"]), format=str(doc.get("format", "")),
                    retired=tuple((str(r["prefix"]), float(r["since"])) for r in doc.get("retired", [])),
                    etag=obj.etag)


def _swap_manifest(store: ObjectStore, cid: str, new: Manifest, old: Manifest | None) -> Manifest:
    key = catalog.geoparquet_manifest_key(cid)
    body = json.dumps(new.doc()).encode()
    if old is None or old.etag is None:
        info = store.put(key, body, if_none_match=True, content_type="application/json")
    else:
        info = store.put(key, body, if_match=old.etag, content_type="application/json")
    return Manifest(new.layout, new.partitions, new.format, new.retired, info.etag)


_manifests: dict[tuple[int, str], Manifest | None] = {}  # (id(store), cid) -> last read, for conditional GETs
# (id(store), cid) -> (fingerprint of the collection's rows, manifest ETag, when): the dataset this
# process last wrote or checked file by file. While the index and the manifest still match it, a run
# skips the LIST of the files (a LIST costs 12.5 GETs on S3); at least every VERIFY_EVERY seconds it
# lists them anyway, in case another writer left a state this process did not see.
@dataclass(frozen=True)
class _Seen:
    fingerprint: str  # of the collection's rows
    etag: str | None  # of the manifest
    at: float  # monotonic
    snapshot: Any  # the index view the rows came from (the same object while the index is unchanged)
    count: int


_verified: dict[tuple[int, str], _Seen] = {}
VERIFY_EVERY = 600.0


# == regeneration ==========================================================================
@dataclass(frozen=True)
class Result:
    cid: str
    key: str  # the dataset's folder (the current layout)
    items: int
    written: bool  # False: every stored file was already current
    bytes: int
    seconds: float
    attempts: int
    partitions: int = 1
    parts_written: tuple[int, ...] = ()
    relayout: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.cid, "key": self.key, "items": self.items, "written": self.written,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "attempts": self.attempts,
                "partitions": self.partitions, "parts_written": list(self.parts_written),
                "relayout": self.relayout}


@dataclass
class _Run:
    """What one attempt wrote."""

    manifest: Manifest
    parts: list[int]
    bytes: int = 0
    relayout: bool = False


def regenerate(store: ObjectStore, index: Any, cid: str, *, public_url: str | None = None,
               force: bool = False, now: Callable[[], float] = time.time) -> Result:
    """Bring the collection's stac-geoparquet dataset up to the index's current state (module doc)."""
    start = time.monotonic()
    if catalog.config().category(cid) is None:
        raise ValueError(f"unknown collection {cid!r}")
    timings: dict[str, float] = {}
    for attempt in range(1, ATTEMPTS + 1):
        t = time.monotonic()
        manifest = read_manifest(store, cid, _manifests.get((id(store), cid)))
        _manifests[(id(store), cid)] = manifest
        current = manifest if manifest is not None and manifest.format == FORMAT else None
        seen = _verified.get((id(store), cid))
        if current is not None and not force and seen is not None and seen.etag == current.etag \
                and time.monotonic() - seen.at < VERIFY_EVERY:
            snapshot = index.snapshot()
            rows = None if snapshot is seen.snapshot else select(snapshot, cid, public_url)  # same view, same rows
            if rows is None or rows.fingerprint() == seen.fingerprint:  # unchanged since we wrote or checked it
                _verified[(id(store), cid)] = _Seen(seen.fingerprint, seen.etag, seen.at, snapshot, seen.count)
                _collect(store, cid, current, now())
                return Result(cid, current.prefix(cid), seen.count, False, 0, time.monotonic() - start, attempt,
                              current.partitions)
        # listed before the snapshot: whatever we replace is older than it
        listing = {o.key: o for o in store.list(current.prefix(cid))} if current is not None else {}
        timings["manifest_list_s"] = time.monotonic() - t
        t = time.monotonic()
        snapshot = index.snapshot()
        rows = select(snapshot, cid, public_url)
        timings["index_select_s"] = time.monotonic() - t
        partitions = partitions_for(rows.count, current.partitions if current is not None else None)
        try:
            if current is None or partitions != current.partitions or force:
                run = _relayout(store, cid, manifest, listing, rows, partitions, now(), timings)
            else:
                run = _update(store, cid, current, listing, rows, timings)
        except (PreconditionFailed, NotFound):
            force = False  # someone wrote (or retired a layout) meanwhile: their files may already be current
            time.sleep(min(0.05 * attempt, 0.5))
            continue
        _manifests[(id(store), cid)] = run.manifest
        if run.parts and _moved(store, cid, run, manifest, listing):
            continue  # a racing writer's newer state may be missing from what we wrote: again
        _verified[(id(store), cid)] = _Seen(rows.fingerprint(), run.manifest.etag, time.monotonic(), snapshot, rows.count)
        t = time.monotonic()
        if run.parts:
            link(store, cid, run.manifest)
        _collect(store, cid, run.manifest, now())
        timings["link_collect_s"] = time.monotonic() - t
        return Result(cid, run.manifest.prefix(cid), rows.count, bool(run.parts), run.bytes,
                      time.monotonic() - start, attempt, run.manifest.partitions, tuple(run.parts),
                      run.relayout, {k: round(v, 3) for k, v in timings.items()})
    raise PreconditionFailed(f"{catalog.geoparquet_prefix(cid)}: lost {ATTEMPTS} compare-and-swaps in a row")


def _moved(store: ObjectStore, cid: str, run: _Run, before: Manifest | None, listing: dict[str, ObjectInfo]) -> bool:
    """After our writes: did a racing writer move the other side? An updater's partitions count only
    while their layout is current; a new layout was built from a snapshot that may predate an
    update written to the old layout since we listed it."""
    if not run.relayout:
        return read_manifest(store, cid, run.manifest) != run.manifest
    if before is None or before.format != FORMAT:
        return False
    now = {o.key: o.etag for o in store.list(before.prefix(cid))}
    return now != {k: o.etag for k, o in listing.items()}


def _collection_doc(store: ObjectStore, cid: str) -> dict[str, Any]:
    return catalog.public(catalog.read_collection(store, cid) or {})


def _update(store: ObjectStore, cid: str, manifest: Manifest, listing: dict[str, ObjectInfo],
            rows: Rows, timings: dict[str, float]) -> _Run:
    """Rewrite the partitions of the current layout whose rows changed (all of them if the schema widens)."""
    import pyarrow.parquet as pq
    t = time.monotonic()
    parts = rows.split(manifest.partitions)
    keys = [manifest.key(cid, k) for k in range(manifest.partitions)]
    wanted = [part.fingerprint(f"{k}/{manifest.partitions}") for k, part in enumerate(parts)]
    footers = {k: read_footer(store, listing[key]) for k, key in enumerate(keys) if key in listing}
    changed = [k for k in range(manifest.partitions) if k not in footers or footers[k].fingerprint != wanted[k]]
    timings["fingerprints_s"] = time.monotonic() - t
    if not changed:
        return _Run(manifest, [])
    t = time.monotonic()
    tables = {k: to_arrow(parts[k].items(), cid) for k in changed}
    timings["parse_s"] = time.monotonic() - t
    kept = [f.schema for k, f in footers.items() if k not in tables and f.schema is not None]
    schema = unify(kept + _shaping(tables, parts, changed))
    for k in range(manifest.partitions):  # a wider schema: conform the unchanged files too
        if k not in tables and (k not in footers or footers[k].schema != schema):
            tables[k] = pq.read_table(io.BytesIO(store.get(keys[k]).body))
    t = time.monotonic()
    run = _Run(manifest, sorted(tables))
    collection = _collection_doc(store, cid)
    for k in run.parts:
        body = write_parquet(conform(tables[k], schema), cid, fingerprint=wanted[k], collection=collection)
        stored = listing.get(keys[k])
        if stored is None:
            info = store.put(keys[k], body, if_none_match=True, content_type=catalog.PARQUET)
        else:
            info = store.put(keys[k], body, if_match=stored.etag, content_type=catalog.PARQUET)
        remember(keys[k], info.etag, Footer(wanted[k], schema))
        run.bytes += len(body)
    timings["write_s"] = time.monotonic() - t
    return run


def _shaping(tables: dict[int, Any], parts: Sequence[Rows], ks: Sequence[int]) -> list[Any]:
    """Schemas that shape the union: those of tables with rows (an empty partition's placeholder
    schema only when nothing else has rows)."""
    shaping = [tables[k].schema for k in ks if parts[k].count]
    return shaping or [tables[k].schema for k in ks]


def _relayout(store: ObjectStore, cid: str, old: Manifest | None, listing: dict[str, ObjectInfo], rows: Rows,
              partitions: int, at: float, timings: dict[str, float]) -> _Run:
    """Write a whole new layout into a fresh folder, then publish it by swapping the manifest (the
    old layout, and the unpartitioned file of format 1, are retired)."""
    t = time.monotonic()
    new = Manifest(f"{partitions}-{uuid.uuid4().hex[:8]}", partitions)
    parts = rows.split(partitions)
    tables = {k: to_arrow(part.items(), cid) for k, part in enumerate(parts)}
    timings["parse_s"] = time.monotonic() - t
    schema = unify(_shaping(tables, parts, range(partitions)))
    collection = _collection_doc(store, cid)
    run = _Run(new, list(range(partitions)), relayout=True)
    t = time.monotonic()
    written = []
    try:
        for k in run.parts:
            fingerprint = parts[k].fingerprint(f"{k}/{partitions}")
            body = write_parquet(conform(tables[k], schema), cid, fingerprint=fingerprint, collection=collection)
            info = store.put(new.key(cid, k), body, if_none_match=True, content_type=catalog.PARQUET)
            written.append(new.key(cid, k))
            remember(new.key(cid, k), info.etag, Footer(fingerprint, schema))
            run.bytes += len(body)
        retired = list(old.retired) if old is not None else []
        if old is None or old.format != FORMAT:
            retired.append((catalog.geoparquet_legacy_key(cid), at))  # format 1's single file, if any
        if old is not None and old.format == FORMAT:
            retired.append((old.prefix(cid), at))
        elif old is not None:  # a format we no longer write: its folder goes too
            retired.append((f"{catalog.geoparquet_prefix(cid)}{old.layout}/", at))
        new = Manifest(new.layout, partitions, FORMAT, tuple(retired))
        run.manifest = _swap_manifest(store, cid, new, old)
    except PreconditionFailed:
        for key in written:  # ours, never published: nobody reads them
            store.delete(key)
        raise
    timings["write_s"] = time.monotonic() - t
    return run


def link(store: ObjectStore, cid: str, manifest: Manifest) -> None:
    """Point the collection's mirror assets at the manifest's layout (one CAS, when they differ)."""
    want = catalog.geoparquet_assets(cid, manifest.layout, manifest.partitions)

    def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
        found = doc.get("assets")
        assets: dict[str, Any] = found if isinstance(found, dict) else {}
        others = {k: v for k, v in assets.items()
                  if k != catalog.GEOPARQUET_ASSET and catalog.geoparquet_asset_part(k, v) is None}
        new = dict(others, **want)
        return None if new == assets else dict(doc, assets=new)

    try:
        store.update_json(catalog.collection_key(cid), mutate)
    except NotFound:
        pass  # the catalog function creates it on the first publication; the next write links it


link_from_collection = link


def _collect(store: ObjectStore, cid: str, manifest: Manifest, at: float) -> None:
    """Delete retired layouts older than ``GRACE`` (after making sure the collection no longer links
    them), then drop them from the manifest; a lost swap leaves them to the next run (idempotent)."""
    due = [(p, t) for p, t in manifest.retired if t + GRACE <= at]
    if not due:
        return
    link(store, cid, manifest)
    for prefix, _ in due:
        for info in list(store.list(prefix)):
            store.delete(info.key)
    new = Manifest(manifest.layout, manifest.partitions, manifest.format,
                   tuple(r for r in manifest.retired if r not in due))
    try:
        _manifests[(id(store), cid)] = _swap_manifest(store, cid, new, manifest)
    except PreconditionFailed:
        pass


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
        body = encode(counted(), sel.cid, fingerprint=sel.fingerprint(),
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
