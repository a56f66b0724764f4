"""STAC API v1.0.0 documents: landing page, conformance, collections, items, search, queryables, OpenAPI.

Domain only: every function takes the API's absolute base URL (``.../stac``) and returns the JSON
document; chalicelib/http/stac_routes.py turns them into responses. Stored items and collections
carry relative static-catalog links; here they get the API's absolute ones instead.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol
from urllib.parse import urlencode

from ..auth.access import EVERYTHING, ReadScope
from ..bounds import RESPONSE_BUDGET, payload_size
from ..store import InvalidKey, NotFound, NotModified, ObjectStore
from . import catalog
from .access import allows, is_public
from .errors import NotFoundError
from .hrefs import resolve_bytes, resolve_item, route_downloads, stored_object

if TYPE_CHECKING:
    from .table import Table

JSON = "application/json"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES_REL = catalog.QUERYABLES_REL

_STAC = "https://api.stacspec.org/v1.0.0"
_FEATURES = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
_FILTER = "http://www.opengis.net/spec/ogcapi-filter-4/1.0/conf"
_OWN = [f"{_STAC}/core", f"{_STAC}/collections", f"{_STAC}/ogcapi-features", f"{_FEATURES}/core",
        f"{_FEATURES}/geojson", f"{_FEATURES}/oas30", f"{_STAC}/item-search", f"{_STAC}/item-search#filter",
        f"{_STAC}/ogcapi-features#filter", f"{_FILTER}/filter", f"{_FILTER}/features-filter"]


@lru_cache(maxsize=1)
def conformance_classes() -> list[str]:
    """Ours plus what each search extension module declares it implements."""
    from . import fields, filter, freetext, sort, transactions
    return (_OWN + filter.CONFORMANCE + sort.CONFORMANCE + fields.CONFORMANCE + freetext.CONFORMANCE
            + transactions.CONFORMANCE)


def _link(rel: str, href: str, media_type: str = JSON, **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "href": href, "type": media_type, **extra}


def landing_page(base: str) -> dict[str, Any]:
    return json.loads(landing_page_json(base))  # type: ignore[no-any-return]


@lru_cache(maxsize=64)  # per base URL (hosts a deployment answers on): the configuration is fixed per process
def landing_page_json(base: str) -> str:
    """The landing page, serialised: it depends only on the base URL and the catalog's configuration."""
    return _dumps(_landing_page(base))


@lru_cache(maxsize=1)
def conformance_json() -> str:
    return _dumps(conformance())


def _landing_page(base: str) -> dict[str, Any]:
    cfg = catalog.config()
    links = [
        _link("self", base), _link("root", base),
        _link("service-desc", f"{base}/api", OPENAPI, title="OpenAPI definition"),
        _link("conformance", f"{base}/conformance", title="Conformance classes"),
        _link("data", f"{base}/collections", title="Collections"),
        _link("search", f"{base}/search", GEOJSON, method="GET", title="Item search"),
        _link("search", f"{base}/search", GEOJSON, method="POST", title="Item search"),
        _link(QUERYABLES_REL, f"{base}/queryables", SCHEMA_JSON, title="Queryables"),
    ]
    links += [_link("child", f"{base}/collections/{c.id}", title=c.title) for c in cfg.categories]
    return {"type": "Catalog", "stac_version": catalog.STAC_VERSION, "id": cfg.id, "title": cfg.title,
            "description": cfg.description, "conformsTo": conformance_classes(), "links": links}


def conformance() -> dict[str, Any]:
    return {"conformsTo": conformance_classes()}


def collection_links(base: str, cid: str) -> list[dict[str, Any]]:
    url = f"{base}/collections/{cid}"
    return [_link("self", url, title=cid), _link("root", base, title="Landing page"),
            _link("parent", base, title="Landing page"), _link("items", f"{url}/items", GEOJSON, title="Items"),
            _link(QUERYABLES_REL, f"{url}/queryables", SCHEMA_JSON, title="Queryables")]


