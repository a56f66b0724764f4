"""The static STAC catalog in the store: layout, the category config, and its derived documents.

Layout (every href relative, so the tree browses the same from a directory, a bucket or a mirror)::

    catalog.json                                   root; one child per category
    collections/<cid>/collection.json              one per category; children = non-empty shards
    collections/<cid>/shards/<hh>.json             sub-catalog of the items whose id hashes to <hh>
    collections/<cid>/subshards/<hh><d>...json     once <hh> is split: its sub-shards, one digit more each level
    collections/<cid>/items/<id>.json              the items (written by publishers; truth)

Items are spread over 256 hash shards so that publishing one item rewrites one small shard, never
a page listing every item. Each shard keeps a compact summary (bbox + interval) per item, a revision
that grows with every write, and the revision of its last write that shrank its view (``shrunk``).
The collection keeps only what it serves: its extent (``union``: the merge of the shards' views), a
child link per non-empty shard, and per shard the revision whose view it has taken in.

A shard over ``SHARD_ITEMS`` items splits into ``SHARD_FANOUT`` sub-shards (by the next bits of its
items' id hashes: ``shard_path``), so a page stays bounded however large the collection grows. The
split shard then keeps what the collection keeps (a union, a child link per non-empty sub-shard,
their recorded revisions) and is to its sub-shards what the collection is to its shards, with the
same rules below, level by level. An item's own parent link names its top shard (items never move; a
split shard links them through its sub-shards). The split: the writer that took a shard over the
limit writes the sub-shards from the shard's state it wrote (revision ``r``, recorded in each as
``from``), then swaps the shard for the split one conditionally on that state. A sub-shard is
written only if its ``from`` is older than ``r``: once the swap succeeded no writer holds a later
state of the unsplit shard, so a late split never overwrites live sub-shards. If the swap loses, the
shard changed: its next writer, over the limit too, splits it.

So a publish writes the collection only when the collection's extent or links grow (an item outside
the extent, or the first item of a shard): concurrent publishers into a populated collection do not
meet on it. Growth is a merge; a shrink (a delete that pulls a shard's view in, or empties it) cannot
be undone from a merge, so the writer that made it recomputes the collection from every shard
(``_refresh``). Writers race on these documents (one event per item, any number of workers), and
they converge because:

- a shard's recorded revision only grows, and a view of a lower revision never updates it;
- a view is merged only if no shrink of its shard is missing from the collection (``shrunk`` at most
  the recorded revision); otherwise the writer refreshes, so a late grower never re-widens what a
  shrink pulled in, and a redelivered event finishes the refresh of a writer that died before it;
- a refresh swaps the collection conditionally on the state it read, then lists the shards once
  more and merges the views of those written meanwhile: a grower that saw the extent of before the
  refresh (and so wrote nothing) cannot be lost.

Empty shards stay as unlinked documents so that their revision never restarts.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path
from itertools import chain, islice
from operator import is_
from typing import Any, Callable, Collection, Iterable, Mapping, cast

import orjson

from ..store import NotFound, ObjectStore, PreconditionFailed
from ..store.contention import DEFAULT

STAC_VERSION = "1.1.0"
ROOT_KEY = "catalog.json"
JSON = "application/json"
GEOJSON = "application/geo+json"
PARQUET = "application/vnd.apache.parquet"
GEOPARQUET_ASSET = "geoparquet"  # the collection's assets naming its stac-geoparquet mirror: geoparquet-<k>
MIRROR_ROLE = "collection-mirror"  # stac-geoparquet spec: the role of a collection's Parquet mirror
SHARD_COUNT = 256
SHARDS_FIELD = "stacflow:shards"  # collection: {hh: {"rev", "linked"}} (older layouts: and "summary")
UNION_FIELD = "stacflow:union"  # collection: Summary of its extent (None: no item)
ITEMS_FIELD = "stacflow:items"  # shard: {item id: Summary of the item}
REV_FIELD = "stacflow:rev"  # shard: revision, greater after every write
SHRUNK_FIELD = "stacflow:shrunk"  # shard: revision of its last write that shrank its view
FROM_FIELD = "stacflow:from"  # sub-shard: revision of the state of its parent shard it was split from
PRIVATE_FIELDS = (SHARDS_FIELD, UNION_FIELD, ITEMS_FIELD, REV_FIELD, SHRUNK_FIELD, FROM_FIELD)
# A shard over this many items splits (~120 bytes each, plus its link): pages of at most ~30 KB.
SHARD_ITEMS = 128
# A split makes this many sub-shards (a power of two up to 16): few, so that a bulk load, which
# rewrites every shard it touches, writes few more pages (the leaves keep a quarter of the limit or more).
SHARD_FANOUT = 4
SHARD_DEPTH = 10  # longest shard name: 2 hex digits, then up to 8 sub-shard digits (4**8 leaves under a top shard)
_HEX = "0123456789abcdef"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
# Links that place a document in a tree: the static catalog and the API each write their own.
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items", "next", "prev",
                             QUERYABLES_REL})
# Writers' clocks agree to better than this (as the search index's settle time assumes).
CLOCK_SKEW_NS = 5_000_000_000
_SHARD_IDS = frozenset(f"{i:02x}" for i in range(SHARD_COUNT))
REFRESH_WORKERS = 8  # shard reads side by side when a shrink recomputes a collection (S3 latency)

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


def partition_number(text: str) -> int | None:
    """``text`` as a partition number: 1 to 5 ASCII digits (``str.isdigit`` also takes "²", which
    ``int`` refuses, and unbounded digit runs cost ``int`` time), else None."""
    return int(text) if 0 < len(text) <= 5 and text.isascii() and text.isdigit() else None


def geoparquet_asset_part(key: str, asset: Any) -> int | None:
    """The partition an asset of the collection mirrors (``geoparquet-<k>``, role collection-mirror), else None."""
    head, _, tail = key.partition("-")
    part = partition_number(tail)
    if head != GEOPARQUET_ASSET or part is None or not isinstance(asset, dict):
        return None
    return part if MIRROR_ROLE in (asset.get("roles") or []) else None


def geoparquet_assets(cid: str, layout: str, partitions: int) -> dict[str, dict[str, Any]]:
    """The collection's assets linking its stac-geoparquet mirror, one per partition file (hrefs
    relative to collection.json): every file is one GET away over plain HTTPS, no listing needed."""
    return {f"{GEOPARQUET_ASSET}-{k}": {
        "href": f"./geoparquet/{layout}/part-{k:05d}.parquet", "type": PARQUET,
        "title": f"Public items as stac-geoparquet, partition {k + 1} of {partitions}",
        "roles": ["data", MIRROR_ROLE]} for k in range(partitions)}


def shard_key(cid: str, shard: str) -> str:
    """A top shard's key, or a sub-shard's: those live in a folder of their own, so that listing the
    collection's shards (as a refresh does) stays 256 keys however many splits."""
    return f"collections/{cid}/{_folder(shard)}/{shard}.json"


