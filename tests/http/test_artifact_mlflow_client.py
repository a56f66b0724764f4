"""The real MLflow client's ``mlflow-artifacts:`` repository against ``stacflow serve``, local store and S3."""
from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Any

import pytest

from tests.helpers.servers import new_bucket

MB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def served(request: pytest.FixtureRequest, live_server_factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A live server over each store, and the tracking URI the client uses to reach it."""
    if request.param == "s3":
        uri = f"s3://{new_bucket(request.getfixturevalue('moto_endpoint'))}/pre"
    else:
        uri = f"file://{tmp_path}/store"
    server = live_server_factory(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url + "/mlflow")
    for var in ("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    return server


def _repo(uri: str) -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    return get_artifact_repository(uri)


def _dir(path: pathlib.Path) -> str:
    path.mkdir()
    return str(path)


def _digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_log_list_download_delete(served, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "notes.txt").write_text("héllo\n", encoding="latin-1")  # not UTF-8: bytes must survive
    (src / "sub" / "model.pkl").write_bytes(bytes(range(256)) * 64)
    (src / "sub" / "deep" / "weights.onnx").write_bytes(os.urandom(50_000))
    (src / "sub" / "deep" / "empty").write_bytes(b"")
    repo = _repo("mlflow-artifacts:/0/run1/artifacts")
    repo.log_artifacts(str(src))
    repo.log_artifact(str(src / "notes.txt"), "extra/dir")

    assert [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts()] == [
        ("extra", True, None), ("notes.txt", False, 6), ("sub", True, None)]
    assert [f.path for f in repo.list_artifacts("sub")] == ["sub/deep", "sub/model.pkl"]
    assert [f.path for f in repo.list_artifacts("sub/deep")] == ["sub/deep/empty", "sub/deep/weights.onnx"]

    out = pathlib.Path(repo.download_artifacts("", _dir(tmp_path / "out")))
    for rel in ["notes.txt", "sub/model.pkl", "sub/deep/weights.onnx", "sub/deep/empty"]:
        assert _digest(out / rel) == _digest(src / rel), rel
    assert (out / "extra" / "dir" / "notes.txt").read_bytes() == (src / "notes.txt").read_bytes()

    repo.delete_artifacts("sub")
    assert [f.path for f in repo.list_artifacts()] == ["extra", "notes.txt"]


@pytest.mark.slow
def test_big_file_goes_through_presigned_multipart_both_ways(served, tmp_path, monkeypatch):
    """7 MB is over Lambda's 6 MB payload: parts go to presigned URLs, downloads are ranged GETs."""
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1 * MB))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * MB))
    monkeypatch.setenv("MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE", str(3 * MB))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(7 * MB + 123))
    repo = _repo("mlflow-artifacts:/0/run2/artifacts")
    # The client learns from /server-info that multipart is on.
    assert repo._is_multipart_upload_enabled()
    assert repo._is_multipart_download_enabled()
    create = repo.create_multipart_upload(str(big), 2, "m")
    assert len(create.credentials) == 2
    repo.abort_multipart_upload(str(big), create.upload_id, "m")

    multipart_calls = []
    try_multipart = repo._try_multipart_upload


    def observed(*args: Any, **kwargs: Any) -> None:
        try_multipart(*args, **kwargs)  # a 501 "not supported" raises here and falls back to a PUT
        multipart_calls.append(args)

    monkeypatch.setattr(repo, "_try_multipart_upload", observed)
    repo.log_artifact(str(big), "m")
    assert len(multipart_calls) == 1
    assert [(f.path, f.file_size) for f in repo.list_artifacts("m")] == [("m/big.bin", big.stat().st_size)]
    fetched = pathlib.Path(repo.download_artifacts("m/big.bin", _dir(tmp_path / "presigned")))
    assert _digest(fetched) == _digest(big)

    # A client that does not use presigned downloads is redirected instead of proxied.
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    plain = _repo("mlflow-artifacts:/0/run2/artifacts")
    redirected = pathlib.Path(plain.download_artifacts("m/big.bin", _dir(tmp_path / "redirected")))
    assert _digest(redirected) == _digest(big)
