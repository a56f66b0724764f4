"""Items built from a real git + DVC 3 repository pushed to an S3 remote (moto's server)."""
from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys
from typing import Any

import boto3
import pytest

from chalicelib.datasets import availability
from chalicelib.datasets.items import AVAILABLE, PENDING, build, build_items, item_id
from chalicelib.datasets.remotes import ConfiguredRemotes
from chalicelib.stac import mlm
from chalicelib.stac.items import normalize
from chalicelib.store import ObjectStore
from stac_offline import validate_object
from tests.helpers.paths import TOOLS
from tests.helpers.dvc_repos import DvcRepo

pytestmark = pytest.mark.slow  # each test drives the dvc CLI several times (~1 s per command)

README = """---
title: Alpine tiles
license: CC-BY-4.0
extent:
  spatial: [5.9, 45.8, 10.5, 47.8]
  temporal: [2021-03-01, 2021-09-30]
keywords: [alps]
eo:
  cloud_cover: 2
---
# Alpine tiles
"""
LABELS = b"tile,label\n1,forest\n2,lake\n"
IMAGES = {"images/a.tif": b"II*\x00fake tiff a", "images/b.tif": b"II*\x00fake tiff b",
          "images/sub/c.json": b'{"c": 1}'}


def s3_bytes(endpoint: str, href: str) -> bytes:
    bucket, key = href.removeprefix("s3://").split("/", 1)
    return bytes(boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def make_dataset(r: DvcRepo, readme: str = README) -> None:
    r.write("README.md", readme)
    r.write("data/labels.csv", LABELS)
    for path, data in IMAGES.items():
        r.write(f"data/{path}", data)
    r.dvc("add", "-q", "data/labels.csv", "data/images")


def validate_with_cli(tmp_path: pathlib.Path, item: dict[str, Any]) -> None:
    """The offline validator's own command line (`validate-stac`), as CI runs it."""
    path = tmp_path / f"{item['id']}.json"
    path.write_text(json.dumps(item))
    done = subprocess.run([sys.executable, str(TOOLS / "stac_offline.py"), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_item_of_a_pushed_repository(dvc_repo: DvcRepo, tmp_path: pathlib.Path) -> None:
    r = dvc_repo
    make_dataset(r)
    r.commit("v1", tag="v1")
    r.dvc("push", "-q")
    remote = ConfiguredRemotes([f"s3://{r.bucket}"])
    result = build(r.snapshot("v1"), remote)
    assert result.warnings == []
    [item] = result.items
    assert item["id"] == item_id("eo/sentinel-tiles", "v1", is_tag=True)
    assert item["collection"] == "dataset"
    expected = {"data/labels.csv": LABELS, **{f"data/{p}": d for p, d in IMAGES.items()}}
    assert sorted(item["assets"]) == sorted(expected)
    for path, data in expected.items():
        asset = item["assets"][path]
        digest = hashlib.md5((r.root / path).read_bytes()).hexdigest()
        assert asset["file:checksum"] == "d510" + digest
        assert asset["file:size"] == len(data)
        assert asset["href"] == f"{r.remote_url}/files/md5/{digest[:2]}/{digest[2:]}"
        assert s3_bytes(r.endpoint, asset["href"]) == data  # the href downloads the exact bytes
        assert asset[AVAILABLE] is True
        assert asset["roles"] == ["data"]
        assert asset["description"] == f"Get it with `dvc get https://gitlab.example/eo/sentinel-tiles.git {path} --rev v1`"
    assert item["assets"]["data/labels.csv"]["type"] == "text/csv"
    assert item["assets"]["data/images/a.tif"]["type"] == "image/tiff; application=geotiff"
    assert item["assets"]["data/images/sub/c.json"]["type"] == "application/json"
    assert item["properties"][PENDING] == []
    assert item["properties"]["eo:cloud_cover"] == 2
    assert item["properties"]["license"] == "CC-BY-4.0"
    # STAC Browser shows it among the item's links: the dataset's GitLab project
    assert {"rel": "via", "href": "https://gitlab.example/eo/sentinel-tiles", "type": "text/html",
            "title": "GitLab project eo/sentinel-tiles"} in item["links"]
    assert normalize(item, "dataset", item["id"])[0] == item
    assert validate_object(item, max_errors=20) == []
    validate_with_cli(tmp_path, item)
    # the "how to get it" command works: dvc get from the repository at the tag, through the S3 remote
    out = tmp_path / "got.csv"
    r.dvc("get", str(r.root), "data/images/sub/c.json", "--rev", "v1", "-o", str(out))
    assert out.read_bytes() == IMAGES["images/sub/c.json"]


def test_availability_follows_a_real_push(dvc_repo: DvcRepo, local_store: ObjectStore) -> None:
    r = dvc_repo
    make_dataset(r)
    r.commit("v1", tag="v1")
    remote = ConfiguredRemotes([f"s3://{r.bucket}"])
    result = build(r.snapshot("v1"), remote)
    [key] = availability.publish(local_store, remote, result)
    item = local_store.get_json(key)
    assert item["properties"][PENDING] == ["data/images", "data/labels.csv"]  # nothing pushed yet
    assert item["assets"]["data/images"]["roles"] == ["metadata"]
    r.dvc("push", "-q")
    s3 = boto3.client("s3", endpoint_url=r.endpoint)
    pushed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=r.bucket)["Contents"])
    assert len(pushed) == 5
    assert sum(k.endswith(".dir") for k in pushed) == 1
    # ObjectCreated events in the order dvc pushed them (the manifest last), each handled once
    for key_in_bucket in sorted(pushed, key=lambda k: k.endswith(".dir")):
        availability.on_object_created(local_store, remote, r.bucket, key_in_bucket)
    item = local_store.get_json(key)
    assert item["properties"][PENDING] == []
    fresh = build(r.snapshot("v1"), remote).items[0]
    assert item["assets"] == fresh["assets"]  # what the events made equals a build after the push
    assert validate_object(item, max_errors=20) == []


def test_two_tags_are_two_linked_versions(dvc_repo: DvcRepo, local_store: ObjectStore) -> None:
    r = dvc_repo
    make_dataset(r)
    r.commit("v1", tag="v1")
    r.write("data/labels.csv", LABELS + b"3,glacier\n")
    r.dvc("add", "-q", "data/labels.csv")
    r.commit("v2", tag="v2")
    r.dvc("push", "-q", "--all-tags")
    remote = ConfiguredRemotes([f"s3://{r.bucket}"])
    v1, v2 = (build_items(r.snapshot(t), remote)[0] for t in ("v1", "v2"))

    def links(item: dict[str, Any]) -> dict[str, str]:
        return {link["rel"]: link["href"] for link in item["links"] if link["rel"].endswith("-version")}
    assert links(v1) == {"successor-version": f"./{v2['id']}.json", "latest-version": f"./{v2['id']}.json"}
    assert links(v2) == {"predecessor-version": f"./{v1['id']}.json", "latest-version": f"./{v2['id']}.json"}
    assert (v1["properties"]["version"], v2["properties"]["version"]) == ("v1", "v2")
    assert v1["properties"]["deprecated"] is False
    c1, c2 = (i["assets"]["data/labels.csv"]["file:checksum"] for i in (v1, v2))
    assert c1 == "d510" + hashlib.md5(LABELS).hexdigest()
    assert c2 == "d510" + hashlib.md5(LABELS + b"3,glacier\n").hexdigest()
    assert v1["assets"]["data/images/a.tif"] == {**v2["assets"]["data/images/a.tif"], "description": v1["assets"][
        "data/images/a.tif"]["description"]}  # unchanged data: same object, its own --rev
    for item in (v1, v2):
        assert validate_object(item, max_errors=20) == []
        assert item["properties"][PENDING] == []
    # the default branch, ahead of v2, only once the README opts in
    r.write("README.md", README.replace("keywords: [alps]", "keywords: [alps]\nstacflow:\n  publish_default_branch: true"))
    r.commit("opt in")
    assert build_items(r.snapshot("v2", tags=("v1", "v2")), remote)[0]["id"] == v2["id"]
    dev = r.snapshot("main", is_tag=False)
    [item] = build_items(dev, remote)
    assert item["id"].endswith("~dev")
    assert item["properties"]["experimental"] is True
    assert links(item) == {"latest-version": f"./{v2['id']}.json"}
    assert validate_object(item, max_errors=20) == []


def test_a_model_project_is_published_with_mlm_fields(dvc_repo: DvcRepo) -> None:
    r = dvc_repo
    r.write("README.md", """---
title: Lake segmenter
mlm:
  architecture: U-Net
  tasks: [semantic-segmentation]
  framework: PyTorch
  input:
    - name: image
      bands: []
      input: {shape: [-1, 3, 256, 256], dim_order: [batch, channel, height, width], data_type: float32}
  output:
    - name: mask
      tasks: [semantic-segmentation]
      result: {shape: [-1, 1, 256, 256], dim_order: [batch, channel, height, width], data_type: uint8}
ml-model:
  learning_approach: supervised
---
""")
    r.write("model/weights.pt", b"not really torch")
    r.dvc("add", "-q", "model/weights.pt")
    r.commit("model", tag="1.0.0")
    r.dvc("push", "-q")
    remote = ConfiguredRemotes([f"s3://{r.bucket}"])
    result = build(r.snapshot("1.0.0", topics=("sharinghub:aimodel",), path="eo/lake-segmenter"), remote)
    [item] = result.items
    assert item["collection"] == "ai-model"
    assert result.warnings == []
    p = item["properties"]
    assert (p[mlm.NAME], p[mlm.ARCHITECTURE], p[mlm.TASKS]) == ("Lake segmenter", "U-Net", ["semantic-segmentation"])
    assert p[mlm.INPUT][0]["name"] == "image"
    assert p[mlm.OUTPUT][0]["name"] == "mask"
    assert p["ml-model:learning_approach"] == "supervised"
    asset = item["assets"]["model/weights.pt"]
    assert asset["roles"] == ["mlm:model", "data"]
    assert asset[mlm.ARTIFACT_TYPE] == "torch.save"
    assert mlm.SCHEMA_URI in item["stac_extensions"]
    assert validate_object(item, max_errors=20) == []
    assert normalize(item, "ai-model", item["id"])[0] == item
