"""Registry records -> STAC items, through the real event router, on both store adapters."""
from __future__ import annotations

import dataclasses
import random

from stac_offline import validate_object

from chalicelib import services
from chalicelib.registry.publication import latest_published
from tests.helpers.registry_world import World


def test_pending_until_model_files_land(world: World, onnx_bytes: bytes) -> None:
    world.registry.create_registered_model("iris")
    world.registry.create_model_version("iris", f"runs:/{world.run_id}/model")
    world.deliver()
    assert world.item("iris", 1) is None  # pending: no files yet
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.deliver()
    item = world.item("iris", 1)
    assert item is not None
    assert validate_object(item) == []
    assert item["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 4]
    assert item["assets"]["model.onnx"]["href"].startswith("http://svc/mlflow/api/2.0/mlflow-artifacts/artifacts/")


def test_versions_link_to_neighbours_and_deletion_relinks(world: World, onnx_bytes: bytes) -> None:
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("m")
    for _ in range(3):
        world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.deliver()
    assert world.links("m", 1)["successor-version"] == "m-v2"
    assert world.links("m", 2)["predecessor-version"] == "m-v1"
    assert world.links("m", 2)["successor-version"] == "m-v3"
    assert "successor-version" not in world.links("m", 3)
    assert latest_published(world.store, "m") == "m-v3"
    world.registry.delete_model_version("m", "2")
    world.deliver()
    assert world.item("m", 2) is None
    assert world.links("m", 1)["successor-version"] == "m-v3"
    assert world.links("m", 3)["predecessor-version"] == "m-v1"


def test_aliases_stages_and_kept_deleted_versions(world: World, onnx_bytes: bytes) -> None:
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("m")
    for _ in range(2):
        world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.registry.set_registered_model_alias("m", "champion", "1")
    world.deliver()
    assert world.item("m", 1)["properties"]["mlflow:aliases"] == ["champion"]  # type: ignore[index]
    world.registry.set_registered_model_alias("m", "champion", "2")
    world.registry.transition_model_version_stage("m", "1", "Archived")
    world.deliver()
    one, two = world.item("m", 1), world.item("m", 2)
    assert one["properties"]["mlflow:aliases"] == []  # type: ignore[index]
    assert one["properties"]["deprecated"] is True  # type: ignore[index]
    assert two["properties"]["mlflow:aliases"] == ["champion"]  # type: ignore[index]
    world.registry.set_model_version_tag("m", "2", "stac.keep_deleted", "true")
    world.registry.delete_model_version("m", "2")
    world.deliver()
    kept = world.item("m", 2)
    assert kept is not None
    assert kept["properties"]["deprecated"] is True
    assert validate_object(kept) == []


def test_replayed_and_out_of_order_events_converge(world: World, onnx_bytes: bytes) -> None:
    reg = world.registry
    reg.create_registered_model("m", [{"key": "mlm.tasks", "value": "classification"}])
    for _ in range(4):
        reg.create_model_version("m", f"runs:/{world.run_id}/model")
    reg.set_registered_model_alias("m", "prod", "3")
    reg.delete_model_version("m", "2")
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)  # files land after registration
    reg.update_model_version("m", "4", "the best one")
    recorded = list(world.changes)
    shuffled = recorded * 2
    random.Random(5).shuffle(shuffled)
    world.deliver(shuffled)
    after_shuffle = {n: world.item("m", n) for n in range(1, 5)}
    world.deliver(recorded)  # then in order: nothing may change
    assert {n: world.item("m", n) for n in range(1, 5)} == after_shuffle
    assert after_shuffle[2] is None
    assert all(after_shuffle[n] for n in (1, 3, 4))
    assert after_shuffle[4]["properties"]["description"] == "the best one"  # type: ignore[index]
    assert after_shuffle[3]["properties"]["mlflow:aliases"] == ["prod"]  # type: ignore[index]
    assert world.links("m", 1)["successor-version"] == "m-v3"


def test_deleting_the_model_unpublishes_its_items(world: World, onnx_bytes: bytes) -> None:
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("gone")
    world.registry.create_model_version("gone", f"runs:/{world.run_id}/model")
    world.deliver()
    assert world.item("gone", 1) is not None
    world.registry.delete_registered_model("gone")
    world.deliver()
    assert world.item("gone", 1) is None
    assert [i.key for i in world.store.list("mlflow/registry/") if "gone" in i.key] == []  # nothing left behind


