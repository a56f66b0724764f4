"""The static STAC catalog in the store: layout, the category config, and its derived documents.

Layout (every href relative, so the tree browses the same from a directory, a bucket or a mirror)::

    catalog.json                                   root; one child per category
    collections/<cid>/collection.json              one per category; children = non-empty shards
    collections/<cid>/shards/<hh>.json             sub-catalog of the items whose id hashes to <hh>
    collections/<cid>/items/<id>.json              the items (written by publishers; truth)

Items are spread over 256 hash shards so that publishing one item rewrites one small shard, never
a page listing every item. Each shard keeps a compact summary (bbox + interval) per item and a
revision that grows with every write; the collection keeps, per shard, the shard's "view" (linked
or not, and its summary) tagged with the revision it was derived from, so deleting an item shrinks
the extents without reading any item.

Writers race on these documents (one event per item, any number of workers), so the collection's
entry for a shard is always derived from the shard's own state after the writer's compare-and-swap
on it, never from the writer's delta, and an entry with a lower revision never replaces a higher
one: whatever order writers reach the shard and the collection in, the collection ends up with
the view of the shard's latest revision. A write that leaves the shard's view as it was (most
publishes into a non-empty shard whose extent already covers the item) skips the collection: the
writer that produced that view records it. Empty shards stay as unlinked documents so that their
revision never restarts.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..store import NotFound, ObjectStore, PreconditionFailed

STAC_VERSION = "1.1.0"
ROOT_KEY = "catalog.json"
JSON = "application/json"
GEOJSON = "application/geo+json"
PARQUET = "application/vnd.apache.parquet"
GEOPARQUET_ASSET = "geoparquet"  # the collection's assets naming its stac-geoparquet mirror: geoparquet-<k>
MIRROR_ROLE = "collection-mirror"  # stac-geoparquet spec: the role of a collection's Parquet mirror
SHARD_COUNT = 256
SHARDS_FIELD = "stacflow:shards"  # collection: {hh: {"rev", "linked", "summary"} of the shard}
ITEMS_FIELD = "stacflow:items"  # shard: {item id: Summary of the item}
REV_FIELD = "stacflow:rev"  # shard: revision, greater after every write
PRIVATE_FIELDS = (SHARDS_FIELD, ITEMS_FIELD, REV_FIELD)
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
# Links that place a document in a tree: the static catalog and the API each write their own.
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items", "next", "prev",
                             QUERYABLES_REL})
# Writers' clocks agree to better than this (as the search index's settle time assumes).
CLOCK_SKEW_NS = 5_000_000_000
_SHARD_IDS = frozenset(f"{i:02x}" for i in range(SHARD_COUNT))

# Items the static catalog must not hold (of a private or internal project, or of a project whose
# visibility is unknown) live under this prefix: never linked, readable only through the API, and
# a bucket policy that makes the static catalog public leaves it out.
PRIVATE_PREFIX = "private/"
_ITEM_KEY = re.compile(r"^(private/)?collections/([^/]+)/items/([^/]+)\.json$")

# [minx, miny, maxx, maxy, start, end]; bbox entries are None for an item without geometry,
# instants are fixed-width UTC strings so that they order as text.
Summary = list[Any]


@dataclass(frozen=True)
class Category:
    """One collection, selected in GitLab by a topic (as SharingHub's categories are)."""

    id: str
    title: str
    description: str
    topic: str
    keywords: tuple[str, ...] = ()
    license: str = "other"


@dataclass(frozen=True)
class CatalogConfig:
    id: str
    title: str
    description: str
    categories: tuple[Category, ...] = field(default_factory=tuple)

    def category(self, cid: str) -> Category | None:
        return next((c for c in self.categories if c.id == cid), None)

    @property
    def collection_ids(self) -> set[str]:
        return {c.id for c in self.categories}


@lru_cache(maxsize=1)
def config() -> CatalogConfig:
    raw = json.loads((Path(__file__).with_name("collections.json")).read_text())
    cats = tuple(Category(id=c["id"], title=c["title"], description=c["description"], topic=c["topic"],
                          keywords=tuple(c.get("keywords", ())), license=c.get("license", "other"))
                 for c in raw["collections"])
    return CatalogConfig(id=raw["catalog"]["id"], title=raw["catalog"]["title"],
                         description=raw["catalog"]["description"], categories=cats)


# -- keys and hrefs -------------------------------------------------------------------
def collection_key(cid: str) -> str:
    return f"collections/{cid}/collection.json"


def geoparquet_prefix(cid: str) -> str:
    """Where the collection's stac-geoparquet dataset lives (``chalicelib.stac.geoparquet`` writes it):
    ``manifest.json`` naming the current layout, and one folder of partition files per layout."""
    return f"collections/{cid}/geoparquet/"


def geoparquet_manifest_key(cid: str) -> str:
    return f"{geoparquet_prefix(cid)}manifest.json"


def geoparquet_part_key(cid: str, layout: str, part: int) -> str:
    return f"{geoparquet_prefix(cid)}{layout}/part-{part:05d}.parquet"


def geoparquet_legacy_key(cid: str) -> str:
    """The single file of the unpartitioned layout (before ``stacflow-geoparquet/2``): retired on upgrade."""
    return f"collections/{cid}/{cid}.parquet"


def geoparquet_asset_part(key: str, asset: Any) -> int | None:
    """The partition an asset of the collection mirrors (``geoparquet-<k>``, role collection-mirror), else None."""
    head, _, tail = key.partition("-")
    if head != GEOPARQUET_ASSET or not tail.isdigit() or not isinstance(asset, dict):
        return None
    return int(tail) if MIRROR_ROLE in (asset.get("roles") or []) else None


def geoparquet_assets(cid: str, layout: str, partitions: int) -> dict[str, dict[str, Any]]:
    """The collection's assets linking its stac-geoparquet mirror, one per partition file (hrefs
    relative to collection.json): every file is one GET away over plain HTTPS, no listing needed."""
    return {f"{GEOPARQUET_ASSET}-{k}": {
        "href": f"./geoparquet/{layout}/part-{k:05d}.parquet", "type": PARQUET,
        "title": f"Public items as stac-geoparquet, partition {k + 1} of {partitions}",
        "roles": ["data", MIRROR_ROLE]} for k in range(partitions)}


def shard_key(cid: str, shard: str) -> str:
    return f"collections/{cid}/shards/{shard}.json"


def item_key(cid: str, item_id: str, *, private: bool = False) -> str:
    return f"{PRIVATE_PREFIX if private else ''}collections/{cid}/items/{item_id}.json"


def stored_item_key(item: Mapping[str, Any]) -> str:
    """Where ``item`` belongs: the static catalog if it is public, else the private prefix."""
    from .access import is_public
    return item_key(item["collection"], item["id"], private=not is_public(item))


def items_prefix(cid: str, *, private: bool = False) -> str:
    return f"{PRIVATE_PREFIX if private else ''}collections/{cid}/items/"


def parse_item_key(key: str) -> tuple[str, str] | None:
    """(collection id, item id) of an item key, public or private, or None."""
    m = _ITEM_KEY.match(key)
    return (m.group(2), m.group(3)) if m else None


def is_private_key(key: str) -> bool:
    return key.startswith(PRIVATE_PREFIX)


def shard_of(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:2]


def _link(rel: str, href: str, media_type: str = JSON, title: str | None = None) -> dict[str, str]:
    link = {"rel": rel, "href": href, "type": media_type}
    if title:
        link["title"] = title
    return link


def item_links(item_id: str) -> list[dict[str, str]]:
    """Structural links of a stored item (relative to collections/<cid>/items/)."""
    return [_link("root", "../../../catalog.json"), _link("parent", f"../shards/{shard_of(item_id)}.json"),
            _link("collection", "../collection.json"), _link("self", f"./{item_id}.json", GEOJSON)]


# -- documents ------------------------------------------------------------------------
def root_document(cfg: CatalogConfig | None = None) -> dict[str, Any]:
    cfg = cfg or config()
    links = [_link("root", "./catalog.json"), _link("self", "./catalog.json")]
    links += [_link("child", f"./collections/{c.id}/collection.json", title=c.title) for c in cfg.categories]
    return {"type": "Catalog", "stac_version": STAC_VERSION, "id": cfg.id, "title": cfg.title,
            "description": cfg.description, "links": links}


def empty_collection(cat: Category) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "Collection", "stac_version": STAC_VERSION, "id": cat.id, "title": cat.title,
        "description": cat.description, "keywords": list(cat.keywords), "license": cat.license,
        "extent": _extent([]), "links": [], "assets": {},  # the mirror's, once it exists (geoparquet.link)
        SHARDS_FIELD: {}}
    doc["links"] = _collection_links({})
    return doc