def item_links(base: str, cid: str, item_id: str) -> list[dict[str, Any]]:
    url = f"{base}/collections/{cid}"
    return [_link("self", f"{url}/items/{item_id}", GEOJSON), _link("parent", url),
            _link("collection", url), _link("root", base)]


def _escaped(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)[1:-1]


class _Features:
    """The features of a page, spliced from the index's bytes: each item's JSON without
    links, then ``item_links`` (written out here for speed; tests check they are equal) and the
    item's own links."""

    def __init__(self, base: str) -> None:
        self.raw_base = base
        self.base = _escaped(base)
        self._heads: dict[str, tuple[bytes, bytes]] = {}

    def _head(self, cid: str) -> tuple[bytes, bytes]:
        """The bytes before and after the item id in the links of an item of ``cid``."""
        url = f"{self.base}/collections/{_escaped(cid)}"
        return (f',"links":[{{"rel":"self","href":"{url}/items/'.encode(),
                (f'","type":"{GEOJSON}"}},{{"rel":"parent","href":"{url}","type":"{JSON}"}},'
                 f'{{"rel":"collection","href":"{url}","type":"{JSON}"}},'
                 f'{{"rel":"root","href":"{self.base}","type":"{JSON}"}}').encode())

    def __call__(self, hits: list[tuple[Table, int]]) -> list[bytes]:
        """Each hit's feature JSON."""
        out = [b""] * len(hits)
        by_table: dict[int, tuple[Table, list[int], list[int]]] = {}
        for i, (table, row) in enumerate(hits):
            entry = by_table.get(id(table))
            if entry is None:
                entry = by_table[id(table)] = (table, [], [])
            entry[1].append(i)
            entry[2].append(row)
        heads, base = self._heads, self.raw_base
        for table, at, rows in by_table.values():  # per table at once (lazily read bodies: one GET per run of chunks)
            colls = table.coll_list
            ids = table.id_list.blobs.take(rows)  # UTF-8, one slice per row
            for i, row, item_id, body, links in zip(at, rows, ids, table.raw.take(rows), table.links.take(rows)):
                cid = colls[row]
                head = heads.get(cid)
                if head is None:
                    head = heads[cid] = self._head(cid)
                own = b"]}" if len(links) == 2 else b"," + resolve_bytes(links[1:], cid, base) + b"}"
                out[i] = b"".join((resolve_bytes(body[:-1], cid, base), head[0], _escaped(item_id.decode()).encode(),
                                   head[1], own))
        return out


MAX_PAGE_BYTES = RESPONSE_BUDGET  # a page's share of the Lambda response payload
DOWNLOAD_EXPIRES = 300  # seconds a presigned download URL of an asset stays valid


class Remotes(Protocol):
    """The DVC remotes the service may presign (chalicelib.datasets.remotes.ConfiguredRemotes)."""

    def store_for(self, url: str) -> ObjectStore | None:
        """``s3://bucket/prefix`` -> a store rooted there; None if not under a configured remote."""


def _remote_object(remotes: Remotes, href: str) -> tuple[ObjectStore, str] | None:
    """(store, key) of an ``s3://`` href under a configured remote: its shortest covered prefix is the
    remote itself, so no store is opened for anything else."""
    parts = href[len("s3://"):].split("/")
    for n in range(1, len(parts)):
        store = remotes.store_for("s3://" + "/".join(parts[:n]))
        if store is not None:
            return store, "/".join(parts[n:])
    return None


