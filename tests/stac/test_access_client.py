"""pystac-client with a GitLab token header against ``stacflow serve`` (auth on, fake GitLab), end to end."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError

from chalicelib.stac import catalog
from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore
from tests.helpers.access_world import VISIBILITIES, AccessWorld, build_world
from tests.helpers.fake_gitlab import FakeGitLab
from tests.helpers.servers import LiveServer
from tests.helpers.stac_items import make_item


def owned(world: AccessWorld, visibility: str, iid: str | None = None) -> dict[str, Any]:
    project = world.projects[visibility]
    iid = iid or f"{visibility}-scene"
    item = make_item(iid, "dataset", title=f"{visibility} scene", **{
        "stacflow:project": project.path_with_namespace, "stacflow:project_id": project.id,
        "stacflow:visibility": visibility})
    item["assets"]["data"]["href"] = f"../../../data/{iid}.tif"
    return item


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AccessWorld, LocalStore]]:
    root = tmp_path_factory.mktemp("client")
    store = LocalStore(root / "store", fsync=False)
    with FakeGitLab() as gl:
        world = build_world(gl)
        items = [owned(world, v) for v in VISIBILITIES]
        for item in items:
            store.put(f"data/{item['id']}.tif", f"pixels of {item['id']}".encode())
        source = root / "items.ndjson"
        source.write_text("\n".join(json.dumps(i) for i in items))
        assert publish_paths(store, [Path(source)], progress=False).published == 3
        server = LiveServer(store.uri, env={"STACFLOW_AUTH": "gitlab", "STACFLOW_GITLAB_URL": gl.url,
                                            "STACFLOW_GITLAB_TOKEN": gl.token, "STACFLOW_ANONYMOUS_READ": "false",
                                            "STACFLOW_SIGNING_KEY": "k" * 32})
        try:
            yield server.url + "/stac", world, store
        finally:
            server.stop()


def bearer(world: AccessWorld, caller: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[caller]}"}


@pytest.mark.parametrize("caller,visible", [("guest", {"public", "internal", "private"}),
                                            ("non-member", {"public", "internal"})])
def test_pystac_client_sees_what_the_token_may_read(served: Any, caller: str, visible: set[str]) -> None:
    url, world, _ = served
    client = Client.open(url, headers=bearer(world, caller))
    found = {item.id for item in client.search(collections=["dataset"], max_items=100).items()}
    assert found == {f"{v}-scene" for v in visible}
    assert client.search(collections=["dataset"]).matched() == len(visible)
    collection = client.get_collection("dataset")
    assert {item.id for item in collection.get_items()} == found


def test_a_private_asset_downloads_through_a_presigned_url(served: Any) -> None:
    url, world, _ = served
    client = Client.open(url, headers=bearer(world, "reporter"))
    item = client.get_collection("dataset").get_item("private-scene")
    assert item is not None
    href = item.assets["data"].href
    assert href == f"{url}/collections/dataset/items/private-scene/download?asset=data"
    redirect = requests.get(href, headers=bearer(world, "reporter"), allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    assert requests.get(redirect.headers["Location"], timeout=10).content == b"pixels of private-scene"
    refused = requests.get(href, headers=bearer(world, "non-member"), allow_redirects=False, timeout=10)
    assert refused.status_code == 404


def test_without_a_token_the_client_is_refused(served: Any) -> None:
    url, _, _ = served
    with pytest.raises(APIError) as refused:
        list(Client.open(url).search(collections=["dataset"], max_items=10).items())
    assert refused.value.status_code == 401


def test_a_developer_publishes_through_transactions_and_the_client_finds_it(served: Any) -> None:
    url, world, store = served
    item = owned(world, "private", "posted-scene")
    created = requests.post(f"{url}/collections/dataset/items", json=item, headers=bearer(world, "developer"),
                            timeout=10)
    assert created.status_code == 201
    assert store.exists(catalog.item_key("dataset", "posted-scene", private=True))
    found = Client.open(url, headers=bearer(world, "guest")).search(ids=["posted-scene"]).item_collection()
    assert [i.id for i in found] == ["posted-scene"]
    outsider = Client.open(url, headers=bearer(world, "non-member")).search(ids=["posted-scene"])
    assert outsider.matched() == 0
