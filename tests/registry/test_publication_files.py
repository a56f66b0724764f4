"""Reading model files for publication: hashed as a stream, ONNX graphs parsed only below a size bound."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import services
from chalicelib.settings import Settings
from chalicelib.store.local import LocalStore
from tests.helpers.paths import REPO
from tests.helpers.registry_world import World

BIG = 200 * 1024 * 1024

# Peak RSS growth of hashing one model file as the registry function does, in a fresh process.
_MEASURE = """
import json, resource, sys
from chalicelib.registry.publication import Context, _file_facts
from chalicelib.store.local import LocalStore
store = LocalStore(sys.argv[1])
info = store.head(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
facts = _file_facts(Context(store=store, tracking=None), info)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_mb": grown / 1024, "checksum": facts.get("checksum"), "onnx": "onnx" in facts}))
"""


def _zeros_sha256(size: int) -> str:
    digest, chunk = hashlib.sha256(), bytes(1 << 20)
    for _ in range(size // len(chunk)):
        digest.update(chunk)
    return "1220" + digest.hexdigest()


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("name", ["model.pt", "model.onnx"])
def test_hashing_a_big_model_file_streams_it(tmp_path: Path, name: str) -> None:
    store = LocalStore(tmp_path / "store", fsync=False)
    key = f"mlflow-artifacts/1/r/artifacts/model/{name}"
    path = store.root / key
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        fh.truncate(BIG)  # sparse: no disk, no memory in this process
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(store.root), key], cwd=REPO, check=True,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    result = json.loads(out.stdout)
    assert result["grown_mb"] < 32, f"hashing {BIG >> 20} MB grew the peak RSS by {result['grown_mb']:.0f} MB"
    assert result["checksum"] == _zeros_sha256(BIG)
    assert result["onnx"] is False  # over the ONNX bound: hashed, never parsed


def test_onnx_graphs_are_parsed_only_below_the_bound(local_store: LocalStore, onnx_bytes: bytes) -> None:
    from chalicelib.registry.publication import read_file_facts
    local_store.put("m/model.onnx", onnx_bytes)
    expected = "1220" + hashlib.sha256(onnx_bytes).hexdigest()
    parsed = read_file_facts(local_store, "m/model.onnx", onnx_limit=len(onnx_bytes))
    assert parsed["checksum"] == expected
    assert parsed["onnx"]["inputs"][0]["shape"] == [-1, 4]
    skipped = read_file_facts(local_store, "m/model.onnx", onnx_limit=len(onnx_bytes) - 1)
    assert skipped["checksum"] == expected
    assert "onnx" not in skipped
    assert skipped["etag"] == local_store.head("m/model.onnx").etag
    assert skipped["size"] == len(onnx_bytes)


def test_an_onnx_file_over_the_bound_is_published_from_the_signature(world: World, onnx_bytes: bytes) -> None:
    spec = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, %d]}}]'
    mlmodel = (b"flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.23.2\n"
               + f"signature:\n  inputs: '{spec % 7}'\n  outputs: '{spec % 3}'\n".encode())
    world.store.put(f"{world.artifacts}/model/model.onnx", onnx_bytes)
    world.store.put(f"{world.artifacts}/model/MLmodel", mlmodel)
    world.registry.create_registered_model("big")
    world.registry.create_model_version("big", f"runs:/{world.run_id}/model")
    services.configure(settings=Settings(store_uri=world.store.uri, public_url=None, dispatch_events=False,
                                         onnx_inspect_limit=len(onnx_bytes) - 1))
    try:
        world.deliver()
    finally:
        services.configure()
    item = world.item("big", 1)
    assert item is not None
    assert item["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 7]  # the signature's, not the graph's
    asset = item["assets"]["model.onnx"]
    assert asset["file:checksum"] == "1220" + hashlib.sha256(onnx_bytes).hexdigest()
    assert asset["mlm:artifact_type"] == "onnx"


def test_an_oversized_mlmodel_is_not_parsed(world: World, onnx_bytes: bytes) -> None:
    from chalicelib.registry.publication import MLMODEL_LIMIT
    world.store.put(f"{world.artifacts}/model/model.onnx", onnx_bytes)
    world.store.put(f"{world.artifacts}/model/MLmodel", b"flavors: {}\n" + b"#" * MLMODEL_LIMIT)
    world.registry.create_registered_model("odd")
    world.registry.create_model_version("odd", f"runs:/{world.run_id}/model")
    world.deliver()
    item = world.item("odd", 1)
    assert item is not None
    assert item["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 4]
