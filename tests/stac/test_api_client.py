"""pystac-client against a live server: every search parameter, compared with a brute-force answer."""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest
import requests
from pystac_client import Client
from shapely.geometry import shape

from tests.helpers import oracle
from tests.helpers.live_api import Api

Item = dict[str, Any]
INSTANT = oracle.ts


@pytest.fixture(scope="module")
def client(api: Api) -> Client:
    return Client.open(api.url)


def ids(items: Any) -> set[str]:
    return {i["id"] if isinstance(i, dict) else i.id for i in items}


def expect(api: Api, keep: Callable[[Item], bool]) -> set[str]:
    return {i["id"] for i in api.items if keep(i)}


AREA = {"type": "Polygon", "coordinates": [[[-60, -30], [40, -30], [40, 45], [-60, 45], [-60, -30]]]}
CASES: dict[str, tuple[dict[str, Any], Callable[[Item], bool]]] = {
    "ids": ({"ids": ["it-00003", "m-00010", "nope"]}, lambda i: i["id"] in {"it-00003", "m-00010"}),
    "collections": ({"collections": ["ai-model"]}, lambda i: i["collection"] == "ai-model"),
    "bbox": ({"bbox": [-20, -10, 60, 50]}, lambda i: oracle.in_bbox(i, [-20, -10, 60, 50])),
    "intersects": ({"intersects": AREA}, lambda i: shape(i["geometry"]).intersects(shape(AREA))),
    "datetime-range": ({"datetime": "2022-03-01T00:00:00Z/2022-06-30T23:59:59Z"},
                       lambda i: oracle.in_datetime(i, INSTANT("2022-03-01T00:00:00Z"),
                                                    INSTANT("2022-06-30T23:59:59Z"))),
    "datetime-open-start": ({"datetime": "../2022-02-01T00:00:00Z"},
                            lambda i: oracle.in_datetime(i, float("-inf"), INSTANT("2022-02-01T00:00:00Z"))),
    "datetime-open-end": ({"datetime": "2022-11-01T00:00:00Z/.."},
                          lambda i: oracle.in_datetime(i, INSTANT("2022-11-01T00:00:00Z"), float("inf"))),
    "filter-text": ({"filter": "\"eo:cloud_cover\" < 30 AND platform = 's2'", "filter_lang": "cql2-text"},
                    lambda i: oracle.cloud_lt(30)(i) and i["properties"].get("platform") == "s2"),
    "filter-json": ({"filter": {"op": "or", "args": [
        {"op": ">=", "args": [{"property": "eo:cloud_cover"}, 90]},
        {"op": "s_intersects", "args": [{"property": "geometry"}, AREA]}]}, "filter_lang": "cql2-json"},
        lambda i: (i["properties"].get("eo:cloud_cover", -1) >= 90) or shape(i["geometry"]).intersects(shape(AREA))),
    "combined": ({"collections": ["dataset"], "bbox": [-180, -60, 180, 60], "datetime": "2022-01-01T00:00:00Z/..",
                  "filter": "platform IN ('s1','l8')", "filter_lang": "cql2-text"},
                 lambda i: i["collection"] == "dataset" and oracle.in_bbox(i, [-180, -60, 180, 60])
                 and oracle.in_datetime(i, INSTANT("2022-01-01T00:00:00Z"), float("inf"))
                 and i["properties"].get("platform") in ("s1", "l8")),
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_search_matches_brute_force(client: Client, api: Api, case: str, method: str) -> None:
    params, keep = CASES[case]
    search = client.search(method=method, limit=17, **params)
    got = [i.to_dict() for i in search.items()]
    assert len(got) == len(ids(got))  # paging never repeats an item
    assert ids(got) == expect(api, keep)
    assert search.matched() == len(got)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_paging_through_many_pages_in_sort_order(client: Client, api: Api, method: str) -> None:
    search = client.search(method=method, limit=9, collections=["dataset"],
                           sortby=[{"field": "properties.eo:cloud_cover", "direction": "desc"},
                                   {"field": "id", "direction": "asc"}])
    pages = list(search.pages_as_dicts())
    assert len(pages) > 3
    assert all(len(p["features"]) <= 9 for p in pages)
    got = [f["id"] for p in pages for f in p["features"]]
    mine = [i for i in api.items if i["collection"] == "dataset"]
    want = oracle.order(mine, [(oracle.prop("eo:cloud_cover"), True), (lambda i: i["id"], False)])
    assert got == [i["id"] for i in want]


def test_prev_links_walk_back(api: Api) -> None:
    first = requests.get(api.url + "/search", params={"limit": 5, "sortby": "id"}, timeout=30).json()
    nxt = next(l for l in first["links"] if l["rel"] == "next")
    second = requests.get(nxt["href"], timeout=30).json()
    prev = next(l for l in second["links"] if l["rel"] == "prev")
    back = requests.get(prev["href"], timeout=30).json()
    assert [f["id"] for f in back["features"]] == [f["id"] for f in first["features"]]


def test_fields_include_and_exclude(client: Client) -> None:
    search = client.search(collections=["ai-model"], max_items=5,
                           fields={"include": ["properties.platform"], "exclude": ["assets", "properties.title"]})
    for item in search.items_as_dicts():
        assert "assets" not in item
        assert "title" not in item["properties"]
        assert "platform" in item["properties"]
        assert item["id"]


def test_free_text(api: Api) -> None:
    for method in ("GET", "POST"):
        if method == "GET":
            r = requests.get(api.url + "/search", params={"q": "alps", "limit": 1000}, timeout=30)
        else:
            r = requests.post(api.url + "/search", json={"q": "alps", "limit": 1000}, timeout=30)
        assert r.status_code == 200
        assert ids(r.json()["features"]) == expect(api, lambda i: oracle.has_word(i, "alps"))


def test_collection_items_endpoint_matches(client: Client, api: Api) -> None:
    coll = client.get_collection("ai-model")
    got = ids(coll.get_items())
    assert got == expect(api, lambda i: i["collection"] == "ai-model")
    item = coll.get_item("m-00010")
    assert item is not None
    assert item.id == "m-00010"


def test_limit_is_clamped(api: Api) -> None:
    r = requests.get(api.url + "/search", params={"limit": 1000000}, timeout=30)
    assert r.status_code == 200
    assert len(r.json()["features"]) == len(api.items)
    assert json.loads(r.text)["numberReturned"] == len(api.items)
