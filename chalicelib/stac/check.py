"""``stacflow check``: the static catalog read back as a STAC client reads it, through the store.

pystac walks it from ``catalog.json`` with ``StoreStacIO`` (the store's own credentials and
endpoint, S3 or a directory): every collection, every linked shard, every linked item. Each item
must be stored at its collection's key, pass the catalog's validation (``items.normalize``) in the
form publishing stores, and parse with pystac; every item file in the store must be linked (else
its event was lost or is still pending: ``stacflow reindex`` links it).

Linear in the catalog's size, memory bounded: each document is read once and parsed on its own,
attached to no tree (``Link.resolve_stac_object(root=...)`` caches every object it reads in the
root, items included, and merges that whole cache at each catalog it resolves: quadratic time and
every item held). Item files are read ``READ_AHEAD`` ahead, ``READERS`` side by side, while earlier
ones are checked; of each item only what ``check_derived`` needs is kept (``_Seen``), so it reads
no item the walk has read.
"""
from __future__ import annotations

import hashlib
import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from ..store import NotFound, ObjectStore
from . import catalog
from .access import is_public
from .items import InvalidItem, normalize
from .stacio import StoreStacIO

if TYPE_CHECKING:
    import pystac

READERS = 1  # item GETs in flight (S3: parallel requests on the client's connection pool)
READ_AHEAD = 256  # items read ahead of the one being checked: bounds the bodies held

E = TypeVar("E")


@dataclass(frozen=True)
class Problem:
    key: str  # store key (or the href, when it is outside the store)
    problem: str


@dataclass(frozen=True, slots=True)
class _Seen:
    """What ``check_derived`` needs of a valid item file the walk read."""
    summary: catalog.Summary
    public: bool
    indexed: bytes  # digest of the body the search index should hold for it


@dataclass
class CheckReport:
    collections: int = 0
    items: int = 0  # linked items that passed
    problems: list[Problem] = field(default_factory=list)
    # Item files the walk read, by key: None when gone, not JSON or invalid (reported by the walk,
    # skipped by check_derived). check_derived reads only the others.
    seen: dict[str, _Seen | None] = field(default_factory=dict, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"collections": self.collections, "items": self.items,
                "problems": [{"key": p.key, "problem": p.problem} for p in self.problems]}


def check_catalog(store: ObjectStore) -> CheckReport:
    import pystac
    io = StoreStacIO(store)
    report = CheckReport()
    try:
        root = pystac.Catalog.from_file(store.url(catalog.ROOT_KEY), stac_io=io)
    except NotFound:
        report.problems.append(Problem(catalog.ROOT_KEY, "missing: nothing is published"))
        return report
    with _readers(store) as pool, _few_collections():
        for link in root.get_child_links():
            collection = _resolve(link, io, report.problems)
            if collection is None:
                continue
            if not isinstance(collection, pystac.Collection):
                report.problems.append(Problem(_where(link, io), "a child of the root that is not a collection"))
                continue
            report.collections += 1
            linked = _check_collection(collection, io, pool, report)
            for info in store.list(catalog.items_prefix(collection.id)):
                if not catalog.parse_item_key(info.key):
                    continue
                if info.key in linked:
                    continue
                if _public_item(store, info.key):
                    report.problems.append(Problem(info.key, "not linked from the catalog (its event is pending or "
                                                             "was lost: `stacflow reindex` links it)"))
                else:
                    report.problems.append(Problem(info.key, _NOT_PUBLIC))
    return report


@dataclass(frozen=True, slots=True)
class _ItemLink:
    key: str
    href: str  # absolute, as pystac resolves it from its shard


def _check_collection(collection: pystac.Collection, io: StoreStacIO, pool: ThreadPoolExecutor | None,
                      report: CheckReport) -> set[str]:
    """Check the collection's linked items; returns their keys."""
    cid = collection.id
    linked: set[str] = set()

    def body(event: Problem | _ItemLink) -> str | None:
        return event.key if isinstance(event, _ItemLink) and _in_collection(event.key, cid) else None

    for event, read in _read_ahead(pool, io.store, _walk(collection, io), body):
        if isinstance(event, Problem):
            report.problems.append(event)
            continue
        linked.add(event.key)
        problem = _item_problem(io, event, cid, read, report.seen)
        if problem:
            report.problems.append(Problem(event.key, problem))
        else:
            report.items += 1
    return linked


