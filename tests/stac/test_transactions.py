"""STAC Transactions: create, replace, merge-patch, delete; access checks, conditional writes, bounds."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from chalicelib.auth.access import Action, ReadScope
from chalicelib.auth.errors import Forbidden
from chalicelib.stac import catalog
from chalicelib.stac.api import StacApi
from chalicelib.stac.errors import ConflictError, InvalidParameter, NotFoundError, PreconditionFailedError
from chalicelib.stac.transactions import MAX_BODY_BYTES, Caller, Transactions, etag_header, merge_patch
from chalicelib.store import ObjectStore

from tests.helpers.private_items import linked, owned, stored_keys

BASE = "http://stac.test/stac"


def writer(*projects: str, deleter: bool = False, visibility: dict[str, str] | None = None) -> Caller:
    """A caller who may write (and delete) in ``projects`` only; GitLab says ``visibility``."""
    def require(project: str | None, action: Action) -> None:
        if project not in projects or (action is Action.DELETE and not deleter):
            raise Forbidden(f"no {action.value} on {project}")
    return Caller(scope=ReadScope(public=True, internal=True, projects=frozenset(projects)), require=require,
                  visibility=lambda project: (visibility or {}).get(project))


@pytest.fixture
def wired(local_store: ObjectStore) -> Iterator[ObjectStore]:
    services.configure(store=local_store)
    yield local_store
    services.configure()


def test_create_publishes_like_a_write_into_the_bucket(wired: ObjectStore) -> None:
    tx = Transactions(wired)
    written = tx.create("dataset", owned("a", "public"), writer("grp/open"))
    assert stored_keys(wired) == {catalog.item_key("dataset", "a")}
    assert linked(wired) == {"a"}
    assert written.etag == wired.head(catalog.item_key("dataset", "a")).etag
    assert [f["id"] for f in json.loads(StacApi(wired).search_get(BASE, {}))["features"]] == ["a"]
    with pytest.raises(ConflictError):
        tx.create("dataset", owned("a", "public"), writer("grp/open"))


def test_visibility_is_gitlabs_word_not_the_items(wired: ObjectStore) -> None:
    claimed = owned("s", "private")
    claimed["properties"]["stacflow:visibility"] = "public"  # a writer cannot publish a private project's item
    Transactions(wired).create("dataset", claimed, writer("grp/secret", visibility={"grp/secret": "private"}))
    assert stored_keys(wired) == {catalog.item_key("dataset", "s", private=True)}
    assert linked(wired) == set()


def test_an_item_cannot_move_into_a_project_its_writer_cannot_write(wired: ObjectStore) -> None:
    tx = Transactions(wired)
    tx.create("dataset", owned("m", "public"), writer("grp/open"))
    moved = owned("m", "private")
    with pytest.raises(Forbidden):
        tx.replace("dataset", "m", moved, writer("grp/open"))
    with pytest.raises(Forbidden):
        tx.patch("dataset", "m", {"properties": {"stacflow:project": "grp/secret"}}, writer("grp/open"))
    assert wired.get_json(catalog.item_key("dataset", "m"))["properties"]["stacflow:project"] == "grp/open"
    both = writer("grp/open", "grp/secret", visibility={"grp/secret": "private"})
    tx.replace("dataset", "m", moved, both)  # a writer of both projects moves it, out of the static catalog
    assert stored_keys(wired) == {catalog.item_key("dataset", "m", private=True)}
    assert linked(wired) == set()


def test_conditional_writes_follow_if_match(wired: ObjectStore) -> None:
    tx, who = Transactions(wired), writer("grp/open", deleter=True)
    first = tx.create("dataset", owned("c", "public"), who)
    second = tx.patch("dataset", "c", {"properties": {"platform": "x"}}, who, if_match=etag_header(first.etag))
    with pytest.raises(PreconditionFailedError):
        tx.patch("dataset", "c", {"properties": {"platform": "y"}}, who, if_match=etag_header(first.etag))
    with pytest.raises(PreconditionFailedError):
        tx.delete("dataset", "c", who, if_match=etag_header(first.etag))
    assert wired.get_json(catalog.item_key("dataset", "c"))["properties"]["platform"] == "x"
    tx.delete("dataset", "c", who, if_match=etag_header(second.etag))
    assert stored_keys(wired) == set()
    assert linked(wired) == set()


def test_an_unreadable_item_is_absent_to_transactions(wired: ObjectStore) -> None:
    tx = Transactions(wired)
    tx.create("dataset", owned("p", "private"), writer("grp/secret"))
    stranger = writer("grp/open", deleter=True)
    for attempt in (lambda: tx.replace("dataset", "p", owned("p", "public"), stranger),
                    lambda: tx.patch("dataset", "p", {"properties": {"x": 1}}, stranger),
                    lambda: tx.delete("dataset", "p", stranger)):
        with pytest.raises(NotFoundError) as err:
            attempt()
        assert err.value.description == "item 'p' not found in collection 'dataset'"
    assert stored_keys(wired) == {catalog.item_key("dataset", "p", private=True)}


def test_bad_items_change_nothing(wired: ObjectStore) -> None:
    tx, who = Transactions(wired), writer("grp/open")
    broken = owned("b", "public")
    broken["properties"]["datetime"] = "yesterday"
    bad: list[Any] = [broken, [], {"type": "FeatureCollection", "features": []},
                      dict(owned("b", "public"), collection="ai-model"),
                      dict(owned("b", "public"), properties={"datetime": "2020-01-01T00:00:00Z",
                                                             "mlflow:registered_model_id": "m-1"})]
    for body in bad:
        with pytest.raises(InvalidParameter):
            tx.create("dataset", body, who)
    assert stored_keys(wired) == set()
    with pytest.raises(NotFoundError):
        tx.create("nope", owned("b", "public"), who)


def test_merge_patch_is_rfc_7396() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1, "b": {"d": 3, "e": 4}, "f": [1]}


# -- over HTTP (access control off: the one-user default) ------------------------------------------
@pytest.fixture
def client(wired: ObjectStore) -> Iterator[Client]:
    with Client(app) as c:
        yield c


def send(client: Client, method: str, path: str, body: Any = None, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return getattr(client.http, method)("/stac" + path, body=data,
                                        headers={"Content-Type": "application/json", **headers})


def test_the_routes_speak_the_extension(client: Client, wired: ObjectStore) -> None:
    conformance = json.loads(client.http.get("/stac/conformance").body)["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction" in conformance
    created = send(client, "post", "/collections/dataset/items", owned("h", "public"))
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/stac/collections/dataset/items/h")
    etag = client.http.get("/stac/collections/dataset/items/h").headers["ETag"]
    assert etag == created.headers["ETag"]
    stale = send(client, "patch", "/collections/dataset/items/h", {"properties": {"platform": "z"}},
                 **{"Content-Type": "application/merge-patch+json", "If-Match": '"not-it"'})
    assert stale.status_code == 412
    assert json.loads(stale.body)["code"] == "PreconditionFailed"
    patched = send(client, "patch", "/collections/dataset/items/h", {"properties": {"platform": "z"}},
                   **{"Content-Type": "application/merge-patch+json", "If-Match": etag})
    assert patched.status_code == 200
    assert json.loads(patched.body)["properties"]["platform"] == "z"
    assert send(client, "delete", "/collections/dataset/items/h", **{"If-Match": etag}).status_code == 412
    assert send(client, "delete", "/collections/dataset/items/h",
                **{"If-Match": patched.headers["ETag"]}).status_code == 204
    assert client.http.get("/stac/collections/dataset/items/h").status_code == 404


def test_bodies_are_bounded_and_errors_are_stac_json(client: Client, wired: ObjectStore) -> None:
    huge = owned("big", "public")
    huge["properties"]["padding"] = "x" * MAX_BODY_BYTES
    too_big = send(client, "post", "/collections/dataset/items", huge)
    assert too_big.status_code == 413
    assert set(json.loads(too_big.body)) == {"code", "description"}
    for body in ("{not json", json.dumps(owned("other", "public")), "[" * 100 + "]" * 100):
        answer = send(client, "put", "/collections/dataset/items/nope", body)
        assert answer.status_code in (400, 404)
        assert set(json.loads(answer.body)) == {"code", "description"}
    assert stored_keys(wired) == set()


def test_concurrent_patches_never_lose_an_update(local_store: ObjectStore) -> None:
    """Writer a reads the item, is held before its PUT while writer b patches: a's compare-and-swap
    fails (412) and b's change stands."""
    from tests.helpers.stores import InstrumentedStore
    from tests.helpers.threads import run_paused
    store = InstrumentedStore(local_store)
    tx, who = Transactions(store), writer("grp/open")
    tx.create("dataset", owned("r", "public"), who)
    held = store.pause("before", "PUT", lambda call: call.key == catalog.item_key("dataset", "r"), thread="a")
    _, a_error, _, b_error = run_paused(
        held, lambda: tx.patch("dataset", "r", {"properties": {"platform": "a"}}, who), "a",
        lambda: tx.patch("dataset", "r", {"properties": {"platform": "b"}}, who))
    assert b_error is None
    assert isinstance(a_error, PreconditionFailedError)
    assert store.get_json(catalog.item_key("dataset", "r"))["properties"]["platform"] == "b"
