"""A dataset's whole life, with the real tools: git, the dvc CLI, S3 (moto's server), python-gitlab against the
loopback GitLab, ``stacflow serve`` receiving the webhooks, ``stacflow replay-events`` feeding the remote's S3
notifications, pystac-client searching, validate-stac checking.

tag v1 (assets pending) -> dvc push (assets available, every href downloads the exact bytes, a fresh clone
can ``dvc pull``, the item's own ``dvc get`` command works) -> tag v2 (two linked versions, latest = v2) ->
delete the tag -> remove the topic -> delete the project.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any, Iterator

import pytest
from stac_offline import validate_object

from tests.helpers.paths import REPO, TOOLS
from tests.helpers.dvc_repos import DvcRepo, dvc_cli
from tests.helpers.fake_gitlab import ZERO_SHA, FakeGitLab, git, post_webhook

pytestmark = pytest.mark.slow

SECRET = "e2e-webhook-secret"
README = """---
title: Sentinel-2 tiles
description: Cloud-free Sentinel-2 tiles over the Alps
license: CC-BY-4.0
keywords: [sentinel-2, alps]
extent:
  spatial: [5.9, 45.8, 10.5, 47.8]
  temporal: ["2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]
providers:
  - name: ESA
    roles: [producer, licensor]
---
# Sentinel-2 tiles
"""


def _s3() -> Any:
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def _notifications(bucket: str, prefix: str) -> list[dict[str, Any]]:
    """The ObjectCreated notifications S3 sent for every object under ``prefix`` (real S3 event format)."""
    out = []
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out.append({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": obj["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"), "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpc"},
                "s3": {"s3SchemaVersion": "1.0", "configurationId": "dvc-remote",
                       "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                                  "arn": f"arn:aws:s3:::{bucket}"},
                       "object": {"key": obj["Key"], "size": obj["Size"], "eTag": obj["ETag"].strip('"'),
                                  "sequencer": "0055AED6DCD90281E5"}}}]})
    return out


def _replay(store_uri: str, events: list[dict[str, Any]], tmp: pathlib.Path, env: dict[str, str]) -> int:
    path = tmp / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    done = subprocess.run([sys.executable, "-m", "chalicelib.cli", "replay-events", "--store", store_uri, str(path)],
                          cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(json.loads(done.stdout.strip().splitlines()[-1])["routed"])


def _get(url: str) -> Any:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _download(href: str) -> bytes:
    bucket, key = href[len("s3://"):].split("/", 1)
    return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


class Stage:
    def __init__(self, repo: DvcRepo, gl: FakeGitLab, server: Any, store_root: pathlib.Path, env: dict[str, str],
                 tmp: pathlib.Path) -> None:
        self.repo, self.gl, self.server, self.store_root, self.env, self.tmp = repo, gl, server, store_root, env, tmp
        self.project = gl.add_project(repo.root, "eo/sentinel-tiles", topics=["sharinghub:dataset"],
                                      http_url_to_repo=str(repo.root))

    def hook(self, payload: dict[str, Any]) -> None:
        status, body = post_webhook(f"{self.server.url}/webhooks/gitlab", payload, token=SECRET, timeout=10)
        assert status == 200, body

    def items(self) -> dict[str, dict[str, Any]]:
        folder = self.store_root / "collections" / "dataset" / "items"
        found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")} if folder.exists() else {}
        return dict(sorted(found.items(), key=lambda kv: kv[1]["properties"]["version"]))

    def search(self) -> list[Any]:
        import pystac_client
        client = pystac_client.Client.open(f"{self.server.url}/stac")
        return list(client.search(collections=["dataset"], max_items=100).items())


@pytest.fixture
def stage(dvc_repo: DvcRepo, tmp_path: pathlib.Path, live_server_factory: Any) -> Iterator[Stage]:
    store_root = tmp_path / "store"
    with FakeGitLab() as gl:
        env = {"STACFLOW_WEBHOOK_SECRET": SECRET, "STACFLOW_GITLAB_URL": gl.url, "STACFLOW_GITLAB_TOKEN": gl.token,
               "STACFLOW_DVC_REMOTES": dvc_repo.remote_url, "STACFLOW_DVC_DIR_ASSETS": "10"}
        server = live_server_factory(f"file://{store_root}", env)
        yield Stage(dvc_repo, gl, server, store_root, env, tmp_path)


def _files(repo: DvcRepo, version: int) -> dict[str, bytes]:
    tiles = {f"data/tiles/t{i}.tif": hashlib.sha256(f"tile {i} v{version if i == 0 else 1}".encode()).digest() * 64
             for i in range(3)}
    return tiles | {"data/labels.csv": b"tile,label\n" + b"".join(f"t{i},{i % 2}\n".encode() for i in range(3))}


def test_a_dataset_from_tag_to_deletion(stage: Stage, tmp_path: pathlib.Path) -> None:
    repo, gl, pid = stage.repo, stage.gl, stage.project.id
    files = _files(repo, 1)
    repo.write("README.md", README)
    for path, data in files.items():
        repo.write(path, data)
    repo.dvc("add", "data/tiles", "data/labels.csv")
    repo.commit("Sentinel-2 tiles, first version", tag="v1")

    # 1. the tag's webhook: the version is published, its assets pending (nothing pushed yet)
    stage.hook(gl.tag_push_payload(pid, "v1"))
    [v1] = stage.items().values()
    props = v1["properties"]
    assert props["version"] == "v1"
    assert props["title"].startswith("Sentinel-2 tiles")
    assert v1["bbox"] == [5.9, 45.8, 10.5, 47.8]
    assert props["license"] == "CC-BY-4.0"
    assert sorted(props["stacflow:pending_assets"]) == ["data/labels.csv", "data/tiles"]
    assert all(a["stacflow:available"] is False for k, a in v1["assets"].items() if k.startswith("data/"))

    # 2. dvc push: the remote's S3 notifications (another bucket than the store) mark the assets available
    repo.dvc("push", "-q")
    routed = _replay(f"file://{stage.store_root}", _notifications(repo.bucket, "dvc/"), tmp_path, stage.env)
    assert routed == 5  # 3 tiles + labels + the directory's .dir manifest
    [v1] = stage.items().values()
    assert v1["properties"]["stacflow:pending_assets"] == []
    data_assets = {k: a for k, a in v1["assets"].items() if a.get("stacflow:available") is not None}
    assert sorted(data_assets) == sorted(files)  # the directory became one asset per file
    for path, asset in data_assets.items():
        assert asset["stacflow:available"] is True
        assert asset["file:size"] == len(files[path])
        assert asset["file:checksum"] == "d510" + hashlib.md5(files[path]).hexdigest()
        assert re.search(r"/files/md5/[0-9a-f]{2}/[0-9a-f]{30}$", asset["href"])
        assert _download(asset["href"]) == files[path]  # every href gives the exact bytes
    assert validate_object(v1) == []

    # the item's own "how to get it" works, and a fresh clone can dvc pull
    how = data_assets["data/labels.csv"]["description"]
    command = re.search(r"`(dvc get [^`]+)`", how)
    assert command, how
    out = tmp_path / "got.csv"
    args = command.group(1).split()[2:]
    repo.run(dvc_cli() or "dvc", "get", *args, "-o", str(out))
    assert out.read_bytes() == files["data/labels.csv"]
    clone = tmp_path / "clone"
    repo.run("git", "clone", "-q", str(repo.root), str(clone))
    fresh = DvcRepo.__new__(DvcRepo)
    fresh.root, fresh.env = clone, repo.env
    fresh.dvc("pull", "-q")
    for path, data in files.items():
        assert (clone / path).read_bytes() == data

    # 3. v2: one tile changes; two linked versions, latest = v2
    files2 = _files(repo, 2)
    for path, data in files2.items():
        repo.write(path, data)
    repo.dvc("add", "data/tiles", "data/labels.csv")
    repo.commit("a better tile", tag="v2")
    repo.dvc("push", "-q")
    _replay(f"file://{stage.store_root}", _notifications(repo.bucket, "dvc/"), tmp_path, stage.env)
    stage.hook(gl.tag_push_payload(pid, "v2"))
    v1, v2 = stage.items().values()
    assert (v1["properties"]["version"], v2["properties"]["version"]) == ("v1", "v2")
    assert v2["properties"]["stacflow:pending_assets"] == []  # pushed before the webhook: available at once
    assert v1["assets"]["data/tiles/t0.tif"]["href"] != v2["assets"]["data/tiles/t0.tif"]["href"]
    assert v1["assets"]["data/tiles/t1.tif"]["href"] == v2["assets"]["data/tiles/t1.tif"]["href"]
    assert _download(v2["assets"]["data/tiles/t0.tif"]["href"]) == files2["data/tiles/t0.tif"]

    def rel(item: dict[str, Any], name: str) -> list[str]:
        return [lk["href"] for lk in item["links"] if lk["rel"] == name]
    assert any(v2["id"] in h for h in rel(v1, "successor-version"))
    assert any(v1["id"] in h for h in rel(v2, "predecessor-version"))
    assert all(v2["id"] in h for h in rel(v1, "latest-version") + rel(v2, "latest-version"))
    assert all(validate_object(item) == [] for item in (v1, v2))
    found = stage.search()
    assert sorted(i.properties["version"] for i in found) == ["v1", "v2"]
    done = subprocess.run([sys.executable, str(TOOLS / "stac_offline.py"), "-q", str(stage.store_root / "collections" /
                                                                           "dataset" / "items")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # 4. deleting the tag removes its version; v1 is the latest again
    target = git(repo.root, "rev-parse", "v2").decode().strip()
    repo.git("tag", "-d", "v2")
    stage.hook(gl.tag_push_payload(pid, "v2", deleted=True, target=target))
    [v1] = stage.items().values()
    assert v1["properties"]["version"] == "v1"
    assert not rel(v1, "successor-version")
    assert [i.properties["version"] for i in stage.search()] == ["v1"]

    # 5. removing the topic unpublishes the project (GitLab sends project_update); restoring it republishes
    gl.set_topics(pid, ["earth-observation"])
    stage.hook(gl.system_payload("project_update", pid))
    assert stage.items() == {}
    assert stage.search() == []
    gl.set_topics(pid, ["sharinghub:dataset"])
    stage.hook(gl.push_payload(pid, before=ZERO_SHA, after=git(repo.root, "rev-parse", "HEAD").decode().strip()))
    assert [i["properties"]["version"] for i in stage.items().values()] == ["v1"]

    # 6. deleting the project removes everything it published
    gl.delete_project(pid)
    stage.hook(gl.system_payload("project_destroy", pid))
    assert stage.items() == {}
    assert stage.search() == []