def _collection_links(shards: Mapping[str, Any]) -> list[dict[str, str]]:
    links = [_link("root", "../../catalog.json"), _link("parent", "../../catalog.json"),
             _link("self", "./collection.json")]
    links += [_link("child", f"./shards/{hh}.json") for hh in sorted(shards)]
    return links


def empty_shard(cid: str, shard: str) -> dict[str, Any]:
    return {"type": "Catalog", "stac_version": STAC_VERSION, "id": f"{cid}-{shard}",
            "description": f"Items of {cid} whose id hashes to {shard}", "links": [], ITEMS_FIELD: {}}


def _fill_shard(doc: dict[str, Any], shard: str) -> dict[str, Any]:
    """Derive the shard's links from its item map."""
    links = [_link("root", "../../../catalog.json"), _link("parent", "../collection.json"),
             _link("self", f"./{shard}.json")]
    links += [_link("item", f"../items/{iid}.json", GEOJSON) for iid in sorted(doc[ITEMS_FIELD])]
    doc["links"] = links
    return doc


def merge(summaries: Iterable[Summary]) -> Summary | None:
    """The bbox and interval covering ``summaries`` (None when there are none)."""
    boxes, starts, ends = [], [], []
    for s in summaries:
        if s[0] is not None:
            boxes.append(s[:4])
        if s[4] is not None:
            starts.append(s[4])
        if s[5] is not None:
            ends.append(s[5])
    if not (boxes or starts or ends):
        return None
    bbox = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
             max(b[3] for b in boxes)] if boxes else [None] * 4)
    return bbox + [min(starts) if starts else None, max(ends) if ends else None]


