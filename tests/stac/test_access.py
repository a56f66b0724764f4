"""STAC read access by ReadScope: search, items, item, queryables, tokens, the static catalog, downloads."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib import services
from chalicelib.auth.access import EVERYTHING, NOTHING, ReadScope
from chalicelib.stac import catalog
from chalicelib.stac.api import StacApi
from chalicelib.stac.check import check_catalog
from chalicelib.stac.errors import NotFoundError
from chalicelib.stac.publish import publish_paths, reindex
from chalicelib.store import ObjectStore
from chalicelib.store.local import LocalStore

from tests.helpers.private_items import SECRET_TITLE, linked, owned, stored_keys, world

BASE = "http://stac.test/stac"
ANONYMOUS_READ = ReadScope(public=True)
SIGNED_IN = ReadScope(public=True, internal=True)
MEMBER = ReadScope(public=True, internal=True, projects=frozenset({"grp/secret", "103"}))
MEMBER_BY_ID = ReadScope(public=True, internal=True, projects=frozenset({"103"}))

ALL = {"pub-a", "pub-b", "orphan-a", "int-a", "priv-a", "unk-a"}
VISIBLE = {
    "nothing": (NOTHING, set()),
    "anonymous": (ANONYMOUS_READ, {"pub-a", "pub-b", "orphan-a"}),
    "signed-in": (SIGNED_IN, {"pub-a", "pub-b", "orphan-a", "int-a"}),
    "member": (MEMBER, {"pub-a", "pub-b", "orphan-a", "int-a", "priv-a"}),
    "member-by-id": (MEMBER_BY_ID, {"pub-a", "pub-b", "orphan-a", "int-a", "priv-a"}),
    "everything": (EVERYTHING, ALL),
}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> StacApi:
    root = tmp_path_factory.mktemp("access")
    store = LocalStore(root / "store", fsync=False)
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in world()))
    report = publish_paths(store, [Path(source)], progress=False)
    assert report.published == len(ALL)
    return StacApi(store)


def ids(page: str) -> set[str]:
    return {f["id"] for f in json.loads(page)["features"]}


def token_values(page: str) -> list[Any]:
    out = []
    for link in json.loads(page)["links"]:
        if link["rel"] in ("next", "prev"):
            token = parse_qs(urlsplit(link["href"]).query)["token"][0]
            out += json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["k"]
    return out


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_search_and_counts_hold_only_readable_items(published: StacApi, who: str) -> None:
    scope, visible = VISIBLE[who]
    page = published.search_get(BASE, {"limit": ["100"]}, scope)
    assert ids(page) == visible
    assert json.loads(page)["numberMatched"] == len(visible)
    posted = published.search_post(BASE, {"limit": 100, "q": "scene OR classified"}, scope)
    assert ids(posted) <= visible
    items = published.items(BASE, "dataset", {"limit": ["100"]}, scope)
    assert json.loads(items)["numberMatched"] == len(visible)


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_every_filter_sees_only_readable_items(published: StacApi, who: str) -> None:
    scope, visible = VISIBLE[who]
    queries: list[dict[str, Any]] = [
        {"ids": sorted(ALL)}, {"bbox": [140, -50, 160, -30]}, {"datetime": "2029-01-01T00:00:00Z/.."},
        {"q": "classified"}, {"filter": {"op": "=", "args": [{"property": "secret:depth"}, 12]}},
        {"filter": "title LIKE '%flood%'", "filter-lang": "cql2-text"},
        {"sortby": [{"field": "datetime", "direction": "desc"}], "limit": 1},
        {"intersects": {"type": "Point", "coordinates": [150, -40]}},
    ]
    for query in queries:
        doc = json.loads(published.search_post(BASE, query, scope))
        assert {f["id"] for f in doc["features"]} <= visible, query
        assert doc["numberMatched"] <= len(visible), query


@pytest.mark.parametrize("who", ["anonymous", "signed-in", "member"])
def test_paging_tokens_name_only_readable_items(published: StacApi, who: str) -> None:
    scope, visible = VISIBLE[who]
    seen: list[str] = []
    params: dict[str, list[str]] = {"limit": ["1"], "sortby": ["-datetime"]}
    for _ in range(10):
        page = published.search_get(BASE, params, scope)
        seen += [f["id"] for f in json.loads(page)["features"]]
        assert {v for v in token_values(page) if isinstance(v, str)} - {"dataset"} <= visible
        nxt = [link for link in json.loads(page)["links"] if link["rel"] == "next"]
        if not nxt:
            break
        params = {k: v for k, v in parse_qs(urlsplit(nxt[0]["href"]).query).items()}
    assert sorted(seen) == sorted(visible)


def test_a_token_of_a_member_pages_a_stranger_only_through_their_own_items(published: StacApi) -> None:
    first = published.search_get(BASE, {"limit": ["1"], "sortby": ["-datetime"]}, MEMBER)
    assert ids(first) == {"priv-a"}  # the newest the member reads
    nxt = next(link["href"] for link in json.loads(first)["links"] if link["rel"] == "next")
    params = parse_qs(urlsplit(nxt).query)
    params["limit"] = ["100"]
    stranger = published.search_get(BASE, params, ANONYMOUS_READ)
    assert ids(stranger) <= VISIBLE["anonymous"][1]


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_an_unreadable_item_answers_as_an_absent_one(published: StacApi, who: str) -> None:
    scope, visible = VISIBLE[who]
    for iid in sorted(ALL):
        if iid in visible:
            assert published.item(BASE, "dataset", iid, scope)["id"] == iid
            continue
        with pytest.raises(NotFoundError) as hidden:
            published.item(BASE, "dataset", iid, scope)
        with pytest.raises(NotFoundError) as absent:
            published.item(BASE, "dataset", iid + "-none", scope)
        assert hidden.value.to_json()["description"] == absent.value.to_json()["description"].replace(
            iid + "-none", iid)


def test_queryables_come_from_readable_items_only(published: StacApi) -> None:
    assert "secret:depth" not in published.queryables(BASE, None, ANONYMOUS_READ)["properties"]
    assert "secret:depth" not in published.queryables(BASE, "dataset", SIGNED_IN)["properties"]
    assert "secret:depth" in published.queryables(BASE, "dataset", MEMBER)["properties"]


def test_the_static_catalog_holds_public_items_only(published: StacApi) -> None:
    store = published.store
    assert linked(store) == VISIBLE["anonymous"][1]
    assert stored_keys(store) == {catalog.item_key("dataset", i, private=i not in VISIBLE["anonymous"][1])
                                  for i in ALL}
    public_text = "".join(store.get(info.key).body.decode() for info in store.list("collections/"))
    public_text += store.get(catalog.ROOT_KEY).body.decode()
    for secret in ("priv-a", "int-a", "unk-a", SECRET_TITLE):
        assert secret not in public_text
    assert check_catalog(store).problems == []


def test_collection_extents_summarise_public_items_only(published: StacApi) -> None:
    coll = published.collection(BASE, "dataset")
    (west, south, east, north), = coll["extent"]["spatial"]["bbox"]
    assert (west, south, east, north) == (10, 50, 12, 52)
    assert coll["extent"]["temporal"]["interval"][0][1] < "2030"


def test_private_assets_point_at_the_download_route(published: StacApi) -> None:
    item = published.item(BASE, "dataset", "priv-a", MEMBER)
    assert item["assets"]["data"]["href"] == f"{BASE}/collections/dataset/items/priv-a/download?asset=data"
    page = json.loads(published.search_post(BASE, {"ids": ["priv-a"]}, MEMBER))
    assert page["features"][0]["assets"]["data"]["href"] == item["assets"]["data"]["href"]
    trimmed = json.loads(published.search_post(BASE, {"ids": ["priv-a"], "fields": {"include": ["assets"]}}, MEMBER))
    assert trimmed["features"][0]["assets"]["data"]["href"] == item["assets"]["data"]["href"]
    public = published.item(BASE, "dataset", "pub-a", ANONYMOUS_READ)
    assert "/download" not in public["assets"]["data"]["href"]


def test_downloads_are_presigned_after_the_check(published: StacApi) -> None:
    url = published.download("dataset", "priv-a", "data", MEMBER, base_url="http://stac.test")
    assert url.startswith("http://stac.test/files/")
    with pytest.raises(NotFoundError):
        published.download("dataset", "priv-a", "data", SIGNED_IN, base_url="http://stac.test")
    with pytest.raises(NotFoundError):
        published.download("dataset", "priv-a", "nothing-here", MEMBER, base_url="http://stac.test")


# -- the write paths: events, visibility changes, reindex ---------------------------------------
@pytest.fixture
def wired(tmp_path: Path) -> Iterator[ObjectStore]:
    """A local store as the service runs it: each write dispatches its event in-process."""
    store = LocalStore(tmp_path / "store", fsync=False)
    services.configure(store=store)
    yield store
    services.configure()


def test_a_private_item_written_into_the_static_catalog_moves_out(wired: ObjectStore) -> None:
    wired.put_json(catalog.item_key("dataset", "priv-a"), owned("priv-a", "private"))
    assert stored_keys(wired) == {catalog.item_key("dataset", "priv-a", private=True)}
    assert linked(wired) == set()
    assert ids(StacApi(wired).search_get(BASE, {}, MEMBER)) == {"priv-a"}


def test_visibility_changes_move_items_both_ways(wired: ObjectStore) -> None:
    api = StacApi(wired)
    wired.put_json(catalog.item_key("dataset", "x"), owned("x", "public"))
    assert linked(wired) == {"x"}
    # The project goes private: its publisher writes the item where it now belongs, then removes the old copy.
    wired.put_json(catalog.item_key("dataset", "x", private=True), owned("x", "private"))
    assert linked(wired) == set()  # the private copy wins while both exist
    assert ids(api.search_get(BASE, {}, ANONYMOUS_READ)) == set()
    wired.delete(catalog.item_key("dataset", "x"))
    assert stored_keys(wired) == {catalog.item_key("dataset", "x", private=True)}
    assert ids(api.search_get(BASE, {}, MEMBER)) == {"x"}
    # ... and public again.
    wired.put_json(catalog.item_key("dataset", "x"), owned("x", "public"))
    assert linked(wired) == set()  # until the private copy is gone
    wired.delete(catalog.item_key("dataset", "x", private=True))
    assert linked(wired) == {"x"}
    assert ids(api.search_get(BASE, {}, ANONYMOUS_READ)) == {"x"}


def test_a_public_item_written_under_the_private_prefix_moves_into_the_catalog(wired: ObjectStore) -> None:
    wired.put_json(catalog.item_key("dataset", "o", private=True), owned("o", None))
    assert stored_keys(wired) == {catalog.item_key("dataset", "o")}
    assert linked(wired) == {"o"}


def test_reindex_keeps_private_items_out_of_the_static_catalog(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    for item in world():  # written without events, some in the wrong place
        store.put_json(catalog.item_key("dataset", item["id"]), item, notify=False)
    report = reindex(store, progress=False)
    assert report.published == len(ALL)
    assert linked(store) == VISIBLE["anonymous"][1]
    assert stored_keys(store) == {catalog.item_key("dataset", i, private=i not in VISIBLE["anonymous"][1])
                                  for i in ALL}
    assert ids(StacApi(store).search_get(BASE, {"limit": ["100"]}, EVERYTHING)) == ALL
    assert check_catalog(store).problems == []


def test_check_reports_a_private_item_left_in_the_static_catalog(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    reindex(store, progress=False)
    store.put_json(catalog.item_key("dataset", "leak"), owned("leak", "private"), notify=False)
    problems = check_catalog(store).problems
    assert [(p.key, "not public" in p.problem) for p in problems] == [(catalog.item_key("dataset", "leak"), True)]
    reindex(store, progress=False)
    assert check_catalog(store).problems == []
    assert stored_keys(store) == {catalog.item_key("dataset", "leak", private=True)}


def test_a_private_asset_in_a_dvc_remote_is_presigned_from_that_remote(tmp_path: Path) -> None:
    store, remote = LocalStore(tmp_path / "store", fsync=False), LocalStore(tmp_path / "remote", fsync=False)
    opened: list[str] = []

    class Remotes:
        def store_for(self, url: str) -> ObjectStore | None:
            opened.append(url)
            return remote if url == "s3://dvc-bucket" else None

    item = owned("dvc-a", "private", href="s3://dvc-bucket/files/md5/ab/cdef")
    store.put_json(catalog.item_key("dataset", "dvc-a", private=True), item, notify=False)
    api = StacApi(store)
    assert api.item(BASE, "dataset", "dvc-a", MEMBER)["assets"]["data"]["href"].endswith("/download?asset=data")
    url = api.download("dataset", "dvc-a", "data", MEMBER, remotes=Remotes(), base_url="http://stac.test")
    assert remote.signed_urls is not None
    assert remote.signed_urls.verify(url.rsplit("/", 1)[1])["k"] == "files/md5/ab/cdef"
    assert opened == ["s3://dvc-bucket"]  # no store opened for anything but the remote itself
    with pytest.raises(NotFoundError):
        api.download("dataset", "dvc-a", "data", SIGNED_IN, remotes=Remotes(), base_url="http://stac.test")


def test_access_control_off_builds_nothing_per_table(tmp_path: Path) -> None:
    """``ReadScope.everything`` skips the filter outright: no owner grouping, no mask, on any table."""
    store = LocalStore(tmp_path / "store", fsync=False)
    source = tmp_path / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in world()))
    publish_paths(store, [source], progress=False)
    api = StacApi(store)
    assert ids(api.search_get(BASE, {"limit": ["100"]}, EVERYTHING)) == ALL
    api.queryables(BASE, None, EVERYTHING)
    tables = [table for table, _ in api.index.snapshot().parts]
    assert [("owners" in vars(t), t._readable) for t in tables] == [(False, {})] * len(tables)
    api.search_get(BASE, {}, MEMBER)
    assert all("owners" in vars(t) for t in tables)
