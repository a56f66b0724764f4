"""MLflow model-registry REST API (``/mlflow/api/2.0/mlflow/registered-models|model-versions/...``).

Each handler parses the request message, calls one RegistryService method, returns proto JSON.
Plus ``/mlflow/registry/latest-item?name=``: the redirect that STAC items' ``latest-version``
links point at (the newest published version's item).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from .. import services
from ..registry import records as rec
from ..tracking.errors import not_found
from .mlflow_common import mlflow_handler, mlflow_route, request_message
from .urls import base_url

if TYPE_CHECKING:
    from ..registry.service import RegistryService

registry_api = Blueprint(__name__)

_REPEATED = frozenset({"order_by", "stages"})


def _service() -> RegistryService:
    return services.registry()


def _msg() -> dict[str, Any]:
    return request_message(registry_api.current_request, repeated=_REPEATED)


def _model(rm: Any) -> dict[str, Any]:
    return {"registered_model": _service().model_view(rm)}


def _version(mv: Any) -> dict[str, Any]:
    return {"model_version": rec.version_message(mv)}


# -- registered models ------------------------------------------------------------------
@mlflow_route(registry_api, "/registered-models/create", "POST")
def create_registered_model() -> dict[str, Any]:
    m = _msg()
    return _model(_service().create_registered_model(m.get("name"), m.get("tags"), m.get("description"),
                                                     m.get("deployment_job_id")))


@mlflow_route(registry_api, "/registered-models/get", "GET")
def get_registered_model() -> dict[str, Any]:
    return _model(_service().get_registered_model(_msg().get("name")))


@mlflow_route(registry_api, "/registered-models/update", "PATCH")
def update_registered_model() -> dict[str, Any]:
    m = _msg()
    return _model(_service().update_registered_model(m.get("name"), m.get("description"), m.get("deployment_job_id")))


@mlflow_route(registry_api, "/registered-models/rename", "POST")
def rename_registered_model() -> dict[str, Any]:
    m = _msg()
    return _model(_service().rename_registered_model(m.get("name"), m.get("new_name")))


@mlflow_route(registry_api, "/registered-models/delete", "DELETE")
def delete_registered_model() -> dict[str, Any]:
    _service().delete_registered_model(_msg().get("name"))
    return {}


@mlflow_route(registry_api, "/registered-models/search", "GET")
def search_registered_models() -> dict[str, Any]:
    m = _msg()
    models, token = _service().search_registered_models(m.get("filter"), m.get("max_results"), m.get("order_by"),
                                                        m.get("page_token"))
    out: dict[str, Any] = {"registered_models": models}
    if token:
        out["next_page_token"] = token
    return out


@mlflow_route(registry_api, "/registered-models/get-latest-versions", "POST", "GET")
def get_latest_versions() -> dict[str, Any]:
    m = _msg()
    return {"model_versions": [rec.version_message(mv)
                               for mv in _service().get_latest_versions(m.get("name"), m.get("stages"))]}


@mlflow_route(registry_api, "/registered-models/set-tag", "POST")
def set_registered_model_tag() -> dict[str, Any]:
    m = _msg()
    _service().set_registered_model_tag(m.get("name"), m.get("key"), m.get("value"))
    return {}


@mlflow_route(registry_api, "/registered-models/delete-tag", "DELETE")
def delete_registered_model_tag() -> dict[str, Any]:
    m = _msg()
    _service().delete_registered_model_tag(m.get("name"), m.get("key"))
    return {}


@mlflow_route(registry_api, "/registered-models/alias", "POST", "DELETE", "GET")
def registered_model_alias() -> dict[str, Any]:
    m = _msg()
    method = registry_api.current_request.method
    if method == "GET":
        return _version(_service().get_model_version_by_alias(m.get("name"), m.get("alias")))
    if method == "POST":
        _service().set_registered_model_alias(m.get("name"), m.get("alias"), m.get("version"))
    else:
        _service().delete_registered_model_alias(m.get("name"), m.get("alias"))
    return {}


# -- model versions ----------------------------------------------------------------------
@mlflow_route(registry_api, "/model-versions/create", "POST")
def create_model_version() -> dict[str, Any]:
    m = _msg()
    return _version(_service().create_model_version(m.get("name"), m.get("source"), m.get("run_id"), m.get("tags"),
                                                    m.get("run_link"), m.get("description"), m.get("model_id")))


@mlflow_route(registry_api, "/model-versions/get", "GET")
def get_model_version() -> dict[str, Any]:
    m = _msg()
    return _version(_service().get_model_version(m.get("name"), m.get("version")))


@mlflow_route(registry_api, "/model-versions/update", "PATCH")
def update_model_version() -> dict[str, Any]:
    m = _msg()
    return _version(_service().update_model_version(m.get("name"), m.get("version"), m.get("description")))


@mlflow_route(registry_api, "/model-versions/transition-stage", "POST")
def transition_model_version_stage() -> dict[str, Any]:
    m = _msg()
    return _version(_service().transition_model_version_stage(m.get("name"), m.get("version"), m.get("stage"),
                                                              m.get("archive_existing_versions", False)))


@mlflow_route(registry_api, "/model-versions/delete", "DELETE")
def delete_model_version() -> dict[str, Any]:
    m = _msg()
    _service().delete_model_version(m.get("name"), m.get("version"))
    return {}


@mlflow_route(registry_api, "/model-versions/search", "GET")
def search_model_versions() -> dict[str, Any]:
    m = _msg()
    versions, token = _service().search_model_versions(m.get("filter"), m.get("max_results"), m.get("order_by"),
                                                       m.get("page_token"))
    out: dict[str, Any] = {"model_versions": [rec.version_message(mv) for mv in versions]}
    if token:
        out["next_page_token"] = token
    return out


@mlflow_route(registry_api, "/model-versions/get-download-uri", "GET")
def get_model_version_download_uri() -> dict[str, Any]:
    m = _msg()
    return {"artifact_uri": _service().get_model_version_download_uri(m.get("name"), m.get("version"))}


@mlflow_route(registry_api, "/model-versions/set-tag", "POST")
def set_model_version_tag() -> dict[str, Any]:
    m = _msg()
    _service().set_model_version_tag(m.get("name"), m.get("version"), m.get("key"), m.get("value"))
    return {}


@mlflow_route(registry_api, "/model-versions/delete-tag", "DELETE")
def delete_model_version_tag() -> dict[str, Any]:
    m = _msg()
    _service().delete_model_version_tag(m.get("name"), m.get("version"), m.get("key"))
    return {}


# -- STAC: latest-version resolver -----------------------------------------------------------
@registry_api.route("/registry/latest-item", methods=["GET"])
@mlflow_handler
def latest_item() -> Response:
    from ..registry.publication import latest_published
    name = _msg().get("name")
    iid = latest_published(services.store(), name)
    if iid is None:
        raise not_found(f"No published version of registered model {name!r}")
    href = f"{base_url(registry_api.current_request)}/stac/collections/ai-model/items/{iid}"
    return Response(body="", status_code=302, headers={"Location": href})