def _walk(collection: pystac.Collection, io: StoreStacIO) -> Iterator[Problem | _ItemLink]:
    """The collection's item links, breadth first through its shards and sub-shards, and the
    problems met on the way, in the order a client meets them. Each shard is dropped once its links
    are taken: only the frontier is held."""
    import pystac
    shards = deque(collection.get_child_links())
    while shards:
        link = shards.popleft()
        problems: list[Problem] = []
        shard = _resolve(link, io, problems)
        yield from problems
        if shard is None:
            continue
        if not isinstance(shard, pystac.Catalog):
            yield Problem(_where(link, io), "a shard that is not a catalog")
            continue
        shards.extend(shard.get_child_links())  # a split shard links its sub-shards
        for item_link in shard.get_item_links():
            href = item_link.get_absolute_href() or item_link.href
            key = io.key_of(href)
            if key is None:
                yield Problem(item_link.href, "an item link outside the store")
            else:
                yield _ItemLink(key, href)


@contextmanager
def _few_collections() -> Iterator[None]:
    """A parsed pystac item is a reference cycle (its links and assets name it as their owner), freed
    only by the cycle collector, which by default runs every 700 container allocations and then also
    walks what the check keeps (``report.seen``): ~17% of the CPU. Collect every 50,000 instead
    (a few MB of parsed items pending at most)."""
    import gc
    was = gc.get_threshold()
    gc.set_threshold(50_000, *was[1:])
    try:
        yield
    finally:
        gc.set_threshold(*was)


@contextmanager
def _readers(store: ObjectStore) -> Iterator[ThreadPoolExecutor | None]:
    """The threads reading item files side by side, or None: read them in turn."""
    if store.read_parallelism <= 1:
        yield None
        return
    with ThreadPoolExecutor(store.read_parallelism, thread_name_prefix="check-read") as pool:
        yield pool


def _read_ahead(pool: ThreadPoolExecutor | None, store: ObjectStore, events: Iterable[E],
                key_of: Callable[[E], str | None]) -> Iterator[tuple[E, Future[bytes] | None]]:
    """``events`` in order, each with the future of the body of ``key_of(event)`` (None: nothing to
    read), at most ``READ_AHEAD`` read ahead of the one yielded (without ``pool``: read when yielded)."""
    def get(key: str) -> bytes:
        return store.get(key).body

    def now(key: str) -> Future[bytes]:
        done: Future[bytes] = Future()
        try:
            done.set_result(get(key))
        except Exception as err:  # raised again where the result is taken, as by the pool's
            done.set_exception(err)
        return done

    if pool is None:
        for event in events:
            key = key_of(event)
            yield event, now(key) if key is not None else None
        return
    window: deque[tuple[E, Future[bytes] | None]] = deque()
    for event in events:
        key = key_of(event)
        window.append((event, pool.submit(get, key) if key is not None else None))
        if len(window) >= READ_AHEAD:
            yield window.popleft()
    while window:
        yield window.popleft()


def _in_collection(key: str, cid: str) -> bool:
    where = catalog.parse_item_key(key)
    return where is not None and where[0] == cid


