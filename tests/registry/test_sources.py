"""Which source URIs a version may have, and where their files are in the store."""
from __future__ import annotations

import pytest

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.registry.sources import artifact_prefix, check_source, within
from chalicelib.store import ObjectStore


@pytest.mark.parametrize("uri, prefix", [
    ("mlflow-artifacts:/1/abc/artifacts/model", "mlflow-artifacts/1/abc/artifacts/model"),
    ("mlflow-artifacts://host:5000/1/models/m-1/artifacts", "mlflow-artifacts/1/models/m-1/artifacts"),
    ("http://h/mlflow/api/2.0/mlflow-artifacts/artifacts/1/x/", "mlflow-artifacts/1/x"),
    ("s3://elsewhere/models/x", None),
])
def test_artifact_prefix(local_store: ObjectStore, uri: str, prefix: str | None) -> None:
    assert artifact_prefix(local_store, uri) == prefix


def test_sources_inside_the_store_but_on_its_records_are_never_read(local_store: ObjectStore) -> None:
    root = local_store.uri
    assert artifact_prefix(local_store, f"{root}/artifacts/1/model") == "artifacts/1/model"
    for reserved in ("mlflow/registry/versions", "collections/ai-model/items", "catalog.json", ""):
        assert artifact_prefix(local_store, f"{root}/{reserved}") is None


@pytest.mark.parametrize("source", ["", "file:///x", "/abs/path", "relative/path", "ftp://h/x", "s3://b/a/../b",
                                    "s3://b/a/%252e%252e/b", "http://h/other/path", "s3://b/a\x00b"])
def test_rejected_sources(source: str) -> None:
    with pytest.raises(MlflowError) as err:
        check_source(source)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_within() -> None:
    assert within("mlflow-artifacts:/1/r/artifacts/model", "mlflow-artifacts:/1/r/artifacts")
    assert not within("mlflow-artifacts:/1/r/artifactsX/model", "mlflow-artifacts:/1/r/artifacts")
    assert not within("s3://a/1/r/artifacts/model", "mlflow-artifacts:/1/r/artifacts")