def _folder(shard: str) -> str:
    return "shards" if len(shard) <= 2 else "subshards"


def _shard_href(page: str, shard: str) -> str:
    """The href of shard ``shard`` from the shard page ``page`` (both folders are siblings)."""
    return f"./{shard}.json" if _folder(page) == _folder(shard) else f"../{_folder(shard)}/{shard}.json"


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
    """The item's top shard (the parent its own links name)."""
    return _digest(item_id)[:2]


def _digest(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()


def shard_path(item_id: str, length: int) -> str:
    """The name of the shard (``length`` 2) or sub-shard (longer, at most ``SHARD_DEPTH``) holding the item:
    its top shard, then one digit per split level, ``log2(SHARD_FANOUT)`` bits of the id's hash each."""
    return _deepest(item_id)[:length]


def _deepest(item_id: str) -> str:
    """The item's deepest ``shard_path`` (``SHARD_DEPTH`` long): every shorter one is a prefix of it, so
    a bulk load hashes an id once for all the levels it goes down or splits through."""
    digest = hashlib.sha1(item_id.encode()).hexdigest()  # as _digest, without its call: a bulk load's every id
    return digest[:2] + digest[2:_DEEPEST_HEX].translate(_SUB_DIGITS)


# Each hex digit of the id's hash read as sub-shard digits (``log2(SHARD_FANOUT)`` bits each, high bits
# first): one ``str.translate`` of the hash instead of shifting it as one integer per item and level.
_BITS = SHARD_FANOUT.bit_length() - 1
assert SHARD_FANOUT == 1 << _BITS and 4 % _BITS == 0, "sub-shard digits must split a hex digit evenly"
_DIGITS_PER_HEX = 4 // _BITS
_SUB_DIGITS = str.maketrans({h: "".join(_HEX[(v >> (4 - _BITS * (k + 1))) & (SHARD_FANOUT - 1)]
                                        for k in range(_DIGITS_PER_HEX)) for v, h in enumerate(_HEX)})
_DEEPEST_HEX = 2 + -(-(SHARD_DEPTH - 2) // _DIGITS_PER_HEX)  # the hash's hex digits that name the deepest sub-shard


def _digits() -> str:
    return _HEX[:SHARD_FANOUT]


def _parent_href(shard: str) -> str:
    return "../collection.json" if len(shard) <= 2 else _shard_href(shard, shard[:-1])


def _link(rel: str, href: str, media_type: str = JSON, title: str | None = None) -> dict[str, str]:
    link = {"rel": rel, "href": href, "type": media_type}
    if title:
        link["title"] = title
    return link


def item_links(item_id: str) -> list[dict[str, str]]:
    """Structural links of a stored item (relative to collections/<cid>/items/)."""
    # As ``_link`` makes them, written out: a bulk load makes these for every item.
    return [{"rel": "root", "href": "../../../catalog.json", "type": JSON},
            {"rel": "parent", "href": f"../shards/{shard_of(item_id)}.json", "type": JSON},
            {"rel": "collection", "href": "../collection.json", "type": JSON},
            {"rel": "self", "href": f"./{item_id}.json", "type": GEOJSON}]


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
        SHARDS_FIELD: {}, UNION_FIELD: None}
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
    links = [_link("root", "../../../catalog.json"), _link("parent", _parent_href(shard)),
             _link("self", f"./{shard}.json")]
    links += [{"rel": "item", "href": f"../items/{iid}.json", "type": GEOJSON} for iid in sorted(doc[ITEMS_FIELD])]
    doc["links"] = links
    return doc


def merge(summaries: Iterable[Summary]) -> Summary | None:
    """The bbox and interval covering ``summaries`` (None when there are none)."""
    # One pass, no temporaries: a publish merges every summary of its shard.
    x0 = y0 = x1 = y1 = start = end = None
    for s in summaries:
        if s[0] is not None:
            if x0 is None:
                x0, y0, x1, y1 = s[0], s[1], s[2], s[3]
            else:
                if s[0] < x0:
                    x0 = s[0]
                if s[1] < y0:
                    y0 = s[1]
                if s[2] > x1:
                    x1 = s[2]
                if s[3] > y1:
                    y1 = s[3]
        if s[4] is not None and (start is None or s[4] < start):
            start = s[4]
        if s[5] is not None and (end is None or s[5] > end):
            end = s[5]
    if x0 is None and start is None and end is None:
        return None
    return [x0, y0, x1, y1, start, end]


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
    changed = False
    for iid, summary in upserts.items():
        if items.get(iid) != summary:
            items[iid] = summary
            changed = True
    for iid in deletes:
        changed = items.pop(iid, None) is not None or changed
    if not changed:
        return None
    doc = dict(doc, **{ITEMS_FIELD: items})
    return _fill_shard(doc, shard)


def covers(outer: Summary | None, inner: Summary | None) -> bool:
    """Whether the extent ``outer`` holds ``inner`` (None: no extent)."""
    return inner is None or (outer is not None and merge([outer, inner]) == outer)


@dataclass(frozen=True)
class ShardView:
    """What the collection needs of a shard: linked (it has items) or not, and its summary, derived
    from the shard's state at revision ``rev``, whose last shrinking write was revision ``shrunk``."""

    rev: int
    linked: bool
    summary: Summary | None
    shrunk: int = 0

    @classmethod
    def of(cls, shard_doc: Mapping[str, Any], since: tuple[Mapping[str, Any], ShardView] | None = None) -> ShardView:
        """``since``: a state the document was made from, and its view (a write: before and after)."""
        if SHARDS_FIELD in shard_doc:  # split: its sub-shards' views make it, as the collection's shards make it
            return cls(int(shard_doc.get(REV_FIELD, 0)), any(_linked(e) for e in shard_doc[SHARDS_FIELD].values()),
                       shard_doc.get(UNION_FIELD), int(shard_doc.get(SHRUNK_FIELD, 0)))
        items = shard_doc.get(ITEMS_FIELD, {})
        return cls(int(shard_doc.get(REV_FIELD, 0)), bool(items),
                   merge(items.values()) if since is None else _merge_grown(items.values(), *since),
                   int(shard_doc.get(SHRUNK_FIELD, 0)))

    def looks_like(self, other: ShardView) -> bool:
        return (self.linked, self.summary) == (other.linked, other.summary)

    def holds(self, other: ShardView) -> bool:
        """Whether this view covers ``other``'s (a change from ``other`` to this one only grew it)."""
        return (self.linked or not other.linked) and covers(self.summary, other.summary)


def _merge_grown(summaries: Collection[Summary], old_doc: Mapping[str, Any], old: ShardView) -> Summary | None:
    """``merge(summaries)``, where ``old`` is the view of the state ``old_doc`` they were made from. When they
    are that state's summaries, the very objects in the same order, then others (a write that only adds,
    as a bulk load's are), only the others are merged into ``old``'s summary: ``merge`` is a left fold
    keeping the first of equal bounds, so the result is the same, to the object (1 and 1.0 print apart)."""
    held = old_doc.get(ITEMS_FIELD, {}).values()
    n = len(held)
    if SHARDS_FIELD in old_doc or len(summaries) < n or not all(map(is_, held, islice(summaries, n))):
        return merge(summaries)  # changed or dropped a summary: one may have made an edge
    added = islice(summaries, n, None)
    return merge(added) if old.summary is None else merge(chain((old.summary,), added))


def _rev(entry: Mapping[str, Any] | None) -> int:
    return -1 if entry is None else int(entry.get("rev", -1))  # entries from before revisions: any view wins


def _linked(entry: Mapping[str, Any] | None) -> bool:
    # Entries from before revisions exist only for non-empty shards.
    return entry is not None and bool(entry.get("linked", True))


def _union(doc: Mapping[str, Any]) -> Summary | None:
    """The collection's extent as a summary; a collection of the per-shard-summary layout has none
    stored, its linked entries' summaries make it."""
    if UNION_FIELD in doc:
        return doc[UNION_FIELD]  # type: ignore[no-any-return]
    return merge(e["summary"] for e in doc.get(SHARDS_FIELD, {}).values()
                 if _linked(e) and e.get("summary") is not None)


def _upgraded(doc: Mapping[str, Any]) -> bool:
    return UNION_FIELD in doc and not any("summary" in e for e in doc.get(SHARDS_FIELD, {}).values())


class _Unseen(Exception):
    """A shrink of a shard is missing from the collection: only a refresh can take it in."""


def _keeps_union(before: Summary | None, after: Summary | None, union: Summary | None) -> bool:
    """Whether pulling a shard's extent in from ``before`` to ``after`` leaves ``union`` as it is: on
    every side where it retreats, ``before`` was strictly inside ``union`` (another shard makes that edge)."""
    if before is None:
        return True
    if union is None:
        return False
    for i, lower in ((0, True), (1, True), (2, False), (3, False), (4, True), (5, False)):
        was = before[i]
        if was is None:
            continue
        now = None if after is None else after[i]
        if now is None or (now > was if lower else now < was):  # this side retreats
            edge = union[i]
            if edge is None or not (was > edge if lower else was < edge):
                return False
    return True


def apply_to_collection(doc: dict[str, Any], views: Mapping[str, ShardView], *, unseen_ok: bool = False,
                        before: Mapping[str, ShardView | None] | None = None, node: str = "") -> dict[str, Any] | None:
    """Merge the shards' views into the collection (None when its extent and links hold them already);
    ``node``: a split shard and its sub-shards' views instead.

    A view no later than the revision recorded for its shard is skipped. A view whose shard shrank
    after that revision raises ``_Unseen``, unless the shrink is the write that made the view (its
    state ``before``, with no earlier shrink unseen) and it leaves the extent as it is: then the view
    is recorded, its link dropped if the shard emptied. ``unseen_ok``: such views are merged without
    recording their revision, so the shrink's own writer still refreshes."""
    shards = {hh: {"rev": _rev(e), "linked": _linked(e)} for hh, e in doc.get(SHARDS_FIELD, {}).items()}
    union = _union(doc)
    changed = False
    for hh, view in sorted(views.items()):
        cur = shards.get(hh)
        if _rev(cur) >= view.rev:
            continue
        unseen = view.shrunk > max(_rev(cur), 0)  # 0: never shrank
        if unseen and not unseen_ok:
            was = (before or {}).get(hh)
            if was is None or was.shrunk > max(_rev(cur), 0) or view.shrunk != view.rev or \
                    not _keeps_union(was.summary if was.linked else None, view.summary, union):
                raise _Unseen(hh)
            union = merge([s for s in (union, view.summary) if s is not None])
            shards[hh] = {"rev": view.rev, "linked": view.linked}
            changed = True
            continue
        grown = merge([s for s in (union, view.summary) if s is not None])
        if grown == union and (_linked(cur) or not view.linked):
            continue  # nothing to show; the revision is recorded by whoever changes the collection next
        union = grown
        shards[hh] = {"rev": _rev(cur) if unseen else view.rev, "linked": _linked(cur) or view.linked}
        changed = True
    if not changed and (node or _upgraded(doc)):
        return None
    return _derive(doc, shards, union, node)


def _derive(doc: dict[str, Any], shards: Mapping[str, Any], union: Summary | None, node: str = "") -> dict[str, Any]:
    """The collection (``node``: the split shard) with these shard entries and extent, and the child
    links they make."""
    linked = {hh: e for hh, e in shards.items() if _linked(e)}
    doc = dict(doc, **{SHARDS_FIELD: dict(shards), UNION_FIELD: union})
    if node:
        links = [_link("root", "../../../catalog.json"), _link("parent", _parent_href(node)),
                 _link("self", f"./{node}.json")] + [_link("child", _shard_href(node, c)) for c in sorted(linked)]
    else:
        doc["extent"] = _extent([union] if union is not None else [])
        links = _collection_links(linked)
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in
                    ("root", "parent", "self", "child", "item")] + links
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


