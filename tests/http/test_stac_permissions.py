"""The STAC rows of the permission matrix, every cell asserted, and the leak tests.

Callers {anonymous, non-member, guest, reporter, developer, maintainer} x projects {public, internal,
private} x {STAC read, STAC transactions, static catalog content}, with anonymous read on and off,
over the routes (chalice's test client) against the loopback fake GitLab.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from chalicelib.auth.access import Action
from chalicelib.auth.gitlab import GitLabApi
from chalicelib.auth.service import AccessService
from chalicelib.settings import Settings
from chalicelib.stac import catalog
from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore
from tests.helpers.access_world import CALLERS, VISIBILITIES, AccessWorld, allowed, build_world, refusal
from tests.helpers.fake_gitlab import FakeGitLab
from tests.helpers.private_items import linked
from tests.helpers.stac_items import make_item

ORIGIN = "http://127.0.0.1:8000"
R, W, D = Action.READ, Action.WRITE, Action.DELETE
MODES = {"anon-read-on": True, "anon-read-off": False}
OPS = ("put", "patch", "delete")
CELLS = [(caller, visibility) for caller in CALLERS for visibility in VISIBILITIES]  # x MODES (the fixture's)


def secret_title(visibility: str) -> str:
    return f"title-of-{visibility}-secret"


def item_of(world: AccessWorld, iid: str, visibility: str) -> dict[str, Any]:
    project = world.projects[visibility]
    item = make_item(iid, "dataset", title=secret_title(visibility), **{
        "stacflow:project": project.path_with_namespace, "stacflow:project_id": project.id,
        "stacflow:visibility": visibility})
    item["assets"]["data"]["href"] = f"../../../data/{iid}.tif"
    return item


def read_id(visibility: str) -> str:
    return f"read-{visibility}"


def op_id(op: str, caller: str, visibility: str) -> str:
    return f"{op}-{caller}-{visibility}"


@dataclass
class Served:
    client: Client
    world: AccessWorld
    store: LocalStore
    anonymous_read: bool

    def headers(self, caller: str, **extra: str) -> dict[str, str]:
        token = self.world.tokens[caller]
        return {**({"Authorization": f"Bearer {token}"} if token else {}), **extra}

    def get(self, caller: str, path: str) -> Any:
        return self.client.http.get("/stac" + path, headers=self.headers(caller))

    def send(self, caller: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = json.dumps(body) if body is not None else None
        hdrs = self.headers(caller, **{**({"Content-Type": "application/json"} if data else {}), **headers})
        return getattr(self.client.http, method)("/stac" + path, headers=hdrs, body=data)


@pytest.fixture(scope="module")
def world() -> Iterator[AccessWorld]:
    with FakeGitLab() as gl:
        yield build_world(gl)


@pytest.fixture(scope="module", params=sorted(MODES))
def served(request: pytest.FixtureRequest, world: AccessWorld,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service with auth on, over a store holding, per project, one item to read and one per
    (op, caller) to change."""
    anonymous_read = MODES[request.param]
    root = tmp_path_factory.mktemp("matrix")
    store = LocalStore(root / "store", fsync=False)
    items = [item_of(world, read_id(v), v) for v in VISIBILITIES]
    items += [item_of(world, op_id(op, c, v), v) for op in OPS for c in CALLERS for v in VISIBILITIES]
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    assert publish_paths(store, [Path(source)], progress=False).published == len(items)
    cfg = Settings(store_uri=store.uri, public_url=ORIGIN, dispatch_events=True, auth="gitlab", anonymous_read=anonymous_read,
                   gitlab_url=world.gl.url, gitlab_token=world.gl.token, signing_key="s" * 32)
    services.configure(store=store, settings=cfg, access=AccessService(
        GitLabApi(world.gl.url, 2.0), anonymous_read=anonymous_read, service_token=world.gl.token))
    with Client(app) as client:
        yield Served(client, world, store, anonymous_read)
    services.configure()


def may(served: Served, caller: str, visibility: str, action: Action) -> bool:
    return allowed(caller, visibility, action, served.anonymous_read)


def hidden_status(served: Served, caller: str) -> int:
    """What a caller gets for an item they may not read: 401 when they must sign in to read anything."""
    return 401 if caller == "anonymous" and not served.anonymous_read else 404


# -- STAC read -------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller,visibility", CELLS)
def test_stac_read(served: Served, caller: str, visibility: str) -> None:
    iid = read_id(visibility)
    readable = may(served, caller, visibility, R)
    got = served.get(caller, f"/collections/dataset/items/{iid}")
    searched = served.get(caller, f"/search?ids={iid}")
    listed = served.get(caller, f"/collections/dataset/items?ids={iid}")
    posted = served.send(caller, "post", "/search", {"ids": [iid]})
    download = served.get(caller, f"/collections/dataset/items/{iid}/download?asset=data")
    if readable:
        assert got.status_code == 200
        assert json.loads(got.body)["id"] == iid
        for page in (searched, listed, posted):
            assert page.status_code == 200
            assert [f["id"] for f in json.loads(page.body)["features"]] == [iid]
        assert download.status_code == 302
        assert "/files/" in download.headers["Location"]
        return
    expected = hidden_status(served, caller)
    assert got.status_code == expected
    assert download.status_code == expected
    for page in (searched, listed, posted):
        if expected == 401:
            assert page.status_code == 401
            assert page.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert page.status_code == 200
            assert json.loads(page.body)["features"] == []
            assert json.loads(page.body)["numberMatched"] == 0