def _own_links(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Links that are not part of the static tree's structure (license, about, derived_from, ...)."""
    return [link for link in doc.get("links", []) if link.get("rel") not in catalog.STRUCTURAL_RELS]


def api_collection(base: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    out = catalog.public(doc)
    out["links"] = collection_links(base, out["id"]) + _own_links(doc)
    # Its stac-geoparquet mirror's files, served through the API (the route presigns each one); the
    # single-file asset of the unpartitioned layout is gone once the dataset's first layout is linked.
    assets = {}
    for key, asset in (doc.get("assets") or {}).items():
        part = catalog.geoparquet_asset_part(key, asset)
        if part is not None:
            asset = dict(asset, href=f"{base}/collections/{out['id']}/geoparquet/{part}")
        elif key == catalog.GEOPARQUET_ASSET:
            continue
        assets[key] = dict(asset) if isinstance(asset, dict) else asset
    out["assets"] = assets
    return out


def api_item(base: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as the API serves it; items trimmed by ``fields`` keep their shape. A non-public
    item's assets point at the download route (those of the index already do)."""
    out = dict(item)
    if "links" in out and "id" in out and "collection" in out:
        out["links"] = item_links(base, out["collection"], out["id"]) + [dict(link) for link in _own_links(item)]
    if isinstance(out.get("assets"), dict):  # copies: hrefs are resolved in place, never in a cached item
        out["assets"] = {k: dict(v) if isinstance(v, dict) else v for k, v in out["assets"].items()}
        if not is_public(item):
            route_downloads(out)
    resolve_item(out, base)
    return out


_RENDERED_PAGES = 64  # (base URL, collection versions) -> body; bounded: Host headers are the client's


class _CollectionPages:
    """Collection documents as the API serves them, rendered once per version of the stored documents.

    Each read revalidates every document it uses with a conditional GET (``If-None-Match``: a 304
    carries no body and costs no parse), so a publication is served by the next request, in every
    process, while an unchanged catalog costs no JSON work at all."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[str | None, dict[str, Any]]] = {}  # cid -> (ETag, None if absent; doc)
        self._pages: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    def doc(self, cid: str) -> tuple[str | None, dict[str, Any]]:
        """(version, document) of a configured collection: stored, else the empty one of its category."""
        cat = catalog.config().category(cid)
        if cat is None:
            raise NotFoundError(f"collection {cid!r} not found")
        cached = self._docs.get(cid)
        try:
            obj = self.store.get(catalog.collection_key(cid), if_none_match=cached[0] if cached else None)
        except NotModified:
            assert cached is not None  # only a conditional GET answers 304
            return cached
        except NotFound:
            current: tuple[str | None, dict[str, Any]] = (None, catalog.empty_collection(cat))
        else:
            current = (obj.etag, obj.json())
        with self._lock:
            self._docs[cid] = current
        return current

    def page(self, key: tuple[Any, ...], render: Callable[[], Any]) -> str:
        """The body cached under ``key`` (which names every version it depends on), rendered on a miss."""
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
                return body
        body = _dumps(render())
        with self._lock:
            self._pages[key] = body
            while len(self._pages) > _RENDERED_PAGES:
                self._pages.popitem(last=False)
        return body


class StacApi:
    """The read side of the STAC API over one store and its search index."""

    def __init__(self, store: ObjectStore, index: Any = None, *, max_page_bytes: int = MAX_PAGE_BYTES) -> None:
        self.store = store
        self._index = index
        self.max_page_bytes = max_page_bytes
        self._collection_pages = _CollectionPages(store)

    @property
    def index(self) -> Any:
        """The search index (chalicelib.stac.index.SearchIndex), built on first search."""
        if self._index is None:
            from .index import SearchIndex
            self._index = SearchIndex(self.store)
        return self._index

    @property
    def known(self) -> set[str]:
        return catalog.config().collection_ids

    def collections(self, base: str) -> dict[str, Any]:
        return json.loads(self.collections_json(base))  # type: ignore[no-any-return]

    def collections_json(self, base: str) -> str:
        """``/collections``, serialised; one conditional GET per collection when nothing changed."""
        current = [(c.id, *self._collection_pages.doc(c.id)) for c in catalog.config().categories]

        def render() -> dict[str, Any]:
            docs = [api_collection(base, doc) for _, _, doc in current]
            return {"collections": docs, "links": [_link("self", f"{base}/collections"), _link("root", base),
                                                   _link("parent", base)],
                    "numberMatched": len(docs), "numberReturned": len(docs)}
        return self._collection_pages.page(("all", base, tuple((cid, etag) for cid, etag, _ in current)), render)

    def collection(self, base: str, cid: str) -> dict[str, Any]:
        return json.loads(self.collection_json(base, cid))  # type: ignore[no-any-return]

    def collection_json(self, base: str, cid: str) -> str:
        etag, doc = self._collection_pages.doc(cid)
        return self._collection_pages.page(("one", base, cid, etag), lambda: api_collection(base, doc))

    def _check_collection(self, cid: str) -> None:
        if cid not in self.known:
            raise NotFoundError(f"collection {cid!r} not found")

    def stored_item(self, cid: str, item_id: str, scope: ReadScope = EVERYTHING) -> tuple[dict[str, Any], str]:
        """(the item as stored, its ETag); NotFoundError when absent or not readable by ``scope``, with
        the same message either way, so an answer never tells a private item from a missing one.

        A public item is read from the static catalog with one GET; any other from the private prefix
        (an item the publication function has not moved yet is found where it was written)."""
        self._check_collection(cid)
        missing = NotFoundError(f"item {item_id!r} not found in collection {cid!r}")
        found = None
        for private in (False, True):
            got = self._read_item(catalog.item_key(cid, item_id, private=private))
            if got is not None and (private or is_public(got[0])):
                found = got
                break
            found = found or got
        if found is None or not allows(scope, found[0]):
            raise missing
        return found

    def _read_item(self, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            obj = self.store.get(key)
            doc = obj.json()
        except (NotFound, InvalidKey, ValueError):  # ValueError: an upload not yet rejected as malformed
            return None
        return (doc, obj.etag) if isinstance(doc, dict) and doc.get("type") == "Feature" else None

    def item(self, base: str, cid: str, item_id: str, scope: ReadScope = EVERYTHING) -> dict[str, Any]:
        return api_item(base, self.stored_item(cid, item_id, scope)[0])

    def download(self, cid: str, item_id: str, asset: str, scope: ReadScope = EVERYTHING, *,
                 remotes: Remotes | None = None, base_url: str | None = None) -> str:
        """A short-lived presigned URL of an item's asset, for a caller ``scope`` lets read the item."""
        doc, _ = self.stored_item(cid, item_id, scope)
        entry = (doc.get("assets") or {}).get(asset)
        href = entry.get("href") if isinstance(entry, dict) else None
        if not isinstance(href, str):
            raise NotFoundError(f"asset {asset!r} not found in item {item_id!r}")
        key = stored_object(href, cid)
        if key is not None:
            return self.store.presign_get(key, expires=DOWNLOAD_EXPIRES, base_url=base_url)
        remote = _remote_object(remotes, href) if remotes is not None and href.startswith("s3://") else None
        if remote is not None:
            return remote[0].presign_get(remote[1], expires=DOWNLOAD_EXPIRES, base_url=base_url)
        if href.startswith(("http://", "https://")):
            return href
        raise NotFoundError(f"asset {asset!r} of item {item_id!r} cannot be downloaded through this service")

    def _mirror(self, cid: str) -> dict[str, Any]:
        self._check_collection(cid)
        try:
            doc = self.store.get_json(catalog.geoparquet_manifest_key(cid))
            return {"layout": str(doc["layout"]), "partitions": int(doc["partitions"])}
        except (NotFound, KeyError, TypeError, ValueError):
            raise NotFoundError(f"collection {cid!r} has no stac-geoparquet dataset yet") from None

    def geoparquet(self, base: str, cid: str) -> dict[str, Any]:
        """The collection's stac-geoparquet dataset (public items only, like the static catalog): its
        partition files, each a route that redirects to a presigned URL; NotFoundError before the
        first regeneration."""
        mirror = self._mirror(cid)
        files = [{"href": f"{base}/collections/{cid}/geoparquet/{k}", "type": catalog.PARQUET}
                 for k in range(mirror["partitions"])]
        return {"collection": cid, "partitions": mirror["partitions"], "files": files,
                "links": [_link("collection", f"{base}/collections/{cid}")]}

    def geoparquet_part(self, cid: str, part: str, *, base_url: str | None = None) -> str:
        """A short-lived presigned URL of one partition file of the current layout."""
        mirror = self._mirror(cid)
        number = catalog.partition_number(part)
        if number is None or number >= mirror["partitions"]:
            raise NotFoundError(f"collection {cid!r} has no stac-geoparquet partition {part[:16]!r}")
        key = catalog.geoparquet_part_key(cid, mirror["layout"], number)
        try:
            self.store.head(key)
        except NotFound:
            raise NotFoundError(f"stac-geoparquet partition {number} of {cid!r} is being replaced; retry") from None
        return self.store.presign_get(key, expires=DOWNLOAD_EXPIRES, base_url=base_url)

    def items(self, base: str, cid: str, params: Mapping[str, list[str]], scope: ReadScope = EVERYTHING) -> str:
        from . import search
        self._check_collection(cid)
        req = search.parse_get(params, collection=cid)
        url = f"{base}/collections/{cid}/items"
        extra = [_link("collection", f"{base}/collections/{cid}"), _link("parent", f"{base}/collections/{cid}")]
        return self._page(base, req, scope, get_url=url, params=params, extra_links=extra)

    def search_get(self, base: str, params: Mapping[str, list[str]], scope: ReadScope = EVERYTHING) -> str:
        from . import search
        return self._page(base, search.parse_get(params), scope, get_url=f"{base}/search", params=params)

    def search_post(self, base: str, body: Any, scope: ReadScope = EVERYTHING) -> str:
        from . import search
        return self._page(base, search.parse_post(body), scope, post_url=f"{base}/search", body=body)

    def queryables(self, base: str, cid: str | None, scope: ReadScope = EVERYTHING) -> dict[str, Any]:
        from . import search
        if cid is not None:
            self._check_collection(cid)
        doc = dict(search.queryables(self.index.snapshot(), cid, scope))
        doc["$id"] = f"{base}/collections/{cid}/queryables" if cid else f"{base}/queryables"
        return doc

    def _page(self, base: str, req: Any, scope: ReadScope, *, get_url: str | None = None, params: Mapping[str, list[str]] | None = None,
              post_url: str | None = None, body: Mapping[str, Any] | None = None,
              extra_links: list[dict[str, Any]] | None = None) -> str:
        """The FeatureCollection, already serialised: items are spliced from stored bytes.

        A page ends early when its items would not fit ``max_page_bytes``: the next (or, paging
        backwards, prev) token then starts after its last item, so no item is skipped."""
        from . import search
        full = search.execute(self.index.snapshot(), req, known_collections=self.known, scope=scope)
        if full.fields is None:
            features = _Features(base)(full.hits)
        else:
            features = [_dumps(api_item(base, item)).encode() for item in full.items]
        before = '{"type":"FeatureCollection","features":['
        n, costs = len(features), None  # type: int, list[int] | None
        while True:
            page = full.truncated(n)
            after = "]," + _dumps({"links": self._links(base, page, get_url, params, post_url, body, extra_links),
                                   "numberReturned": n, "numberMatched": page.number_matched})[1:]
            room = self.max_page_bytes - payload_size((before + after).encode())
            if costs is None:  # the usual case first: the whole page fits
                joined = b",".join(features)
                if len(features) <= 1 or 3 * len(joined) <= room or payload_size(joined) <= room:
                    return before + joined.decode() + after
                costs = [payload_size(f) + 1 for f in features]  # + its comma
            elif n <= 1 or sum(costs[len(costs) - n:] if full.backward else costs[:n]) <= room:
                break
            n = max(1, min(n - 1, _fitting(costs[::-1] if full.backward else costs, room)))
        chosen = features[len(features) - n:] if full.backward else features[:n]
        return before + b",".join(chosen).decode() + after

    @staticmethod
    def _links(base: str, page: Any, get_url: str | None, params: Mapping[str, list[str]] | None,
               post_url: str | None, body: Mapping[str, Any] | None,
               extra_links: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        links = [_link("root", base)] + (extra_links or [])
        if get_url is not None:
            links.insert(0, _link("self", _with_query(get_url, params or {}), GEOJSON))
            for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
                if token:
                    links.append(_link(rel, _with_query(get_url, params or {}, token=token), GEOJSON,
                                       method="GET"))
        else:
            links.insert(0, _link("self", str(post_url), GEOJSON))
            for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
                if token:
                    links.append(_link(rel, str(post_url), GEOJSON, method="POST",
                                       body={**(body or {}), "token": token}, merge=False))
        return links


def _fitting(costs: list[int], room: int) -> int:
    """How many of ``costs``, from the first, fit in ``room``."""
    total = 0
    for i, cost in enumerate(costs):
        total += cost
        if total > room:
            return i
    return len(costs)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _with_query(url: str, params: Mapping[str, list[str]], **replace: str) -> str:
    pairs = [(k, v) for k, values in params.items() if k not in replace for v in values]
    pairs += list(replace.items())
    return f"{url}?{urlencode(pairs)}" if pairs else url


def openapi(base: str) -> dict[str, Any]:
    """OpenAPI 3.0 description of the STAC API (the ``service-desc``)."""
    def param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
        return {"name": name, "in": where, "required": required or where == "path",
                "schema": schema, "description": description}

    def json_response(description: str, media: str = JSON, ref: str | None = None) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{ref}"} if ref else {"type": "object"}
        return {"description": description, "content": {media: {"schema": schema}}}

    errors = {"400": json_response("Invalid request", ref="Exception"),
              "404": json_response("Not found", ref="Exception")}
    string, integer = {"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 10000}
    search_params = [
        param("bbox", "query", {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
              "minx,miny,maxx,maxy (WGS84)"),
        param("datetime", "query", string, "RFC 3339 instant or interval (open ends as ..)"),
        param("limit", "query", integer, "page size (larger values are clamped)"),
        param("token", "query", string, "paging token from a next/prev link"),
        param("filter", "query", string, "CQL2 filter"),
        param("filter-lang", "query", {"type": "string", "enum": ["cql2-text", "cql2-json"]}, "filter language"),
        param("sortby", "query", string, "comma-separated fields, each prefixed + or -"),
        param("fields", "query", string, "comma-separated fields to include, - prefix to exclude"),
        param("q", "query", string, "free-text search terms"),
    ]
    cross = [param("ids", "query", string, "comma-separated item ids"),
             param("collections", "query", string, "comma-separated collection ids"),
             param("intersects", "query", string, "GeoJSON geometry")]
    cid = param("collectionId", "path", string, "collection id")
    if_match = param("If-Match", "header", string, "ETag of the item as last read (compare-and-swap)")
    item_body = {"required": True, "content": {GEOJSON: {"schema": {"type": "object"}},
                                               JSON: {"schema": {"type": "object"}}}}
    write_errors = {**errors, "401": json_response("Sign in", ref="Exception"),
                    "403": json_response("Permission denied", ref="Exception"),
                    "409": json_response("Conflict", ref="Exception"),
                    "412": json_response("ETag mismatch", ref="Exception"),
                    "413": json_response("Body too large", ref="Exception")}
    item_id = param("itemId", "path", string, "item id")
    paths = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage",
                      "responses": {"200": json_response("Landing page")}}},
        "/api": {"get": {"summary": "This OpenAPI definition", "operationId": "getOpenApi",
                         "responses": {"200": json_response("OpenAPI 3.0", OPENAPI)}}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformance",
                                 "responses": {"200": json_response("Conformance classes")}}},
        "/collections": {"get": {"summary": "Collections", "operationId": "getCollections",
                                 "responses": {"200": json_response("Collections")}}},
        "/collections/{collectionId}": {"get": {
            "summary": "One collection", "operationId": "describeCollection", "parameters": [cid],
            "responses": {"200": json_response("Collection"), **errors}}},
        "/collections/{collectionId}/items": {"get": {
            "summary": "Items of a collection", "operationId": "getFeatures", "parameters": [cid] + search_params,
            "responses": {"200": json_response("Items", GEOJSON), **errors}},
            "post": {"summary": "Create an item (Transaction extension)", "operationId": "postFeature",
                     "parameters": [cid], "requestBody": item_body,
                     "responses": {"201": json_response("The item as stored", GEOJSON), **write_errors}}},
        "/collections/{collectionId}/items/{itemId}": {
            "get": {"summary": "One item", "operationId": "getFeature", "parameters": [cid, item_id],
                    "responses": {"200": json_response("Item", GEOJSON), **errors}},
            "put": {"summary": "Replace an item", "operationId": "putFeature", "parameters": [cid, item_id, if_match],
                    "requestBody": item_body, "responses": {"200": json_response("Item", GEOJSON), **write_errors}},
            "patch": {"summary": "Merge-patch an item (RFC 7396)", "operationId": "patchFeature",
                      "parameters": [cid, item_id, if_match],
                      "requestBody": {"required": True, "content": {"application/merge-patch+json": {
                          "schema": {"type": "object"}}}},
                      "responses": {"200": json_response("Item", GEOJSON), **write_errors}},
            "delete": {"summary": "Delete an item", "operationId": "deleteFeature",
                       "parameters": [cid, item_id, if_match],
                       "responses": {"204": {"description": "Deleted"}, **write_errors}}},
        "/collections/{collectionId}/items/{itemId}/download": {"get": {
            "summary": "Redirect to a short-lived presigned URL of an asset", "operationId": "downloadAsset",
            "parameters": [cid, item_id, param("asset", "query", string, "asset key", required=True)],
            "responses": {"302": {"description": "Redirect to the asset"}, **errors}}},
        "/collections/{collectionId}/geoparquet": {"get": {
            "summary": "The files of the collection's stac-geoparquet dataset (one per partition)",
            "operationId": "getCollectionGeoparquet", "parameters": [cid],
            "responses": {"200": json_response("The dataset's partition files", JSON), **errors}}},
        "/collections/{collectionId}/geoparquet/{part}": {"get": {
            "summary": "Redirect to a short-lived presigned URL of one partition file of the stac-geoparquet dataset",
            "operationId": "getCollectionGeoparquetPart",
            "parameters": [cid, param("part", "path", {"type": "integer", "minimum": 0}, "partition number",
                                      required=True)],
            "responses": {"302": {"description": "Redirect to the file"}, **errors}}},
        "/collections/{collectionId}/queryables": {"get": {
            "summary": "Queryables of a collection", "operationId": "getCollectionQueryables", "parameters": [cid],
            "responses": {"200": json_response("JSON Schema", SCHEMA_JSON), **errors}}},
        "/queryables": {"get": {"summary": "Queryables of all collections", "operationId": "getQueryables",
                                "responses": {"200": json_response("JSON Schema", SCHEMA_JSON)}}},
        "/search": {
            "get": {"summary": "Search items", "operationId": "getItemSearch", "parameters": search_params + cross,
                    "responses": {"200": json_response("Items", GEOJSON), **errors}},
            "post": {"summary": "Search items", "operationId": "postItemSearch",
                     "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
                     "responses": {"200": json_response("Items", GEOJSON), **errors}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": catalog.config().title + " STAC API", "version": "1.0.0",
                 "description": "STAC API v1.0.0: core, collections, features, item search, filter, sort, "
                                "fields, free text"},
        "servers": [{"url": base}],
        "paths": paths,
        "components": {"schemas": {"Exception": {
            "type": "object", "required": ["code"],
            "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}}},
    }
