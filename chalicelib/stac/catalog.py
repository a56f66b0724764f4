"""The static STAC catalog in the store: layout, the category config, and its derived documents.

Layout (every href relative, so the tree browses the same from a directory, a bucket or a mirror)::

    catalog.json                                   root; one child per category
    collections/<cid>/collection.json              one per category; children = non-empty shards
    collections/<cid>/shards/<hh>.json             sub-catalog of the items whose id hashes to <hh>
    collections/<cid>/items/<id>.json              the items (written by publishers; truth)

Items are spread over 256 hash shards so that publishing one item rewrites one small shard and
the collection document, never a page listing every item. Each shard keeps a compact summary
(bbox + interval) per item and the collection keeps one per shard, so deleting an item shrinks
the extents without reading any item.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..store import NotFound, ObjectStore, PreconditionFailed

STAC_VERSION = "1.1.0"
ROOT_KEY = "catalog.json"
JSON = "application/json"
GEOJSON = "application/geo+json"
SHARD_COUNT = 256
SHARDS_FIELD = "stacflow:shards"  # collection: {hh: Summary of the shard}
ITEMS_FIELD = "stacflow:items"  # shard: {item id: Summary of the item}
PRIVATE_FIELDS = (SHARDS_FIELD, ITEMS_FIELD)
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
# Links that place a document in a tree: the static catalog and the API each write their own.
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items", "next", "prev",
                             QUERYABLES_REL})
CAS_ATTEMPTS = 200  # many writers may race on one collection document (bulk events, parallel uploads)

_ITEM_KEY = re.compile(r"^collections/([^/]+)/items/([^/]+)\.json$")

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


def shard_key(cid: str, shard: str) -> str:
    return f"collections/{cid}/shards/{shard}.json"


def item_key(cid: str, item_id: str) -> str:
    return f"collections/{cid}/items/{item_id}.json"


def items_prefix(cid: str) -> str:
    return f"collections/{cid}/items/"


def parse_item_key(key: str) -> tuple[str, str] | None:
    """(collection id, item id) of an item key, or None."""
    m = _ITEM_KEY.match(key)
    return (m.group(1), m.group(2)) if m else None


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
        "extent": _extent([]), "links": [], SHARDS_FIELD: {}}
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
    items = dict(doc.get(ITEMS_FIELD, {}))
    before = dict(items)
    items.update(upserts)
    for iid in deletes:
        items.pop(iid, None)
    if items == before:
        return None
    doc = dict(doc, **{ITEMS_FIELD: items})
    return _fill_shard(doc, shard)


def apply_to_collection(doc: dict[str, Any], shard_summaries: Mapping[str, Optional[Summary]],
                        counts: Mapping[str, int]) -> dict[str, Any] | None:
    """Record each touched shard's summary (count 0 = the shard is empty and unlinked)."""
    shards = dict(doc.get(SHARDS_FIELD, {}))
    before = dict(shards)
    for hh, summary in shard_summaries.items():
        if counts[hh]:
            shards[hh] = {"count": counts[hh], "summary": summary}
        else:
            shards.pop(hh, None)
    if shards == before:
        return None
    doc = dict(doc, **{SHARDS_FIELD: shards})
    doc["extent"] = _extent(s["summary"] for s in shards.values() if s["summary"] is not None)
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in
                    ("root", "parent", "self", "child")] + _collection_links(shards)
    return doc


def item_count(collection_doc: Mapping[str, Any]) -> int:
    return sum(int(s["count"]) for s in collection_doc.get(SHARDS_FIELD, {}).values())


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without the catalog's bookkeeping fields."""
    return {k: v for k, v in doc.items() if k not in PRIVATE_FIELDS}


