"""The proxied artifact service on both store adapters (local directory, S3 via moto server)."""
from __future__ import annotations

import hashlib

import pytest
import requests

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.mlflowapi.validation import artifact_path, path_from_segments
from chalicelib.store import CompletedPart
from chalicelib.tracking.artifacts import PROXY_LIMIT, ArtifactService, FileInfo

BINARY = bytes(range(256)) * 4
BASE = "http://testserver"


@pytest.fixture
def svc(store):  # type: ignore[no-untyped-def]
    return ArtifactService(store)


def test_upload_download_keeps_bytes_and_uses_the_artifacts_prefix(svc, store):
    svc.upload_artifact("0/run/artifacts/model/model.pkl", BINARY)
    assert store.get("mlflow-artifacts/0/run/artifacts/model/model.pkl").body == BINARY
    got = svc.download_artifact("0/run/artifacts/model/model.pkl", base_url=BASE)
    assert (got.body, got.url, got.size) == (BINARY, None, len(BINARY))


def test_list_shows_direct_children_only_with_sizes(svc):
    for path, body in [("0/r/a.txt", b"hello"), ("0/r/sub/b.bin", BINARY), ("0/r/sub/deeper/c", b"c"),
                       ("0/rr/other.txt", b"x")]:
        svc.upload_artifact(path, body)
    assert svc.list_artifacts("0/r") == [FileInfo("a.txt", False, 5), FileInfo("sub", True)]
    assert svc.list_artifacts("0/r/sub/") == [FileInfo("b.bin", False, len(BINARY)), FileInfo("deeper", True)]
    assert svc.list_artifacts("") == [FileInfo("0", True)]
    assert svc.list_artifacts("0/r/a.txt") == []  # a file lists as empty, as in MLflow's repositories
    assert svc.list_artifacts("0/missing") == []


def test_delete_removes_a_tree_but_not_its_prefix_siblings(svc, store):
    for path in ["0/r/m/a", "0/r/m/b/c", "0/r/m2/keep", "0/r/mfile"]:
        svc.upload_artifact(path, b"x")
    assert svc.delete_artifact("0/r/m") == 2
    assert sorted(i.key for i in store.list("mlflow-artifacts/")) == [
        "mlflow-artifacts/0/r/m2/keep", "mlflow-artifacts/0/r/mfile"]
    assert svc.delete_artifact("0/r/mfile") == 1
    assert svc.delete_artifact("0/r/nothing") == 0


def test_missing_artifact_is_resource_does_not_exist(svc):
    for call in (lambda: svc.download_artifact("0/nope", base_url=BASE),
                 lambda: svc.get_presigned_download_url("0/nope", base_url=BASE)):
        with pytest.raises(MlflowError) as err:
            call()
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert err.value.status == 404


def test_big_download_is_a_presigned_url_not_a_proxied_body(svc, store):
    big = b"z" * (PROXY_LIMIT + 1)
    svc.upload_artifact("0/r/big.bin", big)
    got = svc.download_artifact("0/r/big.bin", base_url=BASE)
    assert got.body is None
    assert got.size == len(big)
    presigned = svc.get_presigned_download_url("0/r/big.bin", base_url=BASE)
    assert presigned.file_size == len(big)
    for url in (got.url, presigned.url):
        assert url is not None
        if url.startswith(BASE):  # local store: a /files/{token} URL signed for that key
            token = url.rsplit("/", 1)[1]
            assert store.verify(token)["k"] == "mlflow-artifacts/0/r/big.bin"
        else:  # S3: a real presigned URL anyone can fetch
            assert requests.get(url, timeout=30).content == big


