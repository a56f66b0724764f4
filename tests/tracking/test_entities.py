"""The tracking service returns MLflow's entities; their wire form (``to_wire``) is MLflow's proto JSON."""
from __future__ import annotations

import math

from google.protobuf.json_format import ParseDict
from mlflow.protos import service_pb2

from chalicelib.mlflowapi.pages import Page
from chalicelib.store import ObjectStore
from chalicelib.tracking.entities import Experiment, LoggedModel, Metric, Run, RunInfo
from chalicelib.tracking.service import TrackingService


def test_runs_are_entities_and_their_wire_form_is_mlflows(local_store: ObjectStore) -> None:
    svc = TrackingService(local_store)
    eid = svc.create_experiment("e", None, [])
    created = svc.create_run({"experiment_id": eid, "start_time": 5, "user_id": "u", "run_name": "r"})
    assert isinstance(created, Run)
    run_id = created.info.run_id
    svc.log_batch(run_id, [{"key": "m", "value": math.nan, "timestamp": 1, "step": 2}], [{"key": "p", "value": "1"}],
                  [{"key": "t", "value": "x"}])
    svc.log_inputs(run_id, [{"dataset": {"name": "d", "digest": "x", "source_type": "s", "source": "{}"}}], [])
    run = svc.get_run(run_id)
    assert isinstance(run, Run)
    assert isinstance(run.info, RunInfo)
    assert (run.params, run.tags["t"], run.info.user_id) == ({"p": "1"}, "x", "u")
    wire = run.to_wire()
    ParseDict(wire, service_pb2.Run())  # MLflow's own message accepts it
    assert wire["info"] == {"run_id": run_id, "run_uuid": run_id, "run_name": "r", "experiment_id": eid,
                            "user_id": "u", "status": "RUNNING", "start_time": 5,
                            "artifact_uri": f"mlflow-artifacts:/{eid}/{run_id}/artifacts", "lifecycle_stage": "active"}
    assert wire["data"]["metrics"] == [{"key": "m", "value": "NaN", "timestamp": 1, "step": 2}]  # proto JSON's NaN
    assert wire["inputs"]["dataset_inputs"] == [{"tags": [], "dataset": {"name": "d", "digest": "x",
                                                                         "source_type": "s", "source": "{}"}}]
    info = svc.update_run_info(run_id, "FINISHED", 9, None)
    assert isinstance(info, RunInfo)
    assert info.to_wire()["status"] == "FINISHED"
    assert info.end_time == 9


def test_a_run_read_stays_as_it_was_read(local_store: ObjectStore) -> None:
    """Entities copy the log's shared fold: a later write does not change a run already returned."""
    svc = TrackingService(local_store)
    run_id = svc.create_run({"experiment_id": "0"}).info.run_id
    before = svc.get_run(run_id)
    svc.log_batch(run_id, [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}], [{"key": "p", "value": "1"}], [])
    after = svc.get_run(run_id)
    assert (after.params, [m.key for m in after.metrics]) == ({"p": "1"}, ["m"])
    assert (before.params, before.metrics) == ({}, [])


def test_experiments_logged_models_and_pages_are_entities(local_store: ObjectStore) -> None:
    svc = TrackingService(local_store)
    eid = svc.create_experiment("e", None, [{"key": "k", "value": "v"}])
    experiment = svc.get_experiment(eid)
    assert isinstance(experiment, Experiment)
    assert experiment.tags == {"k": "v"}
    ParseDict(experiment.to_wire(), service_pb2.Experiment())
    model = svc.create_logged_model({"experiment_id": eid, "name": "net"})
    assert isinstance(model, LoggedModel)
    run_id = svc.create_run({"experiment_id": eid}).info.run_id
    svc.log_batch(run_id, [{"key": "acc", "value": 0.5, "timestamp": 1, "step": 0, "model_id": model.model_id}], [], [])
    logged = svc.get_logged_model(model.model_id)
    assert logged.metrics == [Metric("acc", 0.5, 1, 0, run_id, model.model_id)]
    ParseDict(logged.to_wire(), service_pb2.LoggedModel())
    runs = svc.search_runs([eid], None, None, None, [], None)
    assert isinstance(runs, Page)
    assert [r.info.run_id for r in runs.items] == [run_id]
    assert runs.token is None
    assert runs.to_wire("runs", Run.to_wire) == {"runs": [svc.get_run(run_id).to_wire()]}
    history = svc.get_metric_history(run_id, "acc", None, None)
    assert history.items == [Metric("acc", 0.5, 1, 0)]
    assert history.to_wire("metrics", Metric.to_wire) == {"metrics": [{"key": "acc", "value": 0.5, "timestamp": 1,
                                                                       "step": 0}]}
