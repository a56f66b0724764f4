"""MLflow tracking REST API (``/mlflow/api/2.0/mlflow/...`` and the UI's ``/mlflow/ajax-api/...``).

Each handler parses the request message, calls one TrackingService method, returns proto JSON.
"""
from __future__ import annotations

from typing import Any, Callable

from chalice import Blueprint, Response

from ..tracking import validation as v
from .mlflow_common import mlflow_route, request_message

mlflow_api = Blueprint(__name__)

MLFLOW_VERSION = "3.17.2"  # the client release whose REST contract this API follows
_REPEATED = frozenset({"experiment_ids", "order_by", "run_ids"})


def _service() -> Any:
    from ..tracking.service import tracking_service
    return tracking_service()


def _msg() -> dict[str, Any]:
    return request_message(mlflow_api.current_request, repeated=_REPEATED)


def _route(path: str, *methods: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return mlflow_route(mlflow_api, path, *methods)


@mlflow_api.route("/health", methods=["GET"])
def health() -> Response:
    return Response(body="OK", status_code=200, headers={"Content-Type": "text/plain"})


@mlflow_api.route("/version", methods=["GET"])
def version() -> Response:
    return Response(body=MLFLOW_VERSION, status_code=200, headers={"Content-Type": "text/plain"})


# -- experiments -------------------------------------------------------------------------
@_route("/experiments/create", "POST")
def create_experiment() -> dict[str, Any]:
    m = _msg()
    return {"experiment_id": _service().create_experiment(
        v.string(m, "name", required=True), v.string(m, "artifact_location"), v.object_list(m, "tags"))}


@_route("/experiments/get", "GET")
def get_experiment() -> dict[str, Any]:
    return {"experiment": _service().get_experiment(v.require(_msg(), "experiment_id"))}


@_route("/experiments/get-by-name", "GET")
def get_experiment_by_name() -> dict[str, Any]:
    return {"experiment": _service().get_experiment_by_name(v.string(_msg(), "experiment_name", required=True))}


@_route("/experiments/search", "POST", "GET")
def search_experiments() -> dict[str, Any]:
    m = _msg()
    return _service().search_experiments(m.get("view_type"), m.get("max_results"), v.string(m, "filter"),
                                         v.string_list(m, "order_by"), v.string(m, "page_token"))


@_route("/experiments/update", "POST")
def update_experiment() -> dict[str, Any]:
    m = _msg()
    _service().rename_experiment(v.require(m, "experiment_id"), v.string(m, "new_name", required=True))
    return {}


@_route("/experiments/delete", "POST")
def delete_experiment() -> dict[str, Any]:
    _service().delete_experiment(v.require(_msg(), "experiment_id"))
    return {}


@_route("/experiments/restore", "POST")
def restore_experiment() -> dict[str, Any]:
    _service().restore_experiment(v.require(_msg(), "experiment_id"))
    return {}


@_route("/experiments/set-experiment-tag", "POST")
def set_experiment_tag() -> dict[str, Any]:
    m = _msg()
    _service().set_experiment_tag(v.require(m, "experiment_id"), v.string(m, "key", required=True),
                                  v.string(m, "value") or "")
    return {}


@_route("/experiments/delete-experiment-tag", "POST")
def delete_experiment_tag() -> dict[str, Any]:
    m = _msg()
    _service().delete_experiment_tag(v.require(m, "experiment_id"), v.string(m, "key", required=True))
    return {}


# -- runs ---------------------------------------------------------------------------------
def _run_id(m: dict[str, Any]) -> str:
    return v.run_id(m.get("run_id") or m.get("run_uuid"))


@_route("/runs/create", "POST")
def create_run() -> dict[str, Any]:
    return _service().create_run(_msg())  # type: ignore[no-any-return]


@_route("/runs/get", "GET")
def get_run() -> dict[str, Any]:
    return {"run": _service().get_run(_run_id(_msg()))}


@_route("/runs/update", "POST")
def update_run() -> dict[str, Any]:
    m = _msg()
    return _service().update_run_info(_run_id(m), m.get("status"), v.integer(m, "end_time"),  # type: ignore[no-any-return]
                                      v.string(m, "run_name"))


@_route("/runs/delete", "POST")
def delete_run() -> dict[str, Any]:
    _service().delete_run(_run_id(_msg()))
    return {}


@_route("/runs/restore", "POST")
def restore_run() -> dict[str, Any]:
    _service().restore_run(_run_id(_msg()))
    return {}


@_route("/runs/log-metric", "POST")
def log_metric() -> dict[str, Any]:
    m = _msg()
    for field in ("key", "value", "timestamp"):
        if m.get(field) is None:
            v.require(m, field)
    metric = {k: m.get(k) for k in ("key", "value", "timestamp", "step", "model_id", "dataset_name",
                                    "dataset_digest")}
    _service().log_batch(_run_id(m), [metric], [], [])
    return {}


@_route("/runs/log-parameter", "POST")
def log_param() -> dict[str, Any]:
    m = _msg()
    v.string(m, "key", required=True)
    _service().log_batch(_run_id(m), [], [{"key": m["key"], "value": v.string(m, "value") or ""}], [])
    return {}


@_route("/runs/set-tag", "POST")
def set_tag() -> dict[str, Any]:
    m = _msg()
    v.string(m, "key", required=True)
    _service().log_batch(_run_id(m), [], [], [{"key": m["key"], "value": v.string(m, "value") or ""}])
    return {}


@_route("/runs/delete-tag", "POST")
def delete_tag() -> dict[str, Any]:
    m = _msg()
    _service().delete_tag(_run_id(m), v.string(m, "key", required=True))
    return {}


@_route("/runs/log-batch", "POST")
def log_batch() -> dict[str, Any]:
    m = _msg()
    _service().log_batch(_run_id(m), v.object_list(m, "metrics"), v.object_list(m, "params"),
                         v.object_list(m, "tags"))
    return {}


@_route("/runs/log-inputs", "POST")
def log_inputs() -> dict[str, Any]:
    m = _msg()
    _service().log_inputs(_run_id(m), v.object_list(m, "datasets"), v.object_list(m, "models"))
    return {}


@_route("/runs/outputs", "POST")
def log_outputs() -> dict[str, Any]:
    m = _msg()
    _service().log_outputs(_run_id(m), v.object_list(m, "models"))
    return {}


@_route("/runs/log-model", "POST")
def log_model() -> dict[str, Any]:
    m = _msg()
    _service().record_logged_model(_run_id(m), v.string(m, "model_json", required=True))
    return {}


@_route("/runs/search", "POST")
def search_runs() -> dict[str, Any]:
    m = _msg()
    return _service().search_runs(v.string_list(m, "experiment_ids"), v.string(m, "filter"),  # type: ignore[no-any-return]
                                  m.get("run_view_type"), m.get("max_results"), v.string_list(m, "order_by"),
                                  v.string(m, "page_token"))


@_route("/metrics/get-history", "GET")
def get_metric_history() -> dict[str, Any]:
    m = _msg()
    max_results = v.integer(m, "max_results")
    if max_results is not None and max_results <= 0:
        v.max_results(max_results, 0)
    return _service().get_metric_history(_run_id(m), v.string(m, "metric_key", required=True),  # type: ignore[no-any-return]
                                         max_results, v.string(m, "page_token"))


@_route("/metrics/get-history-bulk-interval", "GET")
def get_metric_history_bulk_interval() -> dict[str, Any]:
    m = _msg()
    return _service().get_metric_history_bulk_interval(  # type: ignore[no-any-return]
        v.string_list(m, "run_ids"), v.string(m, "metric_key", required=True), v.integer(m, "start_step"),
        v.integer(m, "end_step"), v.integer(m, "max_results"))


# -- logged models (MLflow 3) -----------------------------------------------------------------
@_route("/logged-models", "POST")
def create_logged_model() -> dict[str, Any]:
    return _service().create_logged_model(_msg())  # type: ignore[no-any-return]


@_route("/logged-models/search", "POST")
def search_logged_models() -> dict[str, Any]:
    m = _msg()
    return _service().search_logged_models(  # type: ignore[no-any-return]
        v.string_list(m, "experiment_ids"), v.string(m, "filter"), v.object_list(m, "datasets"),
        m.get("max_results"), v.object_list(m, "order_by"), v.string(m, "page_token"))


@_route("/logged-models/{model_id}", "GET")
def get_logged_model(model_id: str) -> dict[str, Any]:
    allow_deleted = str(_msg().get("allow_deleted", "")).lower() == "true"
    return _service().get_logged_model(model_id, allow_deleted)  # type: ignore[no-any-return]


@_route("/logged-models/{model_id}", "PATCH")
def finalize_logged_model(model_id: str) -> dict[str, Any]:
    return _service().finalize_logged_model(model_id, v.require(_msg(), "status"))  # type: ignore[no-any-return]


@_route("/logged-models/{model_id}", "DELETE")
def delete_logged_model(model_id: str) -> dict[str, Any]:
    _service().delete_logged_model(model_id)
    return {}


@_route("/logged-models/{model_id}/tags", "PATCH")
def set_logged_model_tags(model_id: str) -> dict[str, Any]:
    _service().set_logged_model_tags(model_id, v.object_list(_msg(), "tags"))
    return {}


@_route("/logged-models/{model_id}/tags/{tag_key}", "DELETE")
def delete_logged_model_tag(model_id: str, tag_key: str) -> dict[str, Any]:
    from urllib.parse import unquote
    _service().delete_logged_model_tag(model_id, unquote(tag_key))
    return {}


@_route("/logged-models/{model_id}/params", "POST")
def log_logged_model_params(model_id: str) -> dict[str, Any]:
    _service().log_logged_model_params(model_id, v.object_list(_msg(), "params"))
    return {}
