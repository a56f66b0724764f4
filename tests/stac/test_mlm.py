"""MLM fields from real ONNX graphs and MLflow signatures, and model items validated offline (MLM 1.5 schema)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from stac_offline import validate_object

from chalicelib.stac import mlm
from chalicelib.stac.model_items import Dataset, ModelFacts, ModelFile, Urls, build_item, item_id, model_slug


@pytest.fixture(scope="module")
def sklearn_onnx() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestRegressor
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    return to_onnx(RandomForestRegressor(n_estimators=3, max_depth=2).fit(X, y), X[:1]).SerializeToString()


@pytest.fixture(scope="module")
def torch_onnx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return path.read_bytes()


def test_onnx_signature_of_sklearn_graph(sklearn_onnx: bytes) -> None:
    sig = mlm.onnx_signature(sklearn_onnx)
    assert sig["inputs"] == [{"name": "X", "shape": [-1, 4], "data_type": "float32"}]
    assert sig["outputs"] == [{"name": "variable", "shape": [-1, 1], "data_type": "float32"}]
    assert mlm.architecture_from_graph(sig["graph_name"]) == "RandomForestRegressor"
    assert mlm.infer_tasks("RandomForestRegressor", []) == ["regression"]


def test_onnx_signature_of_torch_export(torch_onnx: bytes) -> None:
    sig = mlm.onnx_signature(torch_onnx)
    assert sig["inputs"] == [{"name": "image", "shape": [-1, 3, 32, 32], "data_type": "float32"}]
    assert sig["outputs"] == [{"name": "logits", "shape": [-1, 2], "data_type": "float32"}]
    assert sig["total_parameters"] == 3 * 4 * 3 * 3 + 4 + 4 * 2 + 2
    assert mlm.architecture_from_graph(sig["graph_name"]) is None  # "main_graph" says nothing


@pytest.mark.parametrize("text, expected", [
    ("iris", "iris"), ("my model/v2", "my model-v2"), ("1st-model", "st-model"), ("m1", "model-m1"),
    ("__", "model"), ("modèle", "mod-le"),
])
def test_model_name_satisfies_the_schema_pattern(text: str, expected: str) -> None:
    assert mlm.model_name(text) == expected


def test_signature_io_tensor_and_columns() -> None:
    tensor = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
    assert mlm.signature_io(tensor, "input") == [{"name": "input", "shape": [-1, 4], "data_type": "float32"}]
    cols = [{"type": "double", "name": "a"}, {"type": "double", "name": "b"}]
    assert mlm.signature_io(cols, "input") == [{"name": "input", "shape": [-1, 2], "data_type": "float64",
                                                "description": "columns: a, b"}]
    assert mlm.signature_io("not json", "input") == []
    assert mlm.signature_io("[" * 5000 + "]" * 5000, "input") == []  # was a RecursionError


def test_item_ids_are_safe_and_distinct() -> None:
    assert item_id("iris", 3) == "iris-v3"
    assert model_slug("a b") != model_slug("a-b")
    assert model_slug("a b").startswith("a-b-")


def _facts(**overrides: Any) -> ModelFacts:
    base = dict(name="crop model", version=2, created_ms=1_700_000_000_000, updated_ms=1_700_000_100_000,
                files=[ModelFile("model.onnx", "http://h/f/model.onnx", 10, "1220" + "ab" * 32, "onnx"),
                       ModelFile("MLmodel", "http://h/f/MLmodel", 5)],
                onnx={"inputs": [{"name": "x", "shape": [-1, 3, 64, 64], "data_type": "float32"}],
                      "outputs": [{"name": "y", "shape": [-1, 5], "data_type": "float32"}],
                      "graph_name": "main_graph", "total_parameters": 42},
                mlmodel={"flavors": {"pytorch": {"pytorch_version": "2.13.0"}}},
                params={"lr": "0.01", "epochs": "3", "bad key!": "x"}, metrics={"val_loss": 0.5},
                neighbours={"predecessor": "crop-model-x-v1", "successor": None})
    base.update(overrides)
    return ModelFacts(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def crop_item() -> dict[str, Any]:
    """The item of version 2 of "crop model": ONNX facts, a PyTorch MLmodel, tags, params and a metric."""
    return build_item(_facts(tags={"mlm.tasks": "segmentation, bogus", "mlm.architecture": "UNet",
                                   "mlm.pretrained": "false"}), Urls("http://svc"))


def test_item_from_onnx_facts_validates(crop_item: dict[str, Any]) -> None:
    assert validate_object(crop_item) == []


def test_mlm_tags_fill_their_fields_and_unknown_tasks_are_dropped(crop_item: dict[str, Any]) -> None:
    props = crop_item["properties"]
    assert props["mlm:tasks"] == ["segmentation"]
    assert props["mlm:architecture"] == "UNet"
    assert props["mlm:pretrained"] is False
    assert props["mlm:pretrained_source"] is None


def test_framework_comes_from_the_mlmodel_flavor(crop_item: dict[str, Any]) -> None:
    props = crop_item["properties"]
    assert props["mlm:framework"] == "PyTorch"
    assert props["mlm:framework_version"] == "2.13.0"


def test_inputs_and_hyperparameters_are_typed(crop_item: dict[str, Any]) -> None:
    props = crop_item["properties"]
    assert props["mlm:input"][0]["input"]["dim_order"] == ["batch", "channel", "height", "width"]
    assert props["mlm:hyperparameters"] == {"lr": 0.01, "epochs": 3}  # a param whose key is not a name is left out


def test_metric_version_and_datetime_properties_without_a_place(crop_item: dict[str, Any]) -> None:
    props = crop_item["properties"]
    assert props["metric:val_loss"] == 0.5
    assert props["version"] == "2"
    assert props["deprecated"] is False
    assert crop_item["geometry"] is None
    assert props["datetime"] == "2023-11-14T22:13:20.000000Z"


def test_version_links_point_at_neighbours_and_the_latest(crop_item: dict[str, Any]) -> None:
    rels = {link["rel"]: link["href"] for link in crop_item["links"]}
    assert rels["predecessor-version"] == "http://svc/stac/collections/ai-model/items/crop-model-x-v1"
    assert "successor-version" not in rels
    assert rels["latest-version"] == "http://svc/mlflow/registry/latest-item?name=crop%20model"


def test_only_the_model_file_is_an_mlm_model_asset(crop_item: dict[str, Any]) -> None:
    assert crop_item["assets"]["model.onnx"]["roles"] == ["mlm:model", "data"]
    assert "mlm:artifact_type" not in crop_item["assets"]["mlmodel"]


def test_item_from_signature_with_place_and_datasets_validates() -> None:
    facts = _facts(onnx=None, files=[ModelFile("data/model.pt2", "http://h/m.pt2", 10, None, "torch.export.save")],
                   mlmodel={"flavors": {"pytorch": {"pytorch_version": "2.13.0"}},
                            "signature": {"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", '
                                                    '"shape": [-1, 4]}}]',
                                          "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", '
                                                     '"shape": [-1]}}]'}},
                   datasets=[Dataset("http://svc/stac/collections/dataset/items/s2", "s2", [0, 40, 10, 50],
                                     "2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z"),
                             Dataset("http://svc/stac/collections/dataset/items/l8", "l8", [5, 45, 20, 55])],
                   deprecated=True)
    item = build_item(facts, Urls(None))
    assert validate_object(item) == []
    assert item["bbox"] == [0, 40, 20, 55]
    assert item["geometry"]["type"] == "Polygon"
    props = item["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == ("2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z")
    assert props["mlm:output"][0]["result"] == {"shape": [-1], "dim_order": ["batch"], "data_type": "int64"}
    assert props["deprecated"] is True
    derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert derived == ["http://svc/stac/collections/dataset/items/s2", "http://svc/stac/collections/dataset/items/l8"]
    pred = [link["href"] for link in item["links"] if link["rel"] == "predecessor-version"]
    assert pred == ["./crop-model-x-v1.json"]  # no public base known: relative to the static catalog


def test_tag_bbox_and_datetime_win() -> None:
    item = build_item(_facts(tags={"stac.bbox": "1,2,3,4", "stac.datetime": "2021-05-01T00:00:00Z"}), Urls(None))
    assert validate_object(item) == []
    assert item["bbox"] == [1, 2, 3, 4]
    assert item["properties"]["datetime"] == "2021-05-01T00:00:00Z"


def test_tags_nested_thousands_deep_do_not_block_publication() -> None:
    """Tag values are user input (up to 8,000 characters): a RecursionError here failed the event."""
    deep = "[" * 4000 + "]" * 4000
    item = build_item(_facts(tags={"stac.bbox": deep, "stac.geometry": '{"type": "Point", "coordinates": ' + deep + "}"}),
                      Urls(None))
    assert item["geometry"] is None
    assert "bbox" not in item


@pytest.mark.parametrize("project, key", [("42", "stacflow:project_id"), ("team/crops", "stacflow:project")])
def test_a_model_item_names_its_owning_project(project: str, key: str) -> None:
    """The registered model's ``stacflow.project`` tag reaches the item, for the STAC access checks."""
    props = build_item(_facts(project=project), Urls("http://svc"))["properties"]
    assert props[key] == project
    assert "stacflow:project" not in build_item(_facts(), Urls("http://svc"))["properties"]