def test_lineage_datasets_project_and_run_fields(world: World, onnx_bytes: bytes) -> None:
    services.configure(settings=dataclasses.replace(services.settings(), gitlab_url="https://gitlab.example.org"))
    dataset_item = {"type": "Feature", "stac_version": "1.1.0", "id": "s2-tiles", "collection": "dataset",
                    "geometry": {"type": "Polygon", "coordinates": [[[5, 45], [6, 45], [6, 46], [5, 46], [5, 45]]]},
                    "bbox": [5, 45, 6, 46], "links": [], "assets": {},
                    "properties": {"datetime": None, "start_datetime": "2020-01-01T00:00:00Z",
                                   "end_datetime": "2020-06-30T00:00:00Z"}}
    world.store.put_json("collections/dataset/items/s2-tiles.json", dataset_item)
    estimator = {"key": "estimator_class", "value": "sklearn.ensemble.RandomForestClassifier"}  # as autolog sets it
    world.tracking.log_batch(world.run_id, [{"key": "f1", "value": 0.8, "timestamp": 1, "step": 0}],
                             [{"key": "n_estimators", "value": "10"}], [estimator])
    world.tracking.log_inputs(world.run_id, [{"dataset": {"name": "s2-tiles", "digest": "abc", "source_type": "http",
                                                          "source": '{"url": "http://x/y"}'}, "tags": []}], [])
    world.registry.create_registered_model("lin", [{"key": "project", "value": "eo/crops"}])
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_model_version("lin", f"runs:/{world.run_id}/model")
    world.deliver()
    item = world.item("lin", 1)
    assert item is not None
    assert validate_object(item) == []
    props = item["properties"]
    assert props["mlm:architecture"] == "RandomForestClassifier"
    assert props["mlm:tasks"] == ["classification"]
    assert props["mlm:hyperparameters"] == {"n_estimators": 10}
    assert props["metric:f1"] == 0.8
    assert item["bbox"] == [5, 45, 6, 46]
    assert props["start_datetime"] == "2020-01-01T00:00:00Z"
    rels = [(link["rel"], link["href"]) for link in item["links"]]
    assert ("derived_from", "http://svc/stac/collections/dataset/items/s2-tiles") in rels
    assert ("related", "https://gitlab.example.org/eo/crops") in rels
    assert any(rel == "mlflow-run" and world.run_id in href for rel, href in rels)


def test_files_uploaded_after_registration_complete_the_item(world: World) -> None:
    spec = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, %d]}}]'
    signature = f"signature:\n  inputs: '{spec % 4}'\n  outputs: '{spec % 2}'\n".encode()
    world.registry.create_registered_model("late", [{"key": "mlm.tasks", "value": "regression"}])
    world.registry.create_model_version("late", f"runs:/{world.run_id}/net")
    world.store.put(f"{world.artifacts}/net/MLmodel",
                    b"flavors:\n  pytorch:\n    pytorch_version: 2.13.0\n    model_data: data\n" + signature)
    world.deliver()
    first = world.item("late", 1)
    assert first is not None
    assert validate_object(first) == []  # MLM from the MLflow signature
    assert first["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 4]
    assert first["assets"]["mlmodel"]["mlm:artifact_type"] == "mlflow.pyfunc"  # no weights yet: the MLflow model
    world.store.put(f"{world.artifacts}/net/data/model.pt2", b"weights")
    world.deliver()
    second = world.item("late", 1)
    assert second is not None
    assert validate_object(second) == []
    assert second["assets"]["data-model.pt2"]["mlm:artifact_type"] == "torch.export.save"
    assert second["properties"]["mlm:framework"] == "PyTorch"
    assert "mlm:artifact_type" not in second["assets"]["mlmodel"]


def test_concurrent_rebuilds_end_on_the_latest_records(world: World, onnx_bytes: bytes) -> None:
    """Each update's event handled by some worker, all at once: the last write reflects the last update."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.registry.lineage import ServiceTracking as Tracking
    from chalicelib.registry.publication import Context, publish_version
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("race")
    world.registry.create_model_version("race", f"runs:/{world.run_id}/model")
    ctx = Context(world.store, Tracking(world.tracking), public_url="http://svc")
    uid = world.registry.get_registered_model("race").uid
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = []
        for i in range(12):
            world.registry.update_model_version("race", "1", f"description {i}")
            futures += [pool.submit(publish_version, ctx, uid, 1) for _ in range(3)]
        for future in futures:
            future.result()
    assert world.item("race", 1)["properties"]["description"] == "description 11"  # type: ignore[index]


def test_user_input_nested_thousands_deep_does_not_fail_publication(world: World) -> None:
    """A dataset source or an MLmodel nested thousands deep raised RecursionError in the event function."""
    deep_source = '{"a":' * 5000 + '"x"' + "}" * 5000
    world.tracking.log_inputs(world.run_id, [{"dataset": {"name": "d", "digest": "abc", "source_type": "http",
                                                          "source": deep_source}, "tags": []}], [])
    world.registry.create_registered_model("deep")
    world.registry.create_model_version("deep", f"runs:/{world.run_id}/m")
    world.store.put(f"{world.artifacts}/m/MLmodel", b"flavors: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    world.deliver()
    item = world.item("deep", 1)
    assert item is not None
    assert validate_object(item) == []
