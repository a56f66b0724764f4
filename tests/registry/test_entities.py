"""The registry returns its entities (with what MLflow reads along with them); their wire form is MLflow's."""
from __future__ import annotations

from google.protobuf.json_format import ParseDict
from mlflow.protos import model_registry_pb2

from chalicelib.mlflowapi.pages import Page
from chalicelib.registry import records as rec
from chalicelib.registry.lineage import ServiceTracking
from chalicelib.registry.records import ModelVersion, RegisteredModel
from chalicelib.registry.service import RegistryService
from chalicelib.store import ObjectStore
from chalicelib.tracking.entities import Experiment, LoggedModel, Run
from chalicelib.tracking.service import TrackingService


def test_models_are_read_with_their_latest_versions_and_aliases(store: ObjectStore) -> None:
    registry = RegistryService(store)
    registry.create_registered_model("m", [{"key": "k", "value": "v"}], "d")
    for _ in range(2):
        registry.create_model_version("m", "s3://b/k")
    registry.transition_model_version_stage("m", "1", "Production")
    registry.set_registered_model_alias("m", "champion", "1")
    model = registry.get_registered_model("m")
    assert isinstance(model, RegisteredModel)
    assert [(mv.current_stage, mv.version) for mv in model.latest_versions] == [("None", 2), ("Production", 1)]
    assert model.aliases == {"champion": 1}
    wire = model.to_wire()
    ParseDict(wire, model_registry_pb2.RegisteredModel())
    assert wire["aliases"] == [{"alias": "champion", "version": "1"}]
    assert wire["tags"] == [{"key": "k", "value": "v"}]
    assert [v["version"] for v in wire["latest_versions"]] == ["2", "1"]
    stored = store.get_json(rec.model_key(model.uid))  # what is read with a model is not stored with it
    assert "latest_versions" not in stored
    assert "aliases" not in stored
    page = registry.search_registered_models()
    assert isinstance(page, Page)
    assert page.items[0].to_wire() == wire
    version = registry.get_model_version("m", "1")
    assert isinstance(version, ModelVersion)
    assert version.aliases == ["champion"]
    ParseDict(version.to_wire(), model_registry_pb2.ModelVersion())
    assert "aliases" not in store.get_json(rec.version_key(model.uid, 1))


def test_the_tracking_port_gives_entities(store: ObjectStore) -> None:
    tracking = TrackingService(store)
    port = ServiceTracking(tracking)
    eid = tracking.create_experiment("e", None, [])
    run_id = tracking.create_run({"experiment_id": eid}).info.run_id
    model_id = tracking.create_logged_model({"experiment_id": eid}).model_id
    assert isinstance(port.get_run(run_id), Run)
    assert isinstance(port.get_experiment(eid), Experiment)
    assert isinstance(port.get_logged_model(model_id), LoggedModel)
    assert port.get_run("0" * 32) is None
    assert port.get_logged_model("m-" + "0" * 32) is None
