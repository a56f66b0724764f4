"""``stacflow check``: the static catalog read back as a STAC client reads it, through the store.

pystac walks it from ``catalog.json`` with ``StoreStacIO`` (the store's own credentials and
endpoint, S3 or a directory): every collection, every linked shard, every linked item. Each item
must be stored at its collection's key, pass the catalog's validation (``items.normalize``) in the
form publishing stores, and parse with pystac; every item file in the store must be linked (else
its event was lost or is still pending: ``stacflow reindex`` links it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..store import NotFound, ObjectStore
from . import catalog
from .access import is_public
from .items import InvalidItem, normalize
from .stacio import StoreStacIO

if TYPE_CHECKING:
    import pystac


@dataclass(frozen=True)
class Problem:
    key: str  # store key (or the href, when it is outside the store)
    problem: str


@dataclass
class CheckReport:
    collections: int = 0
    items: int = 0  # linked items that passed
    problems: list[Problem] = field(default_factory=list)

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
    for link in root.get_child_links():
        collection = _resolve(link, root, io, report)
        if collection is None:
            continue
        if not isinstance(collection, pystac.Collection):
            report.problems.append(Problem(_where(link, io), "a child of the root that is not a collection"))
            continue
        report.collections += 1
        linked = _check_collection(collection, root, io, report)
        for info in store.list(catalog.items_prefix(collection.id)):
            if not catalog.parse_item_key(info.key):
                continue
            if info.key in linked:
                continue
            if _public_item(store, info.key):
                report.problems.append(Problem(info.key, "not linked from the catalog (its event is pending or was "
                                                         "lost: `stacflow reindex` links it)"))
            else:
                report.problems.append(Problem(info.key, _NOT_PUBLIC))
    return report


def _check_collection(collection: pystac.Collection, root: pystac.Catalog, io: StoreStacIO,
                      report: CheckReport) -> set[str]:
    """Check the collection's linked items; returns their keys."""
    linked: set[str] = set()
    shards = list(collection.get_child_links())
    while shards:
        shard = _resolve(shards.pop(0), root, io, report)
        if shard is None:
            continue
        shards.extend(shard.get_child_links())  # a split shard links its sub-shards
        for item_link in shard.get_item_links():
            key = io.key_of(item_link.get_absolute_href() or item_link.href)
            if key is None:
                report.problems.append(Problem(item_link.href, "an item link outside the store"))
                continue
            linked.add(key)
            problem = _item_problem(io, root, collection.id, key)
            if problem:
                report.problems.append(Problem(key, problem))
            else:
                report.items += 1
    return linked


def _item_problem(io: StoreStacIO, root: pystac.Catalog, cid: str, key: str) -> str | None:
    import pystac
    where = catalog.parse_item_key(key)
    if where is None or where[0] != cid:
        return f"linked from collection {cid!r} but not stored under its items/"
    try:
        doc = io.read_json(io.store.url(key))
    except NotFound:
        return "linked but missing"
    except ValueError as err:
        return f"not JSON: {err}"
    try:
        stored, _ = normalize(doc, cid, where[1])
    except InvalidItem as err:
        return f"invalid: {err}"
    from .access import is_public
    if not is_public(stored):
        return _NOT_PUBLIC
    if stored != doc:
        return "not in its published form (its event is pending, or it was changed behind the catalog's back)"
    try:
        pystac.Item.from_dict(doc, href=io.store.url(key), root=root, migrate=False)
    except Exception as err:  # pystac raises several types for what it cannot read
        return f"pystac cannot read it: {err}"
    return None


_NOT_PUBLIC = ("in the static catalog's prefix but not public (its event is pending or was lost: "
               "`stacflow reindex` moves it under " + catalog.PRIVATE_PREFIX + ")")


def _public_item(store: ObjectStore, key: str) -> bool:
    from .access import is_public
    try:
        doc = store.get_json(key)
    except (NotFound, ValueError):
        return True  # reported as missing or unreadable by the walk
    return not isinstance(doc, dict) or is_public(doc)


def _resolve(link: pystac.Link, root: pystac.Catalog, io: StoreStacIO, report: CheckReport) -> Any:
    """The catalog or collection a link points at, or None (reported) when it cannot be read."""
    try:
        return link.resolve_stac_object(root=root).target
    except NotFound:
        report.problems.append(Problem(_where(link, io), "linked but missing"))
    except Exception as err:  # not JSON, not STAC: pystac raises several types
        report.problems.append(Problem(_where(link, io), f"unreadable: {err}"))
    return None


def _where(link: pystac.Link, io: StoreStacIO) -> str:
    href = link.get_absolute_href() or link.href
    return io.key_of(href) or href


# -- derived data against the item JSONs ----------------------------------------------------------
def check_derived(store: ObjectStore, report: CheckReport) -> dict[tuple[str, str], dict[str, Any]]:
    """Shards, collection extents and the search index against the item JSONs (the source records).

    Read-only: safe while the service publishes, though an item whose event is still in flight shows
    up as a difference until it lands. Returns the valid items by (collection, id).
    """
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for cid in catalog.config().collection_ids:
        summaries: dict[str, catalog.Summary] = {}
        # Private copies first: they win over a public one (as in publishing); only public items are
        # in the static catalog's shards, every item is in the search index.
        for private in (True, False):
            for info in store.list(catalog.items_prefix(cid, private=private)):
                where = catalog.parse_item_key(info.key)
                if where is None or (cid, where[1]) in items:
                    continue
                try:
                    doc = store.get_json(info.key)
                    _, summary = normalize(doc, cid, where[1])
                except (NotFound, InvalidItem, ValueError):
                    continue  # deleted meanwhile, or invalid: the catalog walk reports it
                if not private and is_public(doc):
                    summaries[where[1]] = summary
                items[(cid, where[1])] = doc
        _check_shards(store, cid, summaries, report)
    _check_index(store, items, report)
    return items


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
    entries = collection.get(catalog.SHARDS_FIELD, {})
    for hh in sorted(set(by_shard) | {hh for hh, e in entries.items() if e.get("linked", True)}):
        key = catalog.shard_key(cid, hh)
        want = by_shard.get(hh, {})
        held = catalog.shard_items(store, cid, hh)
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


def _check_index(store: ObjectStore, items: dict[tuple[str, str], dict[str, Any]], report: CheckReport) -> None:
    from .index import SearchIndex
    from .table import split_links
    snapshot = SearchIndex(store).snapshot()  # a reader: it writes nothing
    seen: dict[tuple[str, str], bytes] = {}
    for table, alive in snapshot.parts:
        table.raw.prefetch(alive.nonzero()[0])  # bodies still in segment objects: adjacent chunks per request
        for row in alive.nonzero()[0]:
            seen[(table.coll_list[row], table.id_list[row])] = table.raw[int(row)]
    for cid, iid in sorted(set(items) - set(seen)):
        report.problems.append(Problem(catalog.item_key(cid, iid), "not in the search index"))
    for cid, iid in sorted(set(seen) - set(items)):
        report.problems.append(Problem(catalog.item_key(cid, iid), "in the search index but has no item"))
    for key in sorted(set(seen) & set(items)):
        if seen[key] != split_links(items[key])[0]:
            report.problems.append(Problem(catalog.item_key(*key), "the search index holds another version"))
