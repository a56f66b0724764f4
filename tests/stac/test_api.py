"""The STAC API over HTTP (a live ``stacflow serve``): documents, links, media types, errors."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from stac_offline import validate_object

from chalicelib.stac.errors import StacApiError

from tests.helpers.live_api import Api

GEOJSON = "application/geo+json"


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=30)


def features_valid(doc: dict[str, Any]) -> None:
    assert doc["type"] == "FeatureCollection"
    for feature in doc["features"]:
        assert validate_object(feature) == [], feature["id"]


def test_landing_page(api: Api) -> None:
    r = get(api.url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert validate_object(doc) == []
    links = {(l["rel"], l.get("method")): l for l in doc["links"]}
    assert links[("self", None)]["href"] == api.url
    assert links[("service-desc", None)]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert links[("search", "GET")]["href"] == links[("search", "POST")]["href"] == api.url + "/search"
    assert links[("data", None)]["href"] == api.url + "/collections"
    assert links[("conformance", None)]["href"] == api.url + "/conformance"
    assert links[("http://www.opengis.net/def/rel/ogc/1.0/queryables", None)]["type"] == "application/schema+json"
    assert sorted(l["href"] for l in doc["links"] if l["rel"] == "child") == [
        api.url + "/collections/ai-model", api.url + "/collections/dataset"]
    conformance = get(api.url + "/conformance").json()["conformsTo"]
    assert conformance == doc["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/item-search#filter" in conformance
    assert "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text" in conformance


def test_openapi_document(api: Api) -> None:
    r = requests.get(api.url + "/api", headers={"Accept": "application/vnd.oai.openapi+json;version=3.0"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.0"
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    assert doc["servers"] == [{"url": api.url}]
    assert {"/search", "/collections/{collectionId}/items/{itemId}", "/queryables"} <= set(doc["paths"])


def test_collections_follow_the_published_items(api: Api) -> None:
    doc = get(api.url + "/collections").json()
    assert validate_object(doc) == []
    assert [c["id"] for c in doc["collections"]] == ["ai-model", "dataset"]
    coll = get(api.url + "/collections/dataset").json()
    assert validate_object(coll) == []
    assert "stacflow:shards" not in coll
    rels = {l["rel"]: l["href"] for l in coll["links"]}
    assert rels["self"] == api.url + "/collections/dataset"
    assert rels["items"] == api.url + "/collections/dataset/items"
    assert rels["parent"] == rels["root"] == api.url
    mine = [i for i in api.items if i["collection"] == "dataset"]
    (west, south, east, north), = coll["extent"]["spatial"]["bbox"]
    assert west == min(i["bbox"][0] for i in mine)
    assert north == max(i["bbox"][3] for i in mine)


@pytest.fixture
def first_items(api: Api) -> requests.Response:
    """The first page of 7 items of the "dataset" collection."""
    return get(api.url + "/collections/dataset/items", limit=7)


def test_items_are_paged_with_a_next_link(api: Api, first_items: requests.Response) -> None:
    assert first_items.status_code == 200
    assert first_items.headers["content-type"] == GEOJSON
    page = first_items.json()
    features_valid(page)
    assert len(page["features"]) == 7
    assert page["numberMatched"] == 150
    assert {f["collection"] for f in page["features"]} == {"dataset"}
    nxt = next(l for l in page["links"] if l["rel"] == "next")
    assert nxt["href"].startswith(api.url + "/collections/dataset/items?")
    assert "token=" in nxt["href"]
    second = get(nxt["href"]).json()
    assert not {f["id"] for f in second["features"]} & {f["id"] for f in page["features"]}


def test_an_item_is_served_at_its_self_link(api: Api, first_items: requests.Response) -> None:
    first = first_items.json()["features"][0]
    self_href = next(l["href"] for l in first["links"] if l["rel"] == "self")
    assert self_href == f"{api.url}/collections/dataset/items/{first['id']}"
    r = get(self_href)
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    item = r.json()
    assert validate_object(item) == []
    assert item["id"] == first["id"]
    rels = {l["rel"]: l["href"] for l in item["links"]}
    assert rels["collection"] == rels["parent"] == api.url + "/collections/dataset"
    assert rels["license"] == "https://example.com/license"  # the publisher's own links stay


def test_item_ids_with_reserved_characters(api: Api) -> None:
    for path in ("unet:flood+v2", "unet%3Aflood%2Bv2"):
        r = get(f"{api.url}/collections/ai-model/items/{path}")
        assert r.status_code == 200
        assert r.json()["id"] == "unet:flood+v2"
    found = get(api.url + "/search", ids="unet:flood+v2").json()["features"]
    self_href = next(l["href"] for l in found[0]["links"] if l["rel"] == "self")
    assert get(self_href).json()["id"] == "unet:flood+v2"


def test_search_responses_are_valid_stac(api: Api) -> None:
    doc = get(api.url + "/search", limit=1000).json()
    features_valid(doc)
    assert len(doc["features"]) == len(api.items)
    post = requests.post(api.url + "/search", json={"collections": ["ai-model"], "limit": 5}, timeout=30)
    assert post.status_code == 200
    assert post.headers["content-type"] == GEOJSON
    features_valid(post.json())
    nxt = next(l for l in post.json()["links"] if l["rel"] == "next")
    assert nxt["method"] == "POST"
    assert nxt["body"]["collections"] == ["ai-model"]
    assert nxt["body"]["token"]


def test_search_features_are_the_items_as_served_one_by_one(api: Api) -> None:
    """Pages are spliced from the index's bytes; each feature equals the item endpoint's answer."""
    doc = get(api.url + "/search", limit=1000).json()
    for feature in doc["features"]:
        alone = get(f"{api.url}/collections/{feature['collection']}/items/{feature['id']}").json()
        assert feature == alone
        assert [l["rel"] for l in feature["links"]] == ["self", "parent", "collection", "root", "license"]
    trimmed = get(api.url + "/search", limit=3, fields="id,-links").json()["features"]
    assert trimmed
    assert all("links" not in f for f in trimmed)
    assert all("geometry" not in f for f in trimmed)


def test_queryables(api: Api) -> None:
    for url in (api.url + "/queryables", api.url + "/collections/dataset/queryables"):
        r = get(url)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/schema+json"
        doc = r.json()
        assert doc["$id"] == url
        assert doc["type"] == "object"
        assert "eo:cloud_cover" in doc["properties"]


@pytest.mark.parametrize("path", ["/collections/nope", "/collections/nope/items", "/collections/nope/queryables",
                                  "/collections/dataset/items/nope", "/collections/nope/items/it-00001"])
def test_not_found(api: Api, path: str) -> None:
    r = get(api.url + path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "NotFound"
    assert r.json()["description"]


BAD_GET = {
    "bbox-three": {"bbox": "1,2,3"},
    "bbox-text": {"bbox": "a,b,c,d"},
    "bbox-lat": {"bbox": "0,-95,10,10"},
    "datetime-garbage": {"datetime": "yesterday"},
    "datetime-reversed": {"datetime": "2022-05-01T00:00:00Z/2021-01-01T00:00:00Z"},
    "datetime-open-both": {"datetime": "../.."},
    "datetime-date-only": {"datetime": "2022-04-12"},
    "datetime-no-offset": {"datetime": "2022-04-12T23:20:50"},
    "limit-zero": {"limit": "0"},
    "limit-negative": {"limit": "-1"},
    "limit-text": {"limit": "ten"},
    "intersects-json": {"intersects": "{not json"},
    "intersects-geometry": {"intersects": json.dumps({"type": "Polygon", "coordinates": [[1, 2]]})},
    "bbox-and-intersects": {"bbox": "0,0,1,1", "intersects": json.dumps({"type": "Point", "coordinates": [0, 0]})},
    "collections-unknown": {"collections": "nope"},
    "filter-syntax": {"filter": "eo:cloud_cover <<< 3"},
    "filter-lang": {"filter": "eo:cloud_cover < 3", "filter-lang": "sql"},
    "filter-json": {"filter": "{bad", "filter-lang": "cql2-json"},
    "sortby-geometry": {"sortby": "geometry"},
    "token-garbage": {"token": "not-a-token"},
    "q-unbalanced": {"q": "(alps"},
}


@pytest.mark.parametrize("case", sorted(BAD_GET))
def test_bad_get_parameters_are_400(api: Api, case: str) -> None:
    for path in ("/search", "/collections/dataset/items"):
        if path != "/search" and case == "collections-unknown":
            continue
        r = get(api.url + path, **BAD_GET[case])
        assert r.status_code == 400, (path, r.text[:300])
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert set(body) == {"code", "description"}
        assert body["description"]


BAD_POST: dict[str, Any] = {
    "array": [1, 2],
    "limit-text": {"limit": "ten"},
    "bbox-type": {"bbox": "0,0,1,1,2"},
    "ids-type": {"ids": [1, 2]},
    "collections-unknown": {"collections": ["nope"]},
    "intersects-type": {"intersects": {"type": "Nope", "coordinates": []}},
    "filter-op": {"filter": {"op": "nope", "args": []}},
    "sortby-field": {"sortby": [{"field": "geometry", "direction": "asc"}]},
    "fields-type": {"fields": ["id"]},
    "datetime-type": {"datetime": 2020},
    "fields-null": {"fields": None},
}


@pytest.mark.parametrize("case", sorted(BAD_POST))
def test_bad_post_bodies_are_400(api: Api, case: str) -> None:
    r = requests.post(api.url + "/search", json=BAD_POST[case], timeout=30)
    assert r.status_code == 400, r.text[:300]
    assert set(r.json()) == {"code", "description"}


def test_post_body_not_json(api: Api) -> None:
    r = requests.post(api.url + "/search", data=b"{oops", headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue"
    r = requests.post(api.url + "/search", data=b"{}", headers={"Content-Type": "application/json; charset=utf-8"},
                      timeout=30)
    assert r.status_code == 200


def test_one_request_cannot_kill_the_server(api: Api) -> None:
    """Issue 7: a cql2-text filter with thousands of nested parentheses overflowed cql2's native
    parser (SIGSEGV: the server died); bodies nested thousands deep raised RecursionError (a 500)."""
    deep = "(" * 3000 + "eo:cloud_cover < 3" + ")" * 3000
    nested = '{"filter":' + '{"op":"not","args":[' * 3000 + "true" + "]}" * 3000 + "}"
    answers = [
        get(api.url + "/search", filter=deep),
        get(api.url + "/collections/dataset/items", filter="NOT " * 6000 + "gsd = 1"),
        requests.post(api.url + "/search", json={"filter": deep, "filter-lang": "cql2-text"}, timeout=30),
        requests.post(api.url + "/search", data="[" * 5000 + "]" * 5000, timeout=30,
                      headers={"Content-Type": "application/json"}),
        requests.post(api.url + "/search", data=nested, headers={"Content-Type": "application/json"}, timeout=30),
        requests.post(api.url + "/search", json={"q": "(" * 3000 + "alps" + ")" * 3000}, timeout=30),
        requests.post(api.url + "/search", json={"ids": ["x" * 1000] * 6500}, timeout=30),
    ]
    for r in answers:
        assert r.status_code == 400, r.text[:300]
        assert set(r.json()) == {"code", "description"}
        assert r.json()["description"]
    assert requests.get(api.url.removesuffix("/stac") + "/health", timeout=30).status_code == 200
    assert get(api.url + "/search", limit=1).status_code == 200


def test_api_over_an_s3_store(s3_store, live_server_factory, tmp_path) -> None:
    from pathlib import Path

    from chalicelib.stac.publish import publish_paths

    from tests.helpers.stac_items import random_items
    items = random_items(12, "ai-model", ranges=False, prefix="s3")
    source = Path(tmp_path) / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    assert publish_paths(s3_store, [source], progress=False).published == 12
    url = live_server_factory(s3_store.uri).url + "/stac"
    found = get(url + "/search", collections="ai-model", limit=100).json()
    assert {f["id"] for f in found["features"]} == {i["id"] for i in items}
    item = get(f"{url}/collections/ai-model/items/{items[0]['id']}").json()
    assert validate_object(item) == []
    assert item["bbox"] == items[0]["bbox"]
    assert get(url + "/collections/ai-model").json()["extent"]["spatial"]["bbox"][0][0] == min(
        i["bbox"][0] for i in items)


def test_unprocessed_malformed_upload_is_not_found(api: Api) -> None:
    key = "collections/dataset/items/raw-broken.json"
    api.store.put(key, b"{oops")  # written behind the server's back: no event processed it yet
    try:
        r = get(api.url + "/collections/dataset/items/raw-broken")
        assert r.status_code == 404
        assert r.json()["code"] == "NotFound"
    finally:
        api.store.delete(key)


def _lambda_payload(body: str) -> int:
    """The size of the proxy response a Lambda function returns for ``body`` (its limit is 6 MB)."""
    return len(json.dumps({"statusCode": 200, "headers": {"Content-Type": GEOJSON}, "body": body}))


def test_pages_fit_a_lambda_response_and_tokens_visit_every_item(tmp_path) -> None:
    """Issue 7: limit=10000 answered one page of every match, however large (here ~13 MB as a Lambda
    payload; its limit is 6 MB). A page now also ends on its size, with a token for the rest."""
    from pathlib import Path

    from chalicelib.stac.api import StacApi
    from chalicelib.stac.publish import publish_paths
    from chalicelib.store.local import LocalStore

    from tests.helpers.stac_items import random_items
    store = LocalStore(Path(tmp_path) / "store", fsync=False)
    items = random_items(240, "ai-model", ranges=False, prefix="big")
    for i, item in enumerate(items):  # quotes and accents: the payload escapes them once more
        item["properties"]["description"] = f'"été" {i} ' * 2500
    source = Path(tmp_path) / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    assert publish_paths(store, [source], progress=False).published == 240
    stac = StacApi(store)
    base = "http://testserver/stac"
    by_id = sorted(items, key=lambda i: i["id"])  # the default order: datetime descending, then id
    want = [i["id"] for i in sorted(by_id, key=lambda i: i["properties"]["datetime"], reverse=True)]

    def walk(body: str, rel: str) -> list[tuple[str, list[str]]]:
        pages = []
        while True:
            assert _lambda_payload(body) <= 6 * 1024 * 1024
            doc = json.loads(body)
            pages.append((body, [f["id"] for f in doc["features"]]))
            assert doc["numberReturned"] == len(pages[-1][1])
            assert doc["numberMatched"] == 240
            link = next((link for link in doc["links"] if link["rel"] == rel), None)
            if link is None:
                return pages
            body = stac.search_post(base, link["body"]) if link["method"] == "POST" else stac.search_get(
                base, {k: [v] for k, v in parse_qsl(urlsplit(link["href"]).query)})

    forward = walk(stac.search_get(base, {"limit": ["10000"]}), "next")
    assert len(forward) > 2
    assert [iid for _, ids in forward for iid in ids] == want
    assert [iid for _, ids in walk(stac.search_post(base, {"limit": 10000}), "next") for iid in ids] == want
    backward = walk(forward[-1][0], "prev")
    assert [iid for _, ids in reversed(backward) for iid in ids] == want
    assert json.loads(stac.search_get(base, {"limit": ["1000000"]}))["numberReturned"] == len(forward[0][1])
    with pytest.raises(StacApiError):
        stac.search_get(base, {"limit": ["-1"]})