# -- store operations -----------------------------------------------------------------
def ensure_root(store: ObjectStore) -> None:
    """Create or refresh the root catalog and create the (empty) collections it links to."""
    cfg = config()
    wanted = root_document(cfg)
    store.update_json(ROOT_KEY, lambda doc: None if doc == wanted else wanted, default=lambda: {},
                      attempts=CAS_ATTEMPTS)
    for cat in cfg.categories:
        try:
            store.put_json(collection_key(cat.id), empty_collection(cat), if_none_match=True)
        except PreconditionFailed:
            pass  # exists: its items keep it current


def update(store: ObjectStore, cid: str, upserts: Mapping[str, Summary], deletes: Iterable[str]) -> None:
    """Apply item changes of one collection: one CAS per touched shard, then one on the collection."""
    cat = config().category(cid)
    if cat is None:
        raise ValueError(f"unknown collection {cid!r}")
    per_shard: dict[str, tuple[dict[str, Summary], set[str]]] = {}
    for iid, summary in upserts.items():
        per_shard.setdefault(shard_of(iid), ({}, set()))[0][iid] = summary
    for iid in deletes:
        per_shard.setdefault(shard_of(iid), ({}, set()))[1].add(iid)
    if not per_shard:
        return
    summaries: dict[str, Optional[Summary]] = {}
    counts: dict[str, int] = {}
    for hh, (ups, dels) in sorted(per_shard.items()):
        items = _update_shard(store, cid, hh, ups, dels).get(ITEMS_FIELD, {})
        summaries[hh], counts[hh] = merge(items.values()), len(items)
        if not items:
            # Unlinked below; deleting only this exact version keeps a concurrent re-fill.
            _delete_if_empty(store, shard_key(cid, hh))
    _update_collection(store, cat, summaries, counts)


def _update_shard(store: ObjectStore, cid: str, shard: str, upserts: Mapping[str, Summary],
                  deletes: set[str]) -> dict[str, Any]:
    return store.update_json(  # type: ignore[no-any-return]
        shard_key(cid, shard), lambda doc: apply_to_shard(doc, shard, upserts, deletes),
        default=lambda: empty_shard(cid, shard), attempts=CAS_ATTEMPTS)


def _update_collection(store: ObjectStore, cat: Category, summaries: Mapping[str, Optional[Summary]],
                       counts: Mapping[str, int]) -> None:
    created = []

    def default() -> dict[str, Any]:
        created.append(True)
        return empty_collection(cat)

    store.update_json(collection_key(cat.id), lambda d: apply_to_collection(d, summaries, counts),
                      default=default, attempts=CAS_ATTEMPTS)
    if created:
        ensure_root(store)


def _delete_if_empty(store: ObjectStore, key: str) -> None:
    try:
        obj = store.get(key)
    except NotFound:
        return
    if obj.json().get(ITEMS_FIELD):
        return
    try:
        store.delete(key, if_match=obj.etag)
    except PreconditionFailed:
        pass


def rebuild(store: ObjectStore, cid: str, summaries: Mapping[str, Summary]) -> None:
    """Rewrite every shard and the collection document of ``cid`` from item summaries (reindex)."""
    cat = config().category(cid)
    if cat is None:
        raise ValueError(f"unknown collection {cid!r}")
    per_shard: dict[str, dict[str, Summary]] = {}
    for iid, summary in summaries.items():
        per_shard.setdefault(shard_of(iid), {})[iid] = summary
    for hh, items in per_shard.items():
        doc = empty_shard(cid, hh)
        doc[ITEMS_FIELD] = items
        store.put_json(shard_key(cid, hh), _fill_shard(doc, hh))
    for info in list(store.list(f"collections/{cid}/shards/")):
        hh = info.key.rsplit("/", 1)[-1].removesuffix(".json")
        if hh not in per_shard:
            store.delete(info.key)
    doc = empty_collection(cat)
    shard_summaries = {hh: merge(items.values()) for hh, items in per_shard.items()}
    doc = apply_to_collection(doc, shard_summaries, {hh: len(v) for hh, v in per_shard.items()}) or doc
    store.put_json(collection_key(cid), doc)
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