def _extent(summaries: Iterable[Summary]) -> dict[str, Any]:
    total = merge(summaries)
    bbox = total[:4] if total and total[0] is not None else [-180.0, -90.0, 180.0, 90.0]
    interval = [_rfc3339(total[4]), _rfc3339(total[5])] if total else [None, None]
    return {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}}


def _rfc3339(instant: str | None) -> str | None:
    return instant.replace(".000000Z", "Z") if instant else None


# -- pure updates (return None when nothing changes, so CAS writes only real changes) -----
def apply_to_shard(doc: dict[str, Any], shard: str, upserts: Mapping[str, Summary],
                   deletes: Iterable[str]) -> dict[str, Any] | None:
    """The shard with ``upserts`` and without ``deletes`` (None when that changes nothing)."""
    items = dict(doc.get(ITEMS_FIELD, {}))
    before = dict(items)
    items.update(upserts)
    for iid in deletes:
        items.pop(iid, None)
    if items == before:
        return None
    doc = dict(doc, **{ITEMS_FIELD: items})
    return _fill_shard(doc, shard)


@dataclass(frozen=True)
class ShardView:
    """What the collection records of a shard: linked (it has items) or not, and its summary,
    derived from the shard's state at revision ``rev``."""

    rev: int
    linked: bool
    summary: Summary | None

    @classmethod
    def of(cls, shard_doc: Mapping[str, Any]) -> ShardView:
        items = shard_doc.get(ITEMS_FIELD, {})
        return cls(int(shard_doc.get(REV_FIELD, 0)), bool(items), merge(items.values()))

    def looks_like(self, other: ShardView) -> bool:
        return (self.linked, self.summary) == (other.linked, other.summary)

    def entry(self) -> dict[str, Any]:
        return {"rev": self.rev, "linked": self.linked, "summary": self.summary}