# -- STAC transactions ---------------------------------------------------------------------------------
def expected_write(served: Served, caller: str, visibility: str, action: Action, ok: int) -> int:
    if may(served, caller, visibility, action):
        return ok
    if not may(served, caller, visibility, R):
        return hidden_status(served, caller)  # the item is absent for this caller
    return refusal(caller)


@pytest.mark.parametrize("caller,visibility", CELLS)
def test_stac_transactions(served: Served, caller: str, visibility: str) -> None:
    world = served.world
    new = item_of(world, f"new-{caller}-{visibility}", visibility)
    created = served.send(caller, "post", "/collections/dataset/items", new)
    if may(served, caller, visibility, W):
        assert created.status_code == 201
        assert served.store.exists(catalog.stored_item_key(new))
    else:
        assert created.status_code == refusal(caller)
        assert not served.store.exists(catalog.stored_item_key(new))

    put_id, patch_id, delete_id = (op_id(op, caller, visibility) for op in OPS)
    body = item_of(world, put_id, visibility)
    body["properties"]["platform"] = "changed"
    put = served.send(caller, "put", f"/collections/dataset/items/{put_id}", body)
    assert put.status_code == expected_write(served, caller, visibility, W, 200)
    patch = served.send(caller, "patch", f"/collections/dataset/items/{patch_id}",
                        {"properties": {"platform": "patched"}}, **{"Content-Type": "application/merge-patch+json"})
    assert patch.status_code == expected_write(served, caller, visibility, W, 200)
    deleted = served.send(caller, "delete", f"/collections/dataset/items/{delete_id}")
    assert deleted.status_code == expected_write(served, caller, visibility, D, 204)

    for iid, changed in ((put_id, put.status_code == 200), (patch_id, patch.status_code == 200)):
        stored = served.store.get_json(catalog.stored_item_key(item_of(world, iid, visibility)))
        assert (stored["properties"].get("platform") in ("changed", "patched")) is changed
    assert served.store.exists(catalog.stored_item_key(item_of(world, delete_id, visibility))) is (
        deleted.status_code != 204)
    for refused in (r for r in (created, put, patch, deleted) if r.status_code >= 400):
        error = json.loads(refused.body)
        assert set(error) == {"code", "description"}


# -- static catalog content --------------------------------------------------------------------------
@pytest.mark.parametrize("caller,visibility", CELLS)
def test_static_catalog_content(served: Served, caller: str, visibility: str) -> None:
    """The bucket's static catalog is what anyone the bucket policy lets in reads, with or without a
    token: public projects' items only, whoever asks."""
    iid = read_id(visibility)
    public = visibility == "public"
    assert (iid in linked(served.store)) is public
    assert served.store.exists(catalog.item_key("dataset", iid)) is public
    assert served.store.exists(catalog.item_key("dataset", iid, private=True)) is not public
    static = "".join(served.store.get(i.key).body.decode() for i in served.store.list("collections/"))
    assert (secret_title(visibility) in static) is public


# -- leaks --------------------------------------------------------------------------------------------
def secrets_of(served: Served, readable_by: str) -> list[str]:
    """Ids and titles of the items ``readable_by`` may not read."""
    out = []
    for v in VISIBILITIES:
        if not may(served, readable_by, v, R):
            out += [read_id(v), secret_title(v)] + [op_id(op, c, v) for op in OPS for c in CALLERS]
    return out


@pytest.mark.parametrize("caller", ["anonymous", "non-member"])
def test_nothing_reveals_a_private_item(served: Served, caller: str) -> None:
    if caller == "anonymous" and not served.anonymous_read:
        pytest.skip("anonymous callers read nothing at all")
    secrets = secrets_of(served, caller)
    assert secrets
    answers = [served.get(caller, path) for path in (
        "/search?limit=1000", "/collections/dataset/items?limit=1000", "/collections", "/collections/dataset",
        "/queryables", "/collections/dataset/queryables", "/search?q=secret", "/search?ids=read-private",
        "/collections/dataset/items/read-private", "/collections/dataset/items/read-private/download?asset=data",
        "/search?filter=" + quote("title LIKE 'title-of-private%'"))]
    answers.append(served.send(caller, "post", "/search", {"limit": 1000, "ids": ["read-private", "read-internal"]}))
    answers.append(served.send(caller, "post", "/collections/dataset/items", item_of(served.world, "read-private",
                                                                                      "private")))
    answers.append(served.send(caller, "delete", "/collections/dataset/items/read-private"))
    pages = [json.loads(served.get(caller, "/search?limit=2").body)]
    for _ in range(100):  # every page and every token along the way
        nxt = [link for link in pages[-1]["links"] if link["rel"] == "next"]
        if not nxt:
            break
        pages.append(json.loads(served.get(caller, nxt[0]["href"].split("/stac", 1)[1]).body))
    tokens = [parse_qs(urlsplit(link["href"]).query)["token"][0] for page in pages for link in page["links"]
              if link["rel"] in ("next", "prev")]
    text = "\n".join(a.body.decode() if isinstance(a.body, bytes) else str(a.body) for a in answers)
    text += "\n".join(json.dumps(p) for p in pages)
    text += "\n".join(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)).decode() for t in tokens)
    leaked = [s for s in secrets if s in text and s != "read-private"]  # the caller named read-private
    assert leaked == []
    everything = json.loads(answers[0].body)
    assert everything["numberMatched"] == len(everything["features"])
    assert {f["properties"]["stacflow:visibility"] for f in everything["features"]} == {
        v for v in VISIBILITIES if may(served, caller, v, R)}
