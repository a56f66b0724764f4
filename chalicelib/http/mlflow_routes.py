"""MLflow tracking REST API (``/mlflow/api/2.0/mlflow/...`` and the UI's ``/mlflow/ajax-api/...``).

Each handler parses the request message, calls one TrackingService method and returns the
entities it gets in their wire form (``to_wire()``, proto JSON). Every field is read through
``mlflowapi.fields.Fields``, typed as MLflow's proto declares it: a value of another JSON type is
INVALID_PARAMETER_VALUE before the service is called.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from chalice import Blueprint, Response

from .. import services
from ..mlflowapi import validation as v
from ..mlflowapi.errors import missing
from ..mlflowapi.fields import Fields
from ..mlflowapi.pages import Page
from ..mlflowapi.validation import MODEL_STATUS, RUN_STATUS, VIEW_TYPE
from ..tracking.entities import Experiment, LoggedModel, Metric, Run
from . import mlflow_access as acl
from .mlflow_access import DELETE, READ, WRITE
from .mlflow_common import mlflow_route, mlflow_text, request_message

if TYPE_CHECKING:
    from ..tracking.service import TrackingService

mlflow_api = Blueprint(__name__)

MLFLOW_VERSION = "3.17.2"  # the client release whose REST contract this API follows
_REPEATED = frozenset({"experiment_ids", "order_by", "run_ids"})


def _service() -> TrackingService:
    return services.tracking()


def _msg() -> Fields:
    return Fields(request_message(mlflow_api.current_request, repeated=_REPEATED))


def _route(path: str, *methods: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return mlflow_route(mlflow_api, path, *methods)


@mlflow_api.route("/health", methods=["GET"])
def health() -> Response:
    return Response(body="OK", status_code=200, headers={"Content-Type": "text/plain"})


@mlflow_api.route("/api/openapi.json", methods=["GET"])
def openapi() -> Response:
    """The OpenAPI description of these routes (``openapi/mlflow.json``, written from MLflow's REST docs)."""
    import json
    from pathlib import Path

    from .urls import base_url
    doc = json.loads((Path(__file__).parent / "openapi" / "mlflow.json").read_text())
    doc["servers"] = [{"url": base_url(mlflow_api.current_request) + "/mlflow"}]
    return Response(body=json.dumps(doc), status_code=200,
                    headers={"Content-Type": "application/vnd.oai.openapi+json;version=3.0"})


@mlflow_api.route("/version", methods=["GET"])
def version() -> Response:
    return Response(body=MLFLOW_VERSION, status_code=200, headers={"Content-Type": "text/plain"})


# -- experiments -------------------------------------------------------------------------
def _experiment_id(m: Fields) -> str:
    return v.experiment_id(m.string("experiment_id", required=True))


@_route("/experiments/create", "POST")
def create_experiment() -> dict[str, Any]:
    m = _msg()
    acl.creating(m.objects("tags"), "experiment")
    return {"experiment_id": _service().create_experiment(
        m.string("name", required=True), m.string("artifact_location"), m.objects("tags"))}


@_route("/experiments/get", "GET")
def get_experiment() -> dict[str, Any]:
    eid = _experiment_id(_msg())
    acl.experiment(eid, READ)
    experiment: Experiment = _service().get_experiment(eid)
    return {"experiment": experiment.to_wire()}


@_route("/experiments/get-by-name", "GET")
def get_experiment_by_name() -> dict[str, Any]:
    acl.signed_in_or_anonymous_read()
    experiment: Experiment = _service().get_experiment_by_name(_msg().string("experiment_name", required=True))
    acl.experiment(experiment.experiment_id, READ)
    return {"experiment": experiment.to_wire()}


@_route("/experiments/search", "POST", "GET")
def search_experiments() -> dict[str, Any]:
    m = _msg()
    page: Page[Experiment] = _service().search_experiments(m.enum("view_type", VIEW_TYPE), m.integer("max_results"),
                                                           m.string("filter"), m.strings("order_by"),
                                                           m.string("page_token"), acl.tag_filter())
    return page.to_wire("experiments", Experiment.to_wire)


@_route("/experiments/update", "POST")
def update_experiment() -> dict[str, Any]:
    m = _msg()
    acl.experiment(_experiment_id(m), WRITE)
    _service().rename_experiment(_experiment_id(m), m.string("new_name", required=True))
    return {}


@_route("/experiments/delete", "POST")
def delete_experiment() -> dict[str, Any]:
    eid = _experiment_id(_msg())
    acl.experiment(eid, DELETE)
    _service().delete_experiment(eid)
    return {}


@_route("/experiments/restore", "POST")
def restore_experiment() -> dict[str, Any]:
    eid = _experiment_id(_msg())
    acl.experiment(eid, DELETE)
    _service().restore_experiment(eid)
    return {}


@_route("/experiments/set-experiment-tag", "POST")
def set_experiment_tag() -> dict[str, Any]:
    m = _msg()
    acl.experiment(_experiment_id(m), WRITE)
    acl.changing_tag(m.string("key", required=True), lambda: acl.experiment_project(_experiment_id(m)))
    _service().set_experiment_tag(_experiment_id(m), m.string("key", required=True), m.string("value") or "")
    return {}


@_route("/experiments/delete-experiment-tag", "POST")
def delete_experiment_tag() -> dict[str, Any]:
    m = _msg()
    acl.experiment(_experiment_id(m), WRITE)
    acl.changing_tag(m.string("key", required=True), lambda: acl.experiment_project(_experiment_id(m)), True)
    _service().delete_experiment_tag(_experiment_id(m), m.string("key", required=True))
    return {}


# -- runs ---------------------------------------------------------------------------------
def _run_id(m: Fields) -> str:
    return v.run_id(m.string("run_id") or m.string("run_uuid"))


@_route("/runs/create", "POST")
def create_run() -> dict[str, Any]:
    m = _msg()
    acl.experiment(m.string("experiment_id") or "0", WRITE)
    run: Run = _service().create_run(m)
    return {"run": run.to_wire()}


@_route("/runs/get", "GET")
def get_run() -> dict[str, Any]:
    run_id = _run_id(_msg())
    acl.run(run_id, READ)
    run: Run = _service().get_run(run_id)
    return {"run": run.to_wire()}


@_route("/runs/update", "POST")
def update_run() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    info = _service().update_run_info(_run_id(m), m.enum("status", RUN_STATUS), m.integer("end_time"),
                                      m.string("run_name"))
    return {"run_info": info.to_wire()}


@_route("/runs/delete", "POST")
def delete_run() -> dict[str, Any]:
    run_id = _run_id(_msg())
    acl.run(run_id, DELETE)
    _service().delete_run(run_id)
    return {}


@_route("/runs/restore", "POST")
def restore_run() -> dict[str, Any]:
    run_id = _run_id(_msg())
    acl.run(run_id, DELETE)
    _service().restore_run(run_id)
    return {}


@_route("/runs/log-metric", "POST")
def log_metric() -> dict[str, Any]:
    m = _msg()
    for field in ("key", "value", "timestamp"):
        if not m.present(field):
            raise missing(field)
    acl.run(_run_id(m), WRITE)
    _service().log_batch(_run_id(m), [m], [], [])  # the message carries exactly a Metric's fields
    return {}


@_route("/runs/log-parameter", "POST")
def log_param() -> dict[str, Any]:
    m = _msg()
    m.string("key", required=True)
    acl.run(_run_id(m), WRITE)
    _service().log_batch(_run_id(m), [], [m], [])  # the message carries exactly a Param's fields
    return {}


@_route("/runs/set-tag", "POST")
def set_tag() -> dict[str, Any]:
    m = _msg()
    m.string("key", required=True)
    acl.run(_run_id(m), WRITE)
    _service().log_batch(_run_id(m), [], [], [m])
    return {}


@_route("/runs/delete-tag", "POST")
def delete_tag() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    _service().delete_tag(_run_id(m), m.string("key", required=True))
    return {}


@_route("/runs/log-batch", "POST")
def log_batch() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    _service().log_batch(_run_id(m), m.dicts("metrics"), m.objects("params"), m.objects("tags"))
    return {}


@_route("/runs/log-inputs", "POST")
def log_inputs() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    _service().log_inputs(_run_id(m), m.objects("datasets"), m.objects("models"))
    return {}


@_route("/runs/outputs", "POST")
def log_outputs() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    _service().log_outputs(_run_id(m), m.objects("models"))
    return {}


@_route("/runs/log-model", "POST")
def log_model() -> dict[str, Any]:
    m = _msg()
    acl.run(_run_id(m), WRITE)
    _service().record_logged_model(_run_id(m), m.string("model_json", required=True))
    return {}


@_route("/runs/search", "POST")
def search_runs() -> Response:
    m = _msg()
    page: Page[Run] = _service().search_runs(acl.readable_experiments(m.strings("experiment_ids")), m.string("filter"),
                                             m.enum("run_view_type", VIEW_TYPE), m.integer("max_results"),
                                             m.strings("order_by"), m.string("page_token"))
    return mlflow_text(200, page.to_wire_text("runs", _service().run_wire_text))


@_route("/metrics/get-history", "GET")
def get_metric_history() -> dict[str, Any]:
    m = _msg()
    max_results = m.integer("max_results")
    if max_results is not None:
        v.max_results(max_results, 0)
    acl.run(_run_id(m), READ)
    page: Page[Metric] = _service().get_metric_history(_run_id(m), m.string("metric_key", required=True),
                                                       max_results, m.string("page_token"))
    return page.to_wire("metrics", Metric.to_wire)


@_route("/metrics/get-history-bulk-interval", "GET")
def get_metric_history_bulk_interval() -> dict[str, Any]:
    m = _msg()
    for run_id in m.strings("run_ids")[:100]:
        acl.run(run_id, READ)
    metrics: list[Metric] = _service().get_metric_history_bulk_interval(
        m.strings("run_ids"), m.string("metric_key", required=True), m.integer("start_step"),
        m.integer("end_step"), m.integer("max_results"))
    return {"metrics": [metric.to_wire() for metric in metrics]}


# -- logged models (MLflow 3) -----------------------------------------------------------------
@_route("/logged-models", "POST")
def create_logged_model() -> dict[str, Any]:
    m = _msg()
    acl.experiment(m.string("experiment_id", required=True), WRITE)
    model: LoggedModel = _service().create_logged_model(m)
    return {"model": model.to_wire()}


def _model_order(o: Fields) -> dict[str, Any]:
    return {"field_name": o.string("field_name"), "ascending": o.boolean("ascending"),
            "dataset_name": o.string("dataset_name"), "dataset_digest": o.string("dataset_digest")}


@_route("/logged-models/search", "POST")
def search_logged_models() -> dict[str, Any]:
    m = _msg()
    order_by = [{k: val for k, val in _model_order(o).items() if val is not None} for o in m.objects("order_by")]
    datasets = [{"dataset_name": d.string("dataset_name", required=True), "dataset_digest": d.string("dataset_digest")}
                for d in m.objects("datasets")]
    page: Page[LoggedModel] = _service().search_logged_models(
        acl.readable_experiments(m.strings("experiment_ids")), m.string("filter"), datasets, m.integer("max_results"), order_by,
        m.string("page_token"))
    return page.to_wire("models", LoggedModel.to_wire)


@_route("/logged-models/{model_id}", "GET")
def get_logged_model(model_id: str) -> dict[str, Any]:
    acl.logged_model(model_id, READ)
    model: LoggedModel = _service().get_logged_model(model_id, bool(_msg().boolean("allow_deleted")))
    return {"model": model.to_wire()}


@_route("/logged-models/{model_id}", "PATCH")
def finalize_logged_model(model_id: str) -> dict[str, Any]:
    acl.logged_model(model_id, WRITE)
    model: LoggedModel = _service().finalize_logged_model(model_id, _msg().enum("status", MODEL_STATUS,
                                                                                required=True))
    return {"model": model.to_wire()}


@_route("/logged-models/{model_id}", "DELETE")
def delete_logged_model(model_id: str) -> dict[str, Any]:
    acl.logged_model(model_id, DELETE)
    _service().delete_logged_model(model_id)
    return {}


@_route("/logged-models/{model_id}/tags", "PATCH")
def set_logged_model_tags(model_id: str) -> dict[str, Any]:
    acl.logged_model(model_id, WRITE)
    _service().set_logged_model_tags(model_id, _msg().objects("tags"))
    return {}


@_route("/logged-models/{model_id}/tags/{tag_key}", "DELETE")
def delete_logged_model_tag(model_id: str, tag_key: str) -> dict[str, Any]:
    from urllib.parse import unquote
    acl.logged_model(model_id, WRITE)
    _service().delete_logged_model_tag(model_id, unquote(tag_key))
    return {}


@_route("/logged-models/{model_id}/params", "POST")
def log_logged_model_params(model_id: str) -> dict[str, Any]:
    acl.logged_model(model_id, WRITE)
    _service().log_logged_model_params(model_id, _msg().objects("params"))
    return {}