def _item_problem(io: StoreStacIO, link: _ItemLink, cid: str, read: Future[bytes] | None,
                  seen: dict[str, _Seen | None]) -> str | None:
    import pystac
    if read is None:
        return f"linked from collection {cid!r} but not stored under its items/"
    key = link.key
    where = catalog.parse_item_key(key)
    assert where is not None
    try:
        doc = io.json_loads(read.result().decode("utf-8"))
    except NotFound:
        seen[key] = None
        return "linked but missing"
    except ValueError as err:
        return f"not JSON: {err}"  # not in seen: check_derived reads it as JSON of its own
    seen[key] = None
    try:
        stored, summary = normalize(doc, cid, where[1])
    except InvalidItem as err:
        return f"invalid: {err}"
    public = is_public(doc)
    seen[key] = _Seen(summary, public, _indexed(doc))
    if not public:
        return _NOT_PUBLIC
    if stored != doc:
        return "not in its published form (its event is pending, or it was changed behind the catalog's back)"
    try:  # doc is not used after this: pystac may take it apart instead of copying it
        pystac.Item.from_dict(doc, href=link.href, migrate=False, preserve_dict=False)
    except Exception as err:  # pystac raises several types for what it cannot read
        return f"pystac cannot read it: {err}"
    return None


def _indexed(doc: dict[str, Any]) -> bytes:
    """A digest of the body the search index holds for the item ``doc``."""
    from .table import split_links
    return _digest(split_links(doc)[0])


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


_NOT_PUBLIC = ("in the static catalog's prefix but not public (its event is pending or was lost: "
               "`stacflow reindex` moves it under " + catalog.PRIVATE_PREFIX + ")")


def _public_item(store: ObjectStore, key: str) -> bool:
    try:
        doc = store.get_json(key)
    except (NotFound, ValueError):
        return True  # reported as missing or unreadable by the walk
    return not isinstance(doc, dict) or is_public(doc)


def _resolve(link: pystac.Link, io: StoreStacIO, problems: list[Problem]) -> Any:
    """The catalog or collection a link points at, read and parsed by pystac on its own (attached to
    no root), or None (reported in ``problems``) when it cannot be read."""
    href = link.get_absolute_href() or link.href
    try:
        return _read_catalog(io, href)
    except NotFound:
        problems.append(Problem(_where(link, io), "linked but missing"))
    except Exception as err:  # not JSON, not STAC: pystac raises several types
        problems.append(Problem(_where(link, io), f"unreadable: {err}"))
    return None


def _read_catalog(io: StoreStacIO, href: str) -> pystac.STACObject:
    """``io.read_stac_object(href)`` without the deep copy pystac's migration makes of a document
    already at its STAC version (a shard's: ~130 links)."""
    import pystac
    from pystac.serialization import identify_stac_object_type
    doc = io.read_json(href)
    kind = identify_stac_object_type(doc)
    parse = {pystac.STACObjectType.CATALOG: pystac.Catalog.from_dict,
             pystac.STACObjectType.COLLECTION: pystac.Collection.from_dict}.get(kind)  # type: ignore[arg-type]
    if parse is None or doc.get("stac_version") != pystac.get_stac_version():
        return io.stac_object_from_dict(doc, href=href, preserve_dict=False)
    return parse(doc, href=href, migrate=False, preserve_dict=False)


def _where(link: pystac.Link, io: StoreStacIO) -> str:
    href = link.get_absolute_href() or link.href
    return io.key_of(href) or href


# -- derived data against the item JSONs ----------------------------------------------------------
def check_derived(store: ObjectStore, report: CheckReport) -> None:
    """Shards, collection extents and the search index against the item JSONs (the source records).

    Read-only: safe while the service publishes, though an item whose event is still in flight shows
    up as a difference until it lands. Items the catalog walk read (``report.seen``) are not read
    again; the others are read side by side, as by the walk.
    """
    indexed: dict[tuple[str, str], bytes] = {}  # valid items: digest of the body the index should hold
    with _readers(store) as pool, _few_collections():
        for cid in catalog.config().collection_ids:
            summaries: dict[str, catalog.Summary] = {}
            # Private copies first: they win over a public one (as in publishing); only public items
            # are in the static catalog's shards, every item is in the search index.
            for private in (True, False):
                def wanted(key: str) -> bool:
                    where = catalog.parse_item_key(key)
                    return where is not None and (cid, where[1]) not in indexed

                keys = (info.key for info in store.list(catalog.items_prefix(cid, private=private)) if wanted(info.key))

                def unseen(key: str) -> str | None:
                    return None if key in report.seen else key

                for key, read in _read_ahead(pool, store, keys, unseen):
                    seen = report.seen.get(key) if read is None else _read_item(read, cid, key)
                    if seen is None:
                        continue  # deleted meanwhile, or invalid: the catalog walk reports it
                    iid = catalog.parse_item_key(key)[1]  # type: ignore[index]
                    if not private and seen.public:
                        summaries[iid] = seen.summary
                    indexed[(cid, iid)] = seen.indexed
            _check_shards(store, cid, summaries, report)
    _check_index(store, indexed, report)