def _rev(entry: Mapping[str, Any]) -> int:
    return int(entry.get("rev", -1))  # entries from before revisions: any view replaces them


def _linked(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("linked", True))  # entries from before revisions exist only for non-empty shards


def apply_to_collection(doc: dict[str, Any], views: Mapping[str, ShardView]) -> dict[str, Any] | None:
    """Record each shard's view, unless the collection holds one of a later (or the same) revision."""
    shards = dict(doc.get(SHARDS_FIELD, {}))
    changed = False
    for hh, view in views.items():
        cur = shards.get(hh)
        if (cur is None and not view.linked) or (cur is not None and _rev(cur) >= view.rev):
            continue
        shards[hh] = view.entry()
        changed = True
    return _derive(doc, shards) if changed else None


def _derive(doc: dict[str, Any], shards: Mapping[str, Any]) -> dict[str, Any]:
    """The collection with these shard entries, and the extent and child links they make."""
    linked = {hh: e for hh, e in shards.items() if _linked(e)}
    doc = dict(doc, **{SHARDS_FIELD: dict(shards)})
    doc["extent"] = _extent(e["summary"] for e in linked.values() if e.get("summary") is not None)
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in
                    ("root", "parent", "self", "child")] + _collection_links(linked)
    return doc


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without the catalog's bookkeeping fields."""
    return {k: v for k, v in doc.items() if k not in PRIVATE_FIELDS}


# -- store operations -----------------------------------------------------------------
def ensure_root(store: ObjectStore) -> None:
    """Create or refresh the root catalog and create the (empty) collections it links to."""
    cfg = config()
    wanted = root_document(cfg)
    store.update_json(ROOT_KEY, lambda doc: None if doc == wanted else wanted, default=lambda: {})
    for cat in cfg.categories:
        try:
            store.put_json(collection_key(cat.id), empty_collection(cat), if_none_match=True)
        except PreconditionFailed:
            pass  # exists: its items keep it current


def _category(cid: str) -> Category:
    cat = config().category(cid)
    if cat is None:
        raise ValueError(f"unknown collection {cid!r}")
    return cat


