"""The datasets function: change records and DVC remote notifications, routed as deployed (S3, SQS, local)."""
from __future__ import annotations

import json
import pathlib
import re
from typing import Any, Iterator

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.datasets.gitlab import GitLabReader, ReadLimits
from chalicelib.datasets.publication import DatasetContext
from chalicelib.datasets.snapshot import BuildSettings
from chalicelib.events.datasets import CHANGE_KEY, REMOTE_OBJECT
from chalicelib.events.dispatch import handle_s3_event, handle_sqs_event, handler_for
from chalicelib.events.notifications import parse_s3_event
from chalicelib.settings import Settings
from chalicelib.store import EventSource, ObjectStore
from chalicelib.store.local import LocalStore
from tests.helpers.dvc_repos import REMOTE_URL, DictRemote, dvc_config, dvc_file, md5, push
from tests.helpers.fake_gitlab import FakeGitLab, init_repo, post_webhook, tag

SECRET = "s3cret-webhook-token"
DATA = b"tile bytes\n" * 100


def _record(bucket: str, key: str, size: int = 7, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T10:00:00.000Z", "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": size, "eTag": "0123456789abcdef0123456789abcdef",
                              "sequencer": "0055AED6DCD90281E5"}}}


@pytest.mark.parametrize("key, module", [
    ("datasets/changes/42/00000001714557600000000000-0123456789abcdef.json", "chalicelib.events.datasets"),
    ("s3://dvc-bucket/dvc/files/md5/ab/cdef0123456789abcdef0123456789", "chalicelib.events.datasets"),
    ("datasets/projects/42.json", None),
    ("datasets/objects/abcdef0123456789abcdef0123456789/0123.json", None),
    ("datasets/changes/x/1.json", None),
    ("collections/dataset/items/eo-tiles-v1.json", "chalicelib.events.catalog"),
])
def test_routes(key: str, module: str | None) -> None:
    handler = handler_for(key)
    assert (handler.__module__ if handler else None) == module
    assert bool(re.match(CHANGE_KEY, key) or re.match(REMOTE_OBJECT, key)) is (module == "chalicelib.events.datasets")


def test_remote_objects_are_recognised_in_any_bucket_the_stores_own_included() -> None:
    remotes = ("s3://dvc-bucket/dvc", "s3://store-bucket/dvc-cache")
    source = EventSource("store-bucket", "stacflow/")
    event = {"Records": [
        _record("dvc-bucket", "dvc/files/md5/ab/cdef0123456789abcdef0123456789", size=11),
        _record("dvc-bucket", "dvcx/files/md5/ab/cd"),  # a prefix that only starts alike
        _record("other-bucket", "dvc/files/md5/ab/cd"),
        _record("store-bucket", "dvc-cache/files/md5/12/34"),
        _record("store-bucket", "stacflow/collections/dataset/items/a.json"),
        _record("dvc-bucket", "dvc/files/md5/ab/cd", name="ObjectRemoved:Delete"),
    ]}
    del event["Records"][-1]["s3"]["object"]["size"]  # deletions carry no size
    events = parse_s3_event(event, source, remotes)
    assert [(e.key, e.created, e.size) for e in events] == [
        ("s3://dvc-bucket/dvc/files/md5/ab/cdef0123456789abcdef0123456789", True, 11),
        ("s3://store-bucket/dvc-cache/files/md5/12/34", True, 7),
        ("collections/dataset/items/a.json", True, 7),
        ("s3://dvc-bucket/dvc/files/md5/ab/cd", False, 0)]
    assert [e.key for e in parse_s3_event(event, source)] == ["collections/dataset/items/a.json"]


class World:
    """The service over a local store (in-process dispatch), a fake GitLab, a DVC remote in bucket ``dvc-remote``."""

    def __init__(self, tmp: pathlib.Path, gl: FakeGitLab, store: LocalStore, remote_store: ObjectStore) -> None:
        self.gl, self.store, self.remote_store = gl, store, remote_store
        self.repo = init_repo(tmp / "repo", {"README.md": "---\ntitle: Tiles\n---\n", ".dvc/config": dvc_config(
            REMOTE_URL), "tiles.bin.dvc": dvc_file("tiles.bin", DATA)})
        tag(self.repo, "v1")
        self.project = gl.add_project(self.repo, "eo/tiles", topics=["sharinghub:dataset"])
        settings = Settings(store_uri=store.uri, public_url=None, dispatch_events=True, webhook_secret=SECRET,
                            gitlab_url=gl.url, gitlab_token=gl.token, dvc_remotes=(REMOTE_URL,))
        ctx = DatasetContext(store=store, reader=GitLabReader(gl.url, gl.token, limits=ReadLimits(max_retries=1)),
                             remote=DictRemote({REMOTE_URL: remote_store}), build=BuildSettings())
        services.configure(store=store, settings=settings, dataset_context=ctx)

    def search(self) -> list[dict[str, Any]]:
        found = services.stac_api().search_post("http://testserver/stac", {"collections": ["dataset"], "limit": 100})
        return json.loads(found)["features"]  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: pathlib.Path, local_store: LocalStore) -> Iterator[World]:
    with FakeGitLab() as gl:
        yield World(tmp_path, gl, local_store, LocalStore(tmp_path / "remote", fsync=False))
    services.configure()


