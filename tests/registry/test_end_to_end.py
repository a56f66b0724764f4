"""The real mlflow client against ``stacflow serve``: register models, find them in the STAC API, run them.

scikit-learn -> skl2onnx -> ``mlflow.onnx.log_model``; PyTorch -> ``mlflow.pytorch.log_model`` with the
``torch.onnx.export`` of the same network as an extra file. Each version's item must validate, be
searchable (CQL2 by framework and task, free text), and its ONNX asset, downloaded through the
item's href, must give the same predictions as the trained model.
"""
from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pytest
from stac_offline import validate_object

from chalicelib.stac import mlm
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _download(href: str) -> bytes:
    # Accept as curl, wget and requests send it: API Gateway (and Chalice) serve binary bodies only then.
    with urllib.request.urlopen(urllib.request.Request(href, headers={"Accept": "*/*"}), timeout=30) as resp:
        return resp.read()  # type: ignore[no-any-return]


def _search_ids(url: str, body: dict[str, Any]) -> set[str]:
    found = _post(f"{url}/stac/search", {"collections": ["ai-model"], "limit": 100, **body})
    return {f["id"] for f in found["features"]}


@pytest.fixture
def server(live_server_factory: Any, tmp_path: pathlib.Path) -> Any:
    return live_server_factory(f"file://{tmp_path / 'store'}", {"STACFLOW_GITLAB_URL": "https://gitlab.example.org"})