def update(store: ObjectStore, cid: str, upserts: Mapping[str, Summary], deletes: Iterable[str], *,
           pool: Executor | None = None) -> None:
    """Apply item changes of one collection: one CAS per touched shard (``pool``: several at once, they
    are independent), then at most one on the collection, for the shards whose view this call changed
    or found already written."""
    cat = _category(cid)
    per_shard: dict[str, tuple[dict[str, Summary], set[str]]] = {}
    for iid, summary in upserts.items():
        per_shard.setdefault(shard_of(iid), ({}, set()))[0][iid] = summary
    for iid in deletes:
        per_shard.setdefault(shard_of(iid), ({}, set()))[1].add(iid)
    views: dict[str, ShardView] = {}

    def write(entry: tuple[str, tuple[dict[str, Summary], set[str]]]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        hh, (ups, dels) = entry
        return _write_shard(store, cid, hh, partial(apply_to_shard, shard=hh, upserts=ups, deletes=dels))

    shards = sorted(per_shard.items())
    for (hh, _), (before, after) in zip(shards, (pool.map if pool is not None else map)(write, shards)):
        view = ShardView.of(after)
        # A write that left the view as it was needs nothing of the collection: the writer that made
        # this view records it. A call that wrote nothing (a redelivered event) records the current
        # view, in case the writer that made it died before recording it.
        if before is None or not view.looks_like(ShardView.of(before)):
            views[hh] = view
    if views:
        _record(store, cat, views)


def _write_shard(store: ObjectStore, cid: str, shard: str, change: Callable[[dict[str, Any]], dict[str, Any] | None],
                 *, always: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """CAS ``change`` on the shard, bumping its revision; returns (the state it replaced, or None when it
    wrote nothing; the state now). ``always``: write (a new revision) even if nothing changes."""
    seen: list[dict[str, Any]] = []

    def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(doc)
        new = change(doc)
        if new is None:
            if not always:
                return None
            new = _fill_shard(dict(doc), shard)
        # Greater than every earlier revision; time-based so a shard deleted by hand restarts above them.
        new[REV_FIELD] = max(int(doc.get(REV_FIELD, 0)) + 1, time.time_ns())
        return new

    after = store.update_json(shard_key(cid, shard), mutate, default=lambda: empty_shard(cid, shard))
    return (None if after is seen[-1] else seen[-1]), after


def _record(store: ObjectStore, cat: Category, views: Mapping[str, ShardView], *, refresh: bool = False) -> None:
    """CAS the shards' views into the collection (``refresh``: also its fields from the config, and
    no entry for a shard that cannot exist)."""
    created = []

    def default() -> dict[str, Any]:
        created.append(True)
        return empty_collection(cat)

    def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
        new = apply_to_collection(doc, views)
        if not refresh:
            return new
        base = new or doc
        fields = {k: v for k, v in empty_collection(cat).items() if k not in ("extent", "links", "assets", SHARDS_FIELD)}
        possible = {hh: e for hh, e in base.get(SHARDS_FIELD, {}).items() if hh in _SHARD_IDS}
        fixed = _derive(dict(base, **fields), possible)
        return None if fixed == doc else fixed

    store.update_json(collection_key(cat.id), mutate, default=default)
    if created:
        ensure_root(store)


def rebuild(store: ObjectStore, cid: str, summaries: Mapping[str, Summary], *, since: int,
            current: Callable[[str], Summary | None]) -> None:
    """Rewrite every shard and the collection document of ``cid`` from item summaries (reindex).

    ``summaries`` were read from the items from time ``since`` (ns) on. Publishers may write
    meanwhile: a shard written after ``since`` (less the clock skew) may hold newer states than
    ``summaries``, so there each item on which the two disagree is read again (``current``: its
    summary now, None if gone) after reading the shard, and the compare-and-swap keeps it exact.
    Every shard gets a new revision, so the collection is rewritten from the shards whatever it held.
    """
    cat = _category(cid)
    per_shard: dict[str, dict[str, Summary]] = {}
    for iid, summary in summaries.items():
        per_shard.setdefault(shard_of(iid), {})[iid] = summary
    stored = {info.key.rsplit("/", 1)[-1].removesuffix(".json") for info in store.list(f"collections/{cid}/shards/")}
    for hh in stored - _SHARD_IDS:
        store.delete(shard_key(cid, hh))  # no item id hashes there
    recorded = set((read_collection(store, cid) or {}).get(SHARDS_FIELD, {}))
    touched_after = since - CLOCK_SKEW_NS

    def reconcile(doc: dict[str, Any], hh: str) -> dict[str, Any] | None:
        want = dict(per_shard.get(hh, {}))
        held = doc.get(ITEMS_FIELD, {})
        if int(doc.get(REV_FIELD, 0)) >= touched_after:
            for iid in {i for i in held.keys() | want.keys() if held.get(i) != want.get(i)}:
                now = current(iid)
                if now is None:
                    want.pop(iid, None)
                else:
                    want[iid] = now
        return apply_to_shard(doc, hh, want, set(held) - set(want))

    views = {}
    for hh in sorted(per_shard.keys() | (stored & _SHARD_IDS) | (recorded & _SHARD_IDS)):
        views[hh] = ShardView.of(_write_shard(store, cid, hh, partial(reconcile, hh=hh), always=True)[1])
    _record(store, cat, views, refresh=True)
    ensure_root(store)


def read_collection(store: ObjectStore, cid: str) -> dict[str, Any] | None:
    """The stored collection document, or the empty one of a configured category; None if unknown."""
    cat = config().category(cid)
    if cat is None:
        return None
    try:
        return store.get_json(collection_key(cid))  # type: ignore[no-any-return]
    except NotFound:
        return empty_collection(cat)