def test_webhook_to_search_then_the_push_lands(world: World) -> None:
    """A tag push webhook publishes the version with its asset pending; the remote's S3 notification
    (another bucket, through SQS) marks it available."""
    from app import app
    payload = world.gl.tag_push_payload(world.project.id, "v1")
    with Client(app) as client:
        resp = client.http.post("/webhooks/gitlab", body=json.dumps(payload),
                                headers={"Content-Type": "application/json", "X-Gitlab-Token": SECRET,
                                         "X-Gitlab-Event": "Tag Push Hook"})
    assert resp.status_code == 200
    [item] = world.search()
    assert item["properties"]["version"] == "v1"
    assert item["properties"]["stacflow:pending_assets"] == ["tiles.bin"]
    assert list(world.store.list("datasets/changes/")) == []

    digest = push(world.remote_store, DATA)
    key = f"project/files/md5/{digest[:2]}/{digest[2:]}"
    landed = {"Records": [_record("dvc-remote", key, size=len(DATA))]}
    sqs = {"Records": [{"eventSource": "aws:sqs", "messageId": "1", "body": json.dumps(landed)}]}
    assert handle_sqs_event(sqs, services.root()) == 1
    [item] = world.search()
    asset = item["assets"]["tiles.bin"]
    assert item["properties"]["stacflow:pending_assets"] == []
    assert asset["stacflow:available"] is True
    assert asset["href"] == f"{REMOTE_URL}/files/md5/{digest[:2]}/{digest[2:]}"
    assert digest == md5(DATA)
    assert asset["file:size"] == len(DATA)


def test_a_notification_of_an_object_with_the_wrong_size_leaves_it_pending(world: World) -> None:
    services.root().store().put_json("datasets/changes/%d/1-a.json" % world.project.id, {"kind": "push"})
    bad = DATA[:-1]
    digest = md5(DATA)
    world.remote_store.put(f"files/md5/{digest[:2]}/{digest[2:]}", bad)  # the right name, the wrong bytes
    event = {"Records": [_record("dvc-remote", f"project/files/md5/{digest[:2]}/{digest[2:]}", size=len(bad))]}
    handle_s3_event(event, services.root())
    [item] = world.search()
    assert item["properties"]["stacflow:pending_assets"] == ["tiles.bin"]


def test_the_webhook_over_real_http_answers_well_within_gitlabs_10_s(world: World, live_server_factory: Any) -> None:
    """``stacflow serve`` with its own settings: wrong secret 401, a real payload 200 and an item."""
    env = {"STACFLOW_WEBHOOK_SECRET": SECRET, "STACFLOW_GITLAB_URL": world.gl.url,
           "STACFLOW_GITLAB_TOKEN": world.gl.token}
    server = live_server_factory(world.store.uri, env)
    url = f"{server.url}/webhooks/gitlab"
    payload = world.gl.tag_push_payload(world.project.id, "v1")
    assert post_webhook(url, payload, token="nope")[0] == 401
    status, body = post_webhook(url, payload, token=SECRET, timeout=10)
    assert status == 200
    assert json.loads(body)["status"] == "recorded"
    assert [i.key.rsplit("/", 1)[1] for i in world.store.list("collections/dataset/items/")] != []


def test_a_gitlab_outage_during_local_processing_still_acknowledges_the_webhook(world: World) -> None:
    """The record is written (create-only, fresh key) before the in-process sync fails: 200, and the record
    stays for a later replay; nothing is published or removed on the strength of an outage."""
    from app import app
    world.gl.fail(f"/projects/{world.project.id}", 503, times=100)
    payload = world.gl.tag_push_payload(world.project.id, "v1")
    with Client(app) as client:
        resp = client.http.post("/webhooks/gitlab", body=json.dumps(payload),
                                headers={"Content-Type": "application/json", "X-Gitlab-Token": SECRET})
    assert resp.status_code == 200
    assert len(list(world.store.list("datasets/changes/"))) == 1
    assert world.search() == []


def test_the_per_trigger_entry_point_runs_only_the_datasets_function(world: World) -> None:
    from functions.datasets import handler
    key = f"datasets/changes/{world.project.id}/00000000000000000001-00.json"
    world.store.put_json(key, {"project_id": world.project.id, "kind": "push"}, notify=False)
    event = {"Records": [_record("local", key), _record("local", "collections/dataset/items/x.json")]}
    assert handler(event) == 1
    assert [i["properties"]["version"] for i in world.search()] == ["v1"]