def _use(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the mlflow client (process-wide state) at ``server`` (anything with a ``url``)."""
    import mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{server.url}/mlflow")
    mlflow.set_tracking_uri(f"{server.url}/mlflow")
    mlflow.set_registry_uri(f"{server.url}/mlflow")
    return mlflow.MlflowClient()


@contextmanager
def _using(server: Any) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _use(server, monkeypatch)


@pytest.fixture
def client(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return _use(server, monkeypatch)


def _check_io_matches_graph(item: dict[str, Any], onnx_bytes: bytes) -> None:
    sig = mlm.onnx_signature(onnx_bytes)
    props = item["properties"]
    assert [(i["name"], i["input"]["shape"], i["input"]["data_type"]) for i in props["mlm:input"]] == \
        [(i["name"], i["shape"], i["data_type"]) for i in sig["inputs"]]
    assert [(o["name"], o["result"]["shape"], o["result"]["data_type"]) for o in props["mlm:output"]] == \
        [(o["name"], o["shape"], o["data_type"]) for o in sig["outputs"]]


@dataclass(frozen=True)
class Iris:
    url: str  # the server's
    run_id: str
    X: Any
    y: Any
    clf: Any  # the trained scikit-learn model
    onnx: Any  # its ONNX conversion, logged as version 1 of "iris-onnx"


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iris]:
    """Version 1 of "iris-onnx", logged with ``mlflow.onnx.log_model`` by a run of the experiment of GitLab
    project eo/iris, trained on a catalogued dataset (a published item of the "dataset" collection)."""
    import mlflow
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    store = tmp_path_factory.mktemp("iris") / "store"
    server = LiveServer(f"file://{store}", {"STACFLOW_GITLAB_URL": "https://gitlab.example.org"})
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    onx = to_onnx(clf, X[:1], options={"zipmap": False})
    dataset_item = {"type": "Feature", "stac_version": "1.1.0", "id": "iris-train", "collection": "dataset",
                    "bbox": [2.0, 48.0, 3.0, 49.0], "links": [], "assets": {},
                    "geometry": {"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 49], [2, 48]]]},
                    "properties": {"datetime": "2024-06-01T00:00:00Z"}}
    items_dir = store / "collections" / "dataset" / "items"
    items_dir.mkdir(parents=True)
    (items_dir / "iris-train.json").write_text(json.dumps(dataset_item))
    with _using(server) as client:
        client.create_experiment("iris", tags={"project": "eo/iris"})
        mlflow.set_experiment("iris")
        with mlflow.start_run() as run:
            mlflow.log_input(mlflow.data.from_numpy(  # type: ignore[attr-defined]
                X, targets=y, name="iris-train", source=f"{server.url}/stac/collections/dataset/items/iris-train"),
                context="training")
            mlflow.log_params({"max_iter": 300, "solver": "lbfgs"})
            mlflow.log_metric("accuracy", float(clf.score(X, y)))
            info = mlflow.onnx.log_model(onx, name="model", registered_model_name="iris-onnx")
        assert int(info.registered_model_version) == 1
    yield Iris(server.url, run.info.run_id, X, y, clf, onx)
    server.stop()


def _iris_v1(iris: Iris) -> Any:
    return _get(f"{iris.url}/stac/collections/ai-model/items/iris-onnx-v1")


def test_a_registered_version_is_a_valid_item_with_its_mlm_facts(iris: Iris) -> None:
    item = _iris_v1(iris)
    assert validate_object(item) == []
    props = item["properties"]
    assert props["mlm:framework"] == "ONNX"
    assert props["mlm:architecture"] == "LogisticRegression"
    assert props["mlm:tasks"] == ["classification"]
    assert props["mlm:hyperparameters"]["max_iter"] == 300
    assert props["metric:accuracy"] == pytest.approx(iris.clf.score(iris.X, iris.y))
    assert props["mlflow:run_id"] == iris.run_id
    _check_io_matches_graph(item, iris.onnx.SerializeToString())


def test_the_item_links_its_training_dataset_project_and_run(iris: Iris) -> None:
    item = _iris_v1(iris)
    assert item["bbox"] == [2.0, 48.0, 3.0, 49.0]  # from the training dataset
    rels = {(link["rel"], link["href"]) for link in item["links"]}
    assert ("derived_from", f"{iris.url}/stac/collections/dataset/items/iris-train") in rels
    assert ("related", "https://gitlab.example.org/eo/iris") in rels
    assert ("mlflow-run", f"{iris.url}/mlflow/api/2.0/mlflow/runs/get?run_id={iris.run_id}") in rels
    assert _get(f"{iris.url}/mlflow/api/2.0/mlflow/runs/get?run_id={iris.run_id}")["run"]["info"][
        "run_id"] == iris.run_id


def test_the_onnx_asset_downloads_and_predicts_as_the_trained_model(iris: Iris) -> None:
    import onnxruntime as ort
    onnx_asset = _iris_v1(iris)["assets"]["model.onnx"]
    assert onnx_asset["mlm:artifact_type"] == "onnx"
    assert "mlm:model" in onnx_asset["roles"]
    body = _download(onnx_asset["href"])
    assert onnx_asset["file:checksum"] == "1220" + __import__("hashlib").sha256(body).hexdigest()
    session = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"X": iris.X})[0]
    assert (labels == iris.clf.predict(iris.X)).all()


def test_the_item_is_found_by_cql2_and_free_text(iris: Iris) -> None:
    assert "iris-onnx-v1" in _search_ids(iris.url, {
        "filter": {"op": "=", "args": [{"property": "mlm:framework"}, "ONNX"]}, "filter-lang": "cql2-json"})
    assert "iris-onnx-v1" in _search_ids(iris.url, {
        "filter": {"op": "a_contains", "args": [{"property": "mlm:tasks"}, ["classification"]]},
        "filter-lang": "cql2-json"})
    assert "iris-onnx-v1" in _search_ids(iris.url, {"q": "LogisticRegression"})
    assert _search_ids(iris.url, {"filter": {"op": "=", "args": [{"property": "mlm:framework"}, "PyTorch"]},
                                  "filter-lang": "cql2-json"}) == set()


def test_the_registry_loads_the_model_by_version_and_by_alias(iris: Iris, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    client = _use(iris, monkeypatch)
    loaded = mlflow.pyfunc.load_model("models:/iris-onnx/1")
    assert (np.asarray(loaded.predict(iris.X)["label"]) == iris.clf.predict(iris.X)).all()
    client.set_registered_model_alias("iris-onnx", "champion", "1")
    assert (np.asarray(mlflow.pyfunc.load_model("models:/iris-onnx@champion").predict(iris.X)["label"])
            == iris.clf.predict(iris.X)).all()
    assert _iris_v1(iris)["properties"]["mlflow:aliases"] == ["champion"]


def test_a_second_version_is_the_successor_and_the_latest(iris: Iris, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    _use(iris, monkeypatch)
    mlflow.set_experiment("iris")
    with mlflow.start_run():
        mlflow.onnx.log_model(iris.onnx, name="model", registered_model_name="iris-onnx")
    links = {link["rel"]: link["href"] for link in _iris_v1(iris)["links"]}
    assert links["successor-version"].endswith("/stac/collections/ai-model/items/iris-onnx-v2")
    assert _get(links["latest-version"])["id"] == "iris-onnx-v2"  # urllib follows the redirect


def test_pytorch_model_with_onnx_export(server: Any, client: Any, tmp_path: pathlib.Path) -> None:
    import mlflow
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = (X.sum(dim=1) > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    net.eval()
    onnx_path = tmp_path / "net.onnx"
    torch.onnx.export(net, (X[:1],), str(onnx_path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    client.create_registered_model("torch-net", tags={"mlm.tasks": "classification", "mlm.architecture": "MLP"})
    mlflow.set_experiment("torch")
    with mlflow.start_run():
        mlflow.log_params({"lr": 0.1, "epochs": 50})
        mlflow.pytorch.log_model(net, name="net", extra_files=[str(onnx_path)], registered_model_name="torch-net",
                                 input_example=X[:2].numpy())

    item = _get(f"{server.url}/stac/collections/ai-model/items/torch-net-v1")
    assert validate_object(item) == []
    props = item["properties"]
    assert (props["mlm:framework"], props["mlm:architecture"], props["mlm:tasks"]) == ("PyTorch", "MLP",
                                                                                       ["classification"])
    assert props["mlm:framework_version"].startswith(torch.__version__.split("+")[0])
    _check_io_matches_graph(item, onnx_path.read_bytes())
    types = {a["mlm:artifact_type"] for a in item["assets"].values() if "mlm:model" in a.get("roles", [])}
    assert types == {"onnx", "torch.export.save"}
    onnx_asset = next(a for a in item["assets"].values() if a.get("mlm:artifact_type") == "onnx")
    session = ort.InferenceSession(_download(onnx_asset["href"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = net(X).numpy()
    assert np.allclose(session.run(None, {"x": X.numpy()})[0], expected, atol=1e-5)
    assert "torch-net-v1" in _search_ids(server.url, {
        "filter": {"op": "=", "args": [{"property": "mlm:framework"}, "PyTorch"]}, "filter-lang": "cql2-json"})


def test_concurrent_registrations_and_bad_input(server: Any, client: Any, tmp_path: pathlib.Path) -> None:
    from mlflow.exceptions import MlflowException

    client.create_registered_model("busy")
    with ThreadPoolExecutor(max_workers=20) as pool:
        versions = list(pool.map(lambda _: client.create_model_version("busy", "s3://bucket/models/busy").version,
                                 range(20)))
    assert sorted(int(v) for v in versions) == list(range(1, 21))
    found = client.search_model_versions("name = 'busy'")
    assert sorted(int(mv.version) for mv in found) == list(range(1, 21))

    registry_dir = tmp_path / "store" / "mlflow" / "registry"
    before = sorted(str(p) for p in registry_dir.rglob("*"))
    cases = [
        (lambda: client.create_model_version("no-such-model", "s3://b/k"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.create_model_version("busy", "file:///etc/passwd"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.create_model_version("busy", "runs:/nosuchrun/model"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.create_model_version("busy", "s3://b/../../x"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.get_model_version_by_alias("busy", "nope"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.set_registered_model_alias("busy", "bad alias", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.set_registered_model_alias("busy", "prod", "99"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.get_registered_model("nope"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.create_registered_model("busy"), "RESOURCE_ALREADY_EXISTS"),
        (lambda: client.transition_model_version_stage("busy", "1", "Bogus"), "INVALID_PARAMETER_VALUE"),
    ]
    for call, code in cases:
        with pytest.raises(MlflowException) as err:
            call()
        assert err.value.error_code == code
    assert sorted(str(p) for p in registry_dir.rglob("*")) == before

    req = urllib.request.Request(f"{server.url}/mlflow/api/2.0/mlflow/model-versions/create", data=b"{not json",
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=10)
    assert http_err.value.code == 400
    assert json.loads(http_err.value.read())["error_code"] == "MALFORMED_REQUEST"


def test_same_path_on_s3(moto_endpoint: str, live_server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stacflow serve`` over S3 (moto): the registry writes, the function publishes, the href downloads."""
    import mlflow
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from tests.helpers.servers import new_bucket

    server = live_server_factory(f"s3://{new_bucket(moto_endpoint)}/stacflow", {"STACFLOW_DISPATCH_EVENTS": "1"})
    _use(server, monkeypatch)
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    tree = DecisionTreeClassifier(max_depth=3).fit(X, y)
    onx = to_onnx(tree, X[:1], options={"zipmap": False})
    mlflow.set_experiment("trees")  # also drops the client's cached experiment id of another server
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name="tree-s3")
    item = _get(f"{server.url}/stac/collections/ai-model/items/tree-s3-v1")
    assert validate_object(item) == []
    assert item["properties"]["mlm:architecture"] == "DecisionTreeClassifier"
    session = ort.InferenceSession(_download(item["assets"]["model.onnx"]["href"]), providers=["CPUExecutionProvider"])
    assert (session.run(["label"], {"X": X})[0] == tree.predict(X)).all()