@pytest.mark.parametrize("bad", [
    "../x", "0/../../x", "0/./x", "0//x", "/etc/passwd", "0/a\\b", "..\\x", "0/x\x00", "0/a\nb",
    "0/%2e%2e/x", "0/%252e%252e/x", "%2Fetc/passwd", "C:/windows/x", "0/a#b", "..",
])
def test_bad_paths_are_invalid_and_write_nothing(svc, store, bad):
    for call in (lambda: svc.upload_artifact(bad, b"x"), lambda: svc.delete_artifact(bad),
                 lambda: svc.list_artifacts(bad), lambda: svc.download_artifact(bad, base_url=BASE),
                 lambda: svc.create_multipart_upload(bad, "f.bin", 1, base_url=BASE)):
        with pytest.raises(MlflowError) as err:
            call()
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert list(store.list("")) == []


@pytest.mark.parametrize("local_file", ["..", "/tmp/..", ".", "", "a\x00b", "C:\\x\\a#b"])
def test_bad_client_file_names_are_invalid(svc, local_file):
    with pytest.raises(MlflowError) as err:
        svc.create_multipart_upload("0", local_file, 1, base_url=BASE)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("segments", [["0", "%2e%2e", "x"], ["0", "a%2Fb"], ["0", "a%2fb"], ["%2E%2E"],
                                      ["0", "a%5Cb"], ["0", "%00"], ["0", "", "x"]])
def test_encoded_segments_cannot_traverse(segments):
    with pytest.raises(MlflowError):
        path_from_segments(segments)


def test_segments_are_decoded_once():
    assert path_from_segments(["0", "my%20file.txt"]) == "0/my file.txt"
    assert path_from_segments(["0", "a+b"]) == "0/a+b"  # a path, not a form: '+' stays
    assert path_from_segments([]) == ""
    assert artifact_path("0/dir/") == "0/dir"


def test_multipart_target_is_the_directory_plus_the_client_file_name(svc, store):
    windows = svc.create_multipart_upload("0/r", "C:\\Users\\me\\model.onnx", 1, base_url=BASE)
    posix = svc.create_multipart_upload("", "/home/me/model.onnx", 1, base_url=BASE)
    assert windows.upload_id
    assert posix.upload_id
    svc.abort_multipart_upload("0/r", "C:\\Users\\me\\model.onnx", windows.upload_id)
    svc.abort_multipart_upload("", "/home/me/model.onnx", posix.upload_id)
    assert list(store.list("")) == []


@pytest.mark.parametrize("num_parts", [0, -1, 10_001])
def test_multipart_part_count_is_bounded(svc, num_parts):
    with pytest.raises(MlflowError):
        svc.create_multipart_upload("0/r", "f.bin", num_parts, base_url=BASE)


def test_multipart_upload_through_presigned_part_urls(s3_store):
    """On S3 the parts go straight to storage; the local store's parts are covered over HTTP."""
    svc = ArtifactService(s3_store)
    parts = [b"a" * (5 * 1024 * 1024), b"tail"]
    mpu = svc.create_multipart_upload("0/r/model", "/tmp/weights.bin", len(parts))
    assert [c.part_number for c in mpu.credentials] == [1, 2]
    done = []
    for cred, body in zip(mpu.credentials, parts):
        resp = requests.put(cred.url, data=body, headers=cred.headers, timeout=30)
        resp.raise_for_status()
        done.append(CompletedPart(cred.part_number, resp.headers["ETag"]))
    svc.complete_multipart_upload("0/r/model", "/tmp/weights.bin", mpu.upload_id, done)
    got = s3_store.get("mlflow-artifacts/0/r/model/weights.bin").body
    assert hashlib.sha256(got).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_completing_with_parts_never_uploaded_is_an_mlflow_error(svc, store):
    mpu = svc.create_multipart_upload("0/r", "f.bin", 1, base_url=BASE)
    with pytest.raises(MlflowError) as err:
        svc.complete_multipart_upload("0/r", "f.bin", mpu.upload_id, [CompletedPart(1, '"0123"')])
    assert err.value.status in (400, 404)
    with pytest.raises(MlflowError):
        svc.complete_multipart_upload("0/r", "f.bin", mpu.upload_id, [])
    svc.abort_multipart_upload("0/r", "f.bin", mpu.upload_id)
    assert list(store.list("")) == []
