"""A run's artifacts and an sklearn model, logged and loaded back by the real MLflow client.

Three deployments: proxied ``mlflow-artifacts:`` over the local store and over S3 (the
Lambda setup), and direct S3 (``STACFLOW_ARTIFACT_ROOT=s3://…``; the client writes with
boto3 to ``MLFLOW_S3_ENDPOINT_URL`` and the service never sees the bytes).
"""
from __future__ import annotations

import pathlib

import pytest

from tests.helpers.servers import new_bucket


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["proxied-local", "proxied-s3", "direct-s3"])
def test_log_artifact_and_model_then_load_and_predict(mode, request, live_server_factory, tmp_path, monkeypatch):
    import boto3
    import mlflow
    import numpy as np
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    from sklearn.linear_model import LinearRegression

    server_env: dict[str, str] = {}
    if mode == "proxied-local":
        store_uri = f"file://{tmp_path}/store"
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = new_bucket(endpoint)
        store_uri = f"s3://{bucket}/store"
        if mode == "direct-s3":
            server_env["STACFLOW_ARTIFACT_ROOT"] = f"s3://{bucket}/mlflow-artifacts"
            monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    server = live_server_factory(store_uri, server_env)

    X = np.arange(40, dtype=float).reshape(20, 2)
    y = X @ np.array([1.5, -2.0]) + 3.0
    fitted = LinearRegression().fit(X, y)
    notes = tmp_path / "notes.txt"
    notes.write_bytes("résumé\n".encode())

    with _use_tracking_uri(server.url + "/mlflow"):
        mlflow.set_experiment(f"artifacts-{mode}")
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(notes), "docs")
            logged = mlflow.sklearn.log_model(fitted, name="model", input_example=X[:2])
        artifact_uri = run.info.artifact_uri
        downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="docs/notes.txt",
                                                         dst_path=str(tmp_path / "dl"))
        by_model = mlflow.pyfunc.load_model(logged.model_uri).predict(X)
        by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(X)

    assert pathlib.Path(downloaded).read_bytes() == notes.read_bytes()
    np.testing.assert_array_equal(by_model, fitted.predict(X))
    np.testing.assert_array_equal(by_run, fitted.predict(X))

    if mode == "direct-s3":
        assert artifact_uri.startswith(f"s3://{bucket}/mlflow-artifacts/")
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(
            Bucket=bucket, Prefix="mlflow-artifacts/")["Contents"]]
        assert any(k.endswith("/docs/notes.txt") for k in keys)
        assert any(k.endswith("/MLmodel") for k in keys)
    else:
        assert artifact_uri.startswith("mlflow-artifacts:/")