Change = Callable[[dict[str, Any]], "dict[str, Any] | None"]
# (the view of the state a write replaced, None when it wrote nothing; the view now)
Written = tuple["ShardView | None", ShardView]


def update(store: ObjectStore, cid: str, upserts: Mapping[str, Summary], deletes: Iterable[str], *,
           pool: Executor | None = None) -> None:
    """Apply item changes of one collection: one CAS per touched shard (``pool``: several at once, they
    are independent; a split shard: one per touched sub-shard, then its record of their views, as
    below), then, for the shards whose view this call changed or found already written, at most one
    read of the collection, and a write only if its extent or links grow (or a refresh of it if a view
    shrank)."""
    cat = _category(cid)
    per_shard: dict[str, dict[str, Summary | None]] = {}
    paths: dict[str, str] = {}  # each id hashed once, not once per split level (a bulk load's thousands)
    for iid, summary in upserts.items():
        path = paths[iid] = _deepest(iid)
        per_shard.setdefault(path[:2], {})[iid] = summary
    for iid in deletes:
        path = paths[iid] = _deepest(iid)
        per_shard.setdefault(path[:2], {})[iid] = None  # a delete wins over an upsert of the same id
    views: dict[str, ShardView] = {}
    befores: dict[str, ShardView | None] = {}

    def write(entry: tuple[str, dict[str, Summary | None]]) -> Written:
        return _apply_subtree(store, cat, entry[0], entry[1], _changing, paths=paths)

    shards = sorted(per_shard.items())
    for (hh, _), (before, view) in zip(shards, (pool.map if pool is not None else map)(write, shards)):
        # A write that left the view as it was needs nothing of the collection: the writer that made
        # this view records it. A call that wrote nothing (a redelivered event) records the current
        # view, in case the writer that made it died before recording it.
        if before is None or not view.looks_like(before):
            views[hh], befores[hh] = view, before
    if views:
        _record(store, cat, views, befores, pool=pool)


