"""The unmodified mlflow client against ``stacflow serve`` over HTTP, on the local store and on S3."""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from tests.helpers.servers import LiveServer, new_bucket

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["local", "s3", "s3-direct"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server per store, shared by the module's tests (each in experiments of its own);
    "s3-direct": artifacts go straight to S3 (STACFLOW_ARTIFACT_ROOT), not proxied."""
    env = {}
    if request.param.startswith("s3"):
        bucket = new_bucket(request.getfixturevalue("moto_endpoint"))
        uri = f"s3://{bucket}/pre"
        if request.param == "s3-direct":
            env["STACFLOW_ARTIFACT_ROOT"] = f"s3://{bucket}/mlflow-artifacts"
    else:
        uri = f"file://{tmp_path_factory.mktemp('mlflow')}/store"
    server = LiveServer(uri, env)
    yield server
    server.stop()


@contextmanager
def _tracking(server: LiveServer) -> Iterator[Any]:
    """The mlflow client (process-wide state) pointed at ``server``."""
    import mlflow
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", server.url + "/mlflow")
        mlflow.set_tracking_uri(server.url + "/mlflow")
        try:
            yield mlflow.MlflowClient()
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture
def client(server: LiveServer) -> Iterator[Any]:
    with _tracking(server) as tracking:
        yield tracking


@dataclass(frozen=True)
class Logged:
    exp_id: str  # "exp-a", tagged team=eo
    run_id: str  # "first": params, a loss history, metrics, tags, a dataset input; "second" has a lower loss


@pytest.fixture(scope="module")
def logged(server: LiveServer) -> Logged:
    import mlflow
    import pandas as pd

    with _tracking(server) as client:
        exp_id = mlflow.set_experiment("exp-a").experiment_id
        client.set_experiment_tag(exp_id, "team", "eo")
        with mlflow.start_run(run_name="first") as run:
            mlflow.log_params({"lr": 0.1, "depth": 3})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": 0.91, "nan": math.nan})
            mlflow.set_tags({"stage": "dev", "gone": "x"})
            client.delete_tag(run.info.run_id, "gone")
            frame = pd.DataFrame({"band1": [0.1, 0.2], "label": [0, 1]})
            mlflow.log_input(mlflow.data.from_pandas(frame, name="s2-tiles"), context="training")
        with mlflow.start_run(run_name="second"):
            mlflow.log_param("lr", 0.01)
            mlflow.log_metric("loss", 0.05)
    return Logged(exp_id, run.info.run_id)


def test_experiments_are_found_by_id_name_and_tag(client, logged):
    import mlflow
    assert client.get_experiment("0").name == "Default"
    assert client.get_experiment_by_name("nope") is None
    assert mlflow.set_experiment("exp-a").experiment_id == logged.exp_id  # found by name
    exps = client.search_experiments(filter_string="tags.team = 'eo'")
    assert [e.experiment_id for e in exps] == [logged.exp_id]


def test_a_run_holds_what_was_logged(client, logged):
    got = client.get_run(logged.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "first"
    assert got.data.params == {"lr": "0.1", "depth": "3"}
    assert got.data.metrics["loss"] == 0.2
    assert math.isnan(got.data.metrics["nan"])
    assert got.data.tags["stage"] == "dev"
    assert "gone" not in got.data.tags
    (dataset_input,) = got.inputs.dataset_inputs
    assert dataset_input.dataset.name == "s2-tiles"
    assert [(t.key, t.value) for t in dataset_input.tags] == [("mlflow.data.context", "training")]
    history = client.get_metric_history(logged.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]


def test_artifact_locations_nest_runs_under_their_experiment(client, logged):
    root = client.get_experiment(logged.exp_id).artifact_location
    assert root.endswith(f"/{logged.exp_id}")
    assert root.startswith(("mlflow-artifacts:/", "s3://"))
    assert client.get_run(logged.run_id).info.artifact_uri == f"{root}/{logged.run_id}/artifacts"


def test_runs_are_searched_by_filter_order_dataset_and_page(client, logged):
    import mlflow
    exp_id = logged.exp_id
    found = mlflow.search_runs([exp_id], filter_string="params.lr = '0.1' and metrics.loss < 0.5",
                               output_format="list")
    assert [r.info.run_id for r in found] == [logged.run_id]
    ordered = client.search_runs([exp_id], order_by=["metrics.loss ASC"])
    assert [r.info.run_name for r in ordered] == ["second", "first"]
    by_dataset = client.search_runs([exp_id], "dataset.name = 's2-tiles' and dataset.context = 'training'")
    assert [r.info.run_id for r in by_dataset] == [logged.run_id]
    page = client.search_runs([exp_id], max_results=1)
    assert len(page) == 1
    assert page.token
    assert len(client.search_runs([exp_id], max_results=1, page_token=page.token)) == 1


def test_a_deleted_run_is_hidden_until_restored(client):
    from mlflow.entities import ViewType
    exp_id = client.create_experiment("runs-deleted")
    run_id = client.create_run(exp_id).info.run_id
    client.create_run(exp_id)  # another run, left alone
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert len(client.search_runs([exp_id])) == 1
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 2
    client.restore_run(run_id)
    assert len(client.search_runs([exp_id])) == 2


def test_an_experiment_is_renamed_deleted_and_restored(client):
    exp_id = client.create_experiment("exp-old")
    client.create_run(exp_id)
    client.rename_experiment(exp_id, "exp-new")
    assert client.get_experiment_by_name("exp-old") is None
    assert client.get_experiment_by_name("exp-new").experiment_id == exp_id
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert exp_id not in [e.experiment_id for e in client.search_experiments()]
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_sklearn_autolog_and_logged_model_roundtrip(client):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment("sk")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    mlflow.sklearn.autolog(log_models=False, log_datasets=True)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = client.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5"
    assert 0.5 <= got.data.metrics["training_accuracy_score"] <= 1.0
    assert got.data.tags["estimator_name"] == "LogisticRegression"

    with mlflow.start_run() as run2:
        model = LogisticRegression(max_iter=200).fit(X, y)
        info = mlflow.sklearn.log_model(model, name="clf", input_example=X[:2])
    logged = client.get_logged_model(info.model_id)
    root = client.get_experiment(run2.info.experiment_id).artifact_location
    assert logged.artifact_location == f"{root}/models/{info.model_id}/artifacts"
    assert logged.status.to_proto() == 2  # LOGGED_MODEL_READY
    assert logged.source_run_id == run2.info.run_id
    assert [o.model_id for o in client.get_run(run2.info.run_id).outputs.model_outputs] == [info.model_id]
    with mlflow.start_run(run_id=run2.info.run_id):
        mlflow.log_metric("holdout_acc", 0.75, step=1, model_id=info.model_id)
    (metric,) = client.get_logged_model(info.model_id).metrics
    assert (metric.key, metric.value, metric.step, metric.run_id) == ("holdout_acc", 0.75, 1, run2.info.run_id)
    loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert (loaded.predict(X) == model.predict(X)).all()
    assert [m.model_id for m in mlflow.search_logged_models(experiment_ids=[run2.info.experiment_id],
                                                             output_format="list")] == [info.model_id]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_servers_twenty_threads_one_run(kind, live_server_factory, tmp_path, request):  # type: ignore[no-untyped-def]
    """Two service processes on one store stand for two Lambda instances: no metric lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    if kind == "s3":
        uri = f"s3://{new_bucket(request.getfixturevalue('moto_endpoint'))}/pre"
    else:
        uri = f"file://{tmp_path}/store"
    servers = [live_server_factory(uri), live_server_factory(uri)]
    clients = [MlflowClient(s.url + "/mlflow") for s in servers]
    run_id = clients[0].create_run("0").info.run_id

    def log(i: int) -> None:
        clients[i % 2].log_batch(run_id, metrics=[Metric("loss", i * 100 + s, 1000 + s, s) for s in range(10)],
                                 params=[Param(f"p{i}", str(i))])

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(log, range(20)))
    for client in clients:
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.value for m in history) == sorted(float(i * 100 + s) for i in range(20) for s in range(10))
        assert len(client.get_run(run_id).data.params) == 20
        (found,) = client.search_runs(["0"], "metrics.loss >= 1909")
        assert found.data.metrics["loss"] == 1909.0