def _read_item(read: Future[bytes], cid: str, key: str) -> _Seen | None:
    try:
        doc = json.loads(read.result())
        _, summary = normalize(doc, cid, catalog.parse_item_key(key)[1])  # type: ignore[index]
    except (NotFound, InvalidItem, ValueError):
        return None
    return _Seen(summary, is_public(doc), _indexed(doc))
def _check_shards(store: ObjectStore, cid: str, summaries: dict[str, catalog.Summary], report: CheckReport) -> None:
    by_shard: dict[str, dict[str, catalog.Summary]] = {}
    for iid, summary in summaries.items():
        by_shard.setdefault(catalog.shard_of(iid), {})[iid] = summary
    try:
        collection = store.get_json(catalog.collection_key(cid))
    except NotFound:
        if summaries:
            report.problems.append(Problem(catalog.collection_key(cid), f"missing, with {len(summaries)} item(s)"))
        return
    except ValueError as err:
        report.problems.append(Problem(catalog.collection_key(cid), f"unreadable: {err}"))
        return
    entries = collection.get(catalog.SHARDS_FIELD, {})
    for hh in sorted(set(by_shard) | {hh for hh, e in entries.items() if e.get("linked", True)}):
        key = catalog.shard_key(cid, hh)
        want = by_shard.get(hh, {})
        try:
            held = catalog.shard_items(store, cid, hh)
        except ValueError as err:  # not JSON (here or in a sub-shard): the walk names the page
            report.problems.append(Problem(key, f"unreadable: {err}"))
            continue
        for iid in sorted(set(want) - set(held)):
            report.problems.append(Problem(catalog.item_key(cid, iid), f"missing from its shard {key}"))
        for iid in sorted(set(held) - set(want)):
            report.problems.append(Problem(key, f"lists {iid!r}, which has no item"))
        for iid in sorted(i for i in set(want) & set(held) if held[i] != want[i]):
            report.problems.append(Problem(key, f"extent of {iid!r} is stale"))
        entry = entries.get(hh)
        if bool(want) != (entry is not None and bool(entry.get("linked", True))):
            report.problems.append(Problem(catalog.collection_key(cid), f"its link to shard {hh} differs "
                                                                        "from the shard's items"))
    if summaries and collection.get("extent") != catalog._extent(summaries.values()):
        report.problems.append(Problem(catalog.collection_key(cid), "extent differs from its items'"))


def _check_index(store: ObjectStore, items: dict[tuple[str, str], bytes], report: CheckReport) -> None:
    """The index's live rows against ``items`` (digests of the bodies they should hold)."""
    from .index import SearchIndex
    snapshot = SearchIndex(store).snapshot()  # a reader: it writes nothing
    seen: dict[tuple[str, str], bytes] = {}
    for table, alive in snapshot.parts:
        rows = alive.nonzero()[0]
        table.raw.prefetch(rows)  # bodies still in segment objects: adjacent chunks per request
        for row in rows:
            seen[(table.coll_list[row], table.id_list[row])] = _digest(table.raw[int(row)])
    for cid, iid in sorted(set(items) - set(seen)):
        report.problems.append(Problem(catalog.item_key(cid, iid), "not in the search index"))
    for cid, iid in sorted(set(seen) - set(items)):
        report.problems.append(Problem(catalog.item_key(cid, iid), "in the search index but has no item"))
    for key in sorted(set(seen) & set(items)):
        if seen[key] != items[key]:
            report.problems.append(Problem(catalog.item_key(*key), "the search index holds another version"))