def _changing(shard: str, batch: Mapping[str, Summary | None]) -> Change:
    """The change of a shard that upserts the batch's summaries and deletes its None entries."""
    # Without deletes (a bulk load's batches), the batch is the upserts as it is: no pass over it in Python.
    deletes = [iid for iid, s in batch.items() if s is None] if None in batch.values() else []
    upserts = {iid: s for iid, s in batch.items() if s is not None} if deletes else \
        cast("Mapping[str, Summary]", batch)
    return partial(apply_to_shard, shard=shard, upserts=upserts, deletes=deletes)


_SAME = ShardView(0, False, None)  # (_SAME, _SAME): a view left as it was, whatever it is


class _Split(Exception):
    """The shard is split: a change of its items goes to its sub-shards."""

    def __init__(self, doc: dict[str, Any], etag: str | None) -> None:
        super().__init__("split")
        self.doc, self.etag = doc, etag


# Shards this process has seen split, per store: a split is never undone, so a writer goes straight
# to the sub-shards of one it knows, and reads it only to record in it (a publish into a large
# collection then costs the requests it costs into a small one).
_SEEN_SPLIT: weakref.WeakKeyDictionary[ObjectStore, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
_SEEN_LOCK = threading.Lock()


def _seen_split(store: ObjectStore) -> set[tuple[str, str]]:
    with _SEEN_LOCK:
        seen = _SEEN_SPLIT.get(store)
        if seen is None:
            seen = _SEEN_SPLIT[store] = set()
        return seen


def _apply_subtree(store: ObjectStore, cat: Category, shard: str, batch: Mapping[str, Any],
                   leaf_change: Callable[[str, Mapping[str, Any]], Change], *, every: bool = False,
                   paths: Mapping[str, str] | None = None) -> Written:
    """Apply ``batch`` (item id -> what ``leaf_change(shard, batch)`` makes of it) to the shard or, once
    it is split, to its sub-shards, then record their views in it as ``_record`` does in the collection.
    ``every``: write every shard of the subtree and recompute split ones from their sub-shards (a rebuild);
    ``paths``: the batch's ids' deepest shard paths (``_deepest``), if known."""
    seen = _seen_split(store)
    read: tuple[dict[str, Any], str | None] | None = None
    if every or (cat.id, shard) not in seen:
        try:
            return _write_shard(store, cat.id, shard, leaf_change(shard, batch), always=every, paths=paths)
        except _Split as split:
            read = split.doc, split.etag
            seen.add((cat.id, shard))
    at = len(shard)  # the sub-shard digit's place in a path
    parts: dict[str, dict[str, Any]] = {h: {} for h in _digits()}
    for iid, value in batch.items():
        parts[(paths[iid] if paths is not None else _deepest(iid))[at]][iid] = value
    views: dict[str, ShardView] = {}
    befores: dict[str, ShardView | None] = {}
    for h, part in parts.items():
        if not (part or every):
            continue
        sub = shard + h
        before, view = _apply_subtree(store, cat, sub, part, leaf_change, every=every, paths=paths)
        if before is None or not view.looks_like(before):
            views[sub], befores[sub] = view, before
    if every:
        return _refresh(store, cat, node=shard)
    if not views:
        return _SAME, _SAME  # every sub-shard's view is as it was: nothing for the parent either
    try:
        done = _write_shard(store, cat.id, shard, partial(apply_to_collection, views=views, before=befores, node=shard),
                            leaf=False, read=read)
    except _Unseen:
        return _refresh(store, cat, node=shard)
    if done[0] is None and all(b is not None for b in befores.values()):
        return done[1], done[1]  # it held the new views already: its own view is as it was
    return done


def _write_shard(store: ObjectStore, cid: str, shard: str, change: Change, *, always: bool = False,
                 leaf: bool = True, read: tuple[dict[str, Any], str | None] | None = None,
                 paths: Mapping[str, str] | None = None) -> Written:
    """CAS ``change`` on the shard, bumping its revision; returns (the view of the state it replaced, or
    None when it wrote nothing; the view now). ``always``: write (a new revision) even if nothing changes.
    ``leaf``: a change of its items (``_Split`` if it is split), split after the write if it went over
    ``SHARD_ITEMS``; else a change of a split shard. ``read``: its state as just read (and ETag), for
    the first attempt. ``paths``: deepest shard paths (``_deepest``) of ids it may hold, if known.

    Shards are the largest pages a publish rewrites (~200 bytes per item), so they go through orjson."""
    key = shard_key(cid, shard)
    known = [read] if read is not None else []

    def attempt() -> tuple[ShardView | None, ShardView, dict[str, Any] | None, str]:
        doc: dict[str, Any]
        etag: str | None
        if known:
            doc, etag = known.pop()
        else:
            try:
                obj = store.get(key)
                doc, etag = orjson.loads(obj.body), obj.etag
            except NotFound:
                doc, etag = empty_shard(cid, shard), None
        if leaf and SHARDS_FIELD in doc:
            raise _Split(doc, etag)
        before = ShardView.of(doc)
        new = change(doc)
        if new is None:
            if not always:
                return None, before, None, ""
            new = _fill_shard(dict(doc), shard)
        # Greater than every earlier revision; time-based so a shard deleted by hand restarts above them.
        new[REV_FIELD] = max(int(doc.get(REV_FIELD, 0)) + 1, time.time_ns())
        after = ShardView.of(new, since=(doc, before))
        if not after.holds(before):
            new[SHRUNK_FIELD] = new[REV_FIELD]
            after = replace(after, shrunk=new[REV_FIELD])
        if etag is None:
            info = store.put(key, orjson.dumps(new), if_none_match=True, content_type=JSON)
        else:
            info = store.put(key, orjson.dumps(new), if_match=etag, content_type=JSON)
        return before, after, new, info.etag

    before, after, new, etag = DEFAULT.run(attempt, f"updating {key}")
    if leaf and new is not None and len(new.get(ITEMS_FIELD, ())) > SHARD_ITEMS and len(shard) < SHARD_DEPTH:
        _split(store, cid, shard, new, etag, after.summary, paths or {})
    return before, after


def _split(store: ObjectStore, cid: str, shard: str, doc: dict[str, Any], etag: str, union: Summary | None,
           paths: Mapping[str, str]) -> None:
    """Split the shard, whose state ``doc`` (ETag ``etag``; ``union``: the merge of its items) this process
    wrote, into sub-shards; if the shard changed meanwhile, leave it to its next writer. Its view stays
    as it was (same union and links), so nothing changes for its parent. ``paths``: deepest shard paths
    (``_deepest``) of some of its ids; the others are hashed here, once for all the levels it splits through."""
    rev = int(doc[REV_FIELD])
    at = len(shard)  # the sub-shard digit's place in a path
    parts: dict[str, dict[str, Summary]] = {h: {} for h in _digits()}
    deepest: dict[str, str] = {}
    for iid, summary in doc[ITEMS_FIELD].items():
        path = deepest[iid] = paths.get(iid) or _deepest(iid)
        parts[path[at]][iid] = summary
    entries = {}
    written: dict[str, tuple[dict[str, Any], str]] = {}
    for h, items in parts.items():
        sub = shard + h
        got = _write_split_part(store, cid, sub, items, rev)
        if got is None:
            return  # a later state of the shard is being split
        entries[sub], wrote = got
        if wrote is not None:
            written[sub] = wrote
    split = _derive({k: v for k, v in doc.items() if k != ITEMS_FIELD}, entries, union, shard)
    split[REV_FIELD] = max(rev + 1, time.time_ns())
    try:
        store.put(shard_key(cid, shard), orjson.dumps(split), if_match=etag, content_type=JSON)
    except PreconditionFailed:
        return  # written meanwhile: its writer, over the limit too, splits it
    _seen_split(store).add((cid, shard))
    for sub, (part, part_etag) in sorted(written.items()):
        if len(part[ITEMS_FIELD]) > SHARD_ITEMS and len(sub) < SHARD_DEPTH:
            # a bulk write can take a shard over many limits at once
            _split(store, cid, sub, part, part_etag, merge(part[ITEMS_FIELD].values()), deepest)


def _write_split_part(store: ObjectStore, cid: str, sub: str, items: dict[str, Summary],
                      rev: int) -> tuple[dict[str, Any], tuple[dict[str, Any], str] | None] | None:
    """Write the sub-shard ``sub`` as split from revision ``rev`` of its parent, unless it was split from
    that revision already or a later one (None). Returns its entry in the parent (revision, linked: as
    ``apply_to_collection`` records a view; the parent's union is its own, so no part's is merged), and
    the state written and its ETag if this call wrote it."""
    key = shard_key(cid, sub)

    new = _fill_shard(dict(empty_shard(cid, sub), **{ITEMS_FIELD: items, FROM_FIELD: rev}), sub)
    tried: list[bool] = []

    def attempt() -> tuple[dict[str, Any], tuple[dict[str, Any], str] | None] | None:
        old: dict[str, Any] | None = None
        etag = None
        if tried:  # a first split finds no sub-shard: the first attempt creates it without reading
            try:
                obj = store.get(key)
                old, etag = orjson.loads(obj.body), obj.etag
            except NotFound:
                pass
        tried.append(True)
        if old is not None and int(old.get(FROM_FIELD, -1)) >= rev:
            if int(old[FROM_FIELD]) != rev:
                return None
            view = ShardView.of(old)
            return {"rev": view.rev, "linked": view.linked}, None
        new[REV_FIELD] = max(int((old or {}).get(REV_FIELD, 0)) + 1, time.time_ns())
        if etag is None:
            info = store.put(key, orjson.dumps(new), if_none_match=True, content_type=JSON)
        else:
            info = store.put(key, orjson.dumps(new), if_match=etag, content_type=JSON)
        return {"rev": new[REV_FIELD], "linked": bool(items)}, (new, info.etag)

    return DEFAULT.run(attempt, f"splitting into {key}")


def _record(store: ObjectStore, cat: Category, views: Mapping[str, ShardView],
            befores: Mapping[str, ShardView | None], *, pool: Executor | None = None) -> None:
    """Merge the shards' views into the collection (``befores``: the states the writes that made them
    replaced); refresh it instead if one of them shrank it."""
    created = []

    def default() -> dict[str, Any]:
        created.append(True)
        return empty_collection(cat)

    try:
        store.update_json(collection_key(cat.id), partial(apply_to_collection, views=views, before=befores),
                          default=default)
    except _Unseen:
        _refresh(store, cat, pool=pool)
    if created:
        ensure_root(store)


def _read_shard(store: ObjectStore, cid: str, hh: str) -> tuple[str, ShardView] | None:
    try:
        obj = store.get(shard_key(cid, hh))
    except NotFound:
        return None
    return obj.etag, ShardView.of(orjson.loads(obj.body))


def _is_part(name: str, node: str) -> bool:
    """Whether ``name`` is a shard of the collection (``node`` ""), or a sub-shard of the split shard ``node``."""
    if not node:
        return name in _SHARD_IDS
    return len(name) == len(node) + 1 and name.startswith(node) and name[-1] in _digits()


def _stored_shards(store: ObjectStore, cid: str, node: str = "") -> dict[str, str]:
    """ETag of every stored shard document of the collection (``node``: sub-shard of that shard), by name."""
    out = {}
    for info in store.list(f"collections/{cid}/{_folder(node or 'hh')}/{node}"):
        hh = info.key.rsplit("/", 1)[-1].removesuffix(".json")
        if _is_part(hh, node):
            out[hh] = info.etag
    return out


def _refresh(store: ObjectStore, cat: Category, *, fields: bool = False, pool: Executor | None = None,
             node: str = "") -> Written:
    """Recompute the collection from every shard: its extent, links and recorded revisions (``fields``:
    also its fields from the config; ``pool``: reads shards side by side, else a pool of its own);
    ``node``: the split shard of that name from its sub-shards (then returns what ``_write_shard`` does).

    The swap is conditional on the document read; a shard whose recorded revision is later than the
    one read is read again. Writers that grew a shard after it was read here and found the extent of
    before the swap covering it wrote nothing: listing the shards after the swap finds them, and their
    views are merged."""
    if pool is None:
        with ThreadPoolExecutor(REFRESH_WORKERS) as own:
            return _refresh(store, cat, fields=fields, pool=own, node=node)
    cid = cat.id
    known: dict[str, tuple[str, ShardView]] = {}

    def fetch(hhs: Iterable[str]) -> None:
        wanted = sorted(hhs)
        for hh, got in zip(wanted, pool.map(partial(_read_shard, store, cid), wanted)):
            if got is None:
                known.pop(hh, None)
            else:
                known[hh] = got

    fetch(hh for hh, etag in _stored_shards(store, cid, node).items() if known.get(hh, ("",))[0] != etag)

    def recompute(doc: dict[str, Any]) -> dict[str, Any] | None:
        recorded = doc.get(SHARDS_FIELD, {})
        fetch(hh for hh, e in recorded.items() if _is_part(hh, node) and (hh not in known or _rev(e) > known[hh][1].rev))
        shards = {hh: {"rev": max(view.rev, _rev(recorded.get(hh))), "linked": view.linked}
                  for hh, (_, view) in known.items() if view.linked or hh in recorded}
        base = dict(doc, **{k: v for k, v in empty_collection(cat).items()
                            if k not in ("extent", "links", "assets", SHARDS_FIELD, UNION_FIELD)}) if fields else doc
        new = _derive(base, shards, merge(v.summary for _, v in known.values() if v.linked and v.summary is not None),
                      node)
        return None if new == doc else new

    first: Written | None = None
    if node:
        first = _write_shard(store, cid, node, recompute, leaf=False)
    else:
        def attempt() -> None:
            try:
                obj = store.get(collection_key(cid))
                doc, etag = obj.json(), obj.etag
            except NotFound:
                doc, etag = empty_collection(cat), None
            new = recompute(doc)
            if new is None and etag is not None:
                return
            if etag is None:
                store.put_json(collection_key(cid), new or doc, if_none_match=True)
            else:
                store.put_json(collection_key(cid), new, if_match=etag)

        DEFAULT.run(attempt, f"refreshing {collection_key(cid)}")
    written = {hh for hh, etag in _stored_shards(store, cid, node).items() if known.get(hh, ("",))[0] != etag}
    last = first
    if written:
        fetch(written)
        late = {hh: known[hh][1] for hh in written if hh in known}
        if node:
            last = _write_shard(store, cid, node, partial(apply_to_collection, views=late, unseen_ok=True, node=node),
                                leaf=False)
        else:
            store.update_json(collection_key(cid), partial(apply_to_collection, views=late, unseen_ok=True),
                              default=lambda: empty_collection(cat))
    if first is None or last is None:
        return None, ShardView(0, False, None)  # the collection's: nobody records it
    return (first[0] if first[0] is not None else last[0]), last[1]


def shard_items(store: ObjectStore, cid: str, shard: str) -> dict[str, Summary]:
    """The items a client reaches from the shard (its own, or its linked sub-shards'), with their summaries."""
    try:
        doc = orjson.loads(store.get(shard_key(cid, shard)).body)
    except NotFound:
        return {}
    if SHARDS_FIELD not in doc:
        return dict(doc.get(ITEMS_FIELD, {}))
    out: dict[str, Summary] = {}
    for sub, entry in sorted(doc[SHARDS_FIELD].items()):
        if _linked(entry):
            out |= shard_items(store, cid, sub)
    return out


def rebuild(store: ObjectStore, cid: str, summaries: Mapping[str, Summary], *, since: int,
            current: Callable[[str], Summary | None]) -> None:
    """Rewrite every shard and the collection document of ``cid`` from item summaries (reindex).

    ``summaries`` were read from the items from time ``since`` (ns) on. Publishers may write
    meanwhile: a shard written after ``since`` (less the clock skew) may hold newer states than
    ``summaries``, so there each item on which the two disagree is read again (``current``: its
    summary now, None if gone) after reading the shard, and the compare-and-swap keeps it exact.
    Split shards are recomputed from their sub-shards, then the collection from every shard (and its
    fields from the config).
    """
    cat = _category(cid)
    per_shard: dict[str, dict[str, Summary]] = {}
    for iid, summary in summaries.items():
        per_shard.setdefault(shard_of(iid), {})[iid] = summary
    stored = {info.key.rsplit("/", 1)[-1].removesuffix(".json") for info in store.list(f"collections/{cid}/shards/")}
    for hh in sorted(stored - _SHARD_IDS):
        store.delete(shard_key(cid, hh))  # no item id hashes there
    recorded = set((read_collection(store, cid) or {}).get(SHARDS_FIELD, {}))
    touched_after = since - CLOCK_SKEW_NS

    def reconcile(doc: dict[str, Any], hh: str, wanted: Mapping[str, Summary]) -> dict[str, Any] | None:
        want = dict(wanted)
        held = doc.get(ITEMS_FIELD, {})
        if int(doc.get(REV_FIELD, 0)) >= touched_after:
            for iid in {i for i in held.keys() | want.keys() if held.get(i) != want.get(i)}:
                now = current(iid)
                if now is None:
                    want.pop(iid, None)
                else:
                    want[iid] = now
        return apply_to_shard(doc, hh, want, set(held) - set(want))

    def reconciling(shard: str, batch: Mapping[str, Any]) -> Change:
        return partial(reconcile, hh=shard, wanted=batch)

    for hh in sorted(per_shard.keys() | (stored & _SHARD_IDS) | (recorded & _SHARD_IDS)):
        _apply_subtree(store, cat, hh, per_shard.get(hh, {}), reconciling, every=True)
    _refresh(store, cat, fields=True)
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
