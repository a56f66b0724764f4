"""MLflow model-registry REST API (``/mlflow/api/2.0/mlflow/registered-models|model-versions/...``).

Each handler reads the request message through ``mlflowapi.fields.Fields`` (typed as MLflow's
proto declares each field), calls one RegistryService method and returns the entities it gets in
their wire form (``to_wire()``, proto JSON). Plus ``/mlflow/registry/latest-item?name=``: the
redirect that STAC items' ``latest-version`` links point at (the newest published version's item).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from .. import services
from ..mlflowapi.errors import not_found
from ..mlflowapi.fields import Fields
from ..mlflowapi.pages import Page
from ..registry.records import ModelVersion, RegisteredModel
from . import mlflow_access as acl
from .mlflow_access import DELETE, READ, WRITE
from .mlflow_common import mlflow_handler, mlflow_route, request_message
from .urls import base_url

if TYPE_CHECKING:
    from ..registry.service import RegistryService

registry_api = Blueprint(__name__)

_REPEATED = frozenset({"order_by", "stages"})


def _service() -> RegistryService:
    return services.registry()


def _msg() -> Fields:
    return Fields(request_message(registry_api.current_request, repeated=_REPEATED))


def _model(rm: RegisteredModel) -> dict[str, Any]:
    return {"registered_model": rm.to_wire()}


def _version(mv: ModelVersion) -> dict[str, Any]:
    return {"model_version": mv.to_wire()}


# -- registered models ------------------------------------------------------------------
@mlflow_route(registry_api, "/registered-models/create", "POST")
def create_registered_model() -> dict[str, Any]:
    m = _msg()
    acl.creating(m.objects("tags"), "registered model")
    return _model(_service().create_registered_model(m.string("name"), m.objects("tags"), m.string("description"),
                                                     m.string("deployment_job_id")))


@mlflow_route(registry_api, "/registered-models/get", "GET")
def get_registered_model() -> dict[str, Any]:
    name = _msg().string("name")
    acl.registered_model(name, READ)
    return _model(_service().get_registered_model(name))


@mlflow_route(registry_api, "/registered-models/update", "PATCH")
def update_registered_model() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    return _model(_service().update_registered_model(m.string("name"), m.string("description"),
                                                     m.string("deployment_job_id")))


@mlflow_route(registry_api, "/registered-models/rename", "POST")
def rename_registered_model() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    return _model(_service().rename_registered_model(m.string("name"), m.string("new_name")))


@mlflow_route(registry_api, "/registered-models/delete", "DELETE")
def delete_registered_model() -> dict[str, Any]:
    name = _msg().string("name")
    acl.registered_model(name, DELETE)
    _service().delete_registered_model(name)
    return {}


@mlflow_route(registry_api, "/registered-models/search", "GET")
def search_registered_models() -> dict[str, Any]:
    m = _msg()
    page: Page[RegisteredModel] = _service().search_registered_models(
        m.string("filter"), m.integer("max_results"), m.strings("order_by"), m.string("page_token"),
        acl.tag_filter())
    return page.to_wire("registered_models", RegisteredModel.to_wire)


@mlflow_route(registry_api, "/registered-models/get-latest-versions", "POST", "GET")
def get_latest_versions() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), READ)
    versions: list[ModelVersion] = _service().get_latest_versions(m.string("name"), m.strings("stages"))
    return {"model_versions": [mv.to_wire() for mv in versions]}


@mlflow_route(registry_api, "/registered-models/set-tag", "POST")
def set_registered_model_tag() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    acl.changing_tag(m.string("key"), lambda: acl.model_project(m.string("name")))
    _service().set_registered_model_tag(m.string("name"), m.string("key"), m.string("value"))
    return {}


@mlflow_route(registry_api, "/registered-models/delete-tag", "DELETE")
def delete_registered_model_tag() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    acl.changing_tag(m.string("key"), lambda: acl.model_project(m.string("name")), True)
    _service().delete_registered_model_tag(m.string("name"), m.string("key"))
    return {}


@mlflow_route(registry_api, "/registered-models/alias", "POST", "DELETE", "GET")
def registered_model_alias() -> dict[str, Any]:
    m = _msg()
    method = registry_api.current_request.method
    acl.registered_model(m.string("name"), READ if method == "GET" else WRITE)
    if method == "GET":
        return _version(_service().get_model_version_by_alias(m.string("name"), m.string("alias")))
    if method == "POST":
        _service().set_registered_model_alias(m.string("name"), m.string("alias"), m.integer("version"))
    else:
        _service().delete_registered_model_alias(m.string("name"), m.string("alias"))
    return {}


# -- model versions ----------------------------------------------------------------------
@mlflow_route(registry_api, "/model-versions/create", "POST")
def create_model_version() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    if m.string("run_id"):  # the version publishes the run's params and metrics: the caller must read it
        acl.run(m.string("run_id") or "", READ)
    if m.string("model_id"):
        acl.logged_model(m.string("model_id") or "", READ)
    acl.version_source(m.string("source"))
    return _version(_service().create_model_version(m.string("name"), m.string("source"), m.string("run_id"),
                                                    m.objects("tags"), m.string("run_link"), m.string("description"),
                                                    m.string("model_id")))


@mlflow_route(registry_api, "/model-versions/get", "GET")
def get_model_version() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), READ)
    return _version(_service().get_model_version(m.string("name"), m.integer("version")))


@mlflow_route(registry_api, "/model-versions/update", "PATCH")
def update_model_version() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    return _version(_service().update_model_version(m.string("name"), m.integer("version"), m.string("description")))


@mlflow_route(registry_api, "/model-versions/transition-stage", "POST")
def transition_model_version_stage() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    return _version(_service().transition_model_version_stage(m.string("name"), m.integer("version"),
                                                              m.string("stage"),
                                                              bool(m.boolean("archive_existing_versions"))))


@mlflow_route(registry_api, "/model-versions/delete", "DELETE")
def delete_model_version() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), DELETE)
    _service().delete_model_version(m.string("name"), m.integer("version"))
    return {}


@mlflow_route(registry_api, "/model-versions/search", "GET")
def search_model_versions() -> dict[str, Any]:
    m = _msg()
    page: Page[ModelVersion] = _service().search_model_versions(
        m.string("filter"), m.integer("max_results"), m.strings("order_by"), m.string("page_token"),
        acl.tag_filter())
    return page.to_wire("model_versions", ModelVersion.to_wire)


@mlflow_route(registry_api, "/model-versions/get-download-uri", "GET")
def get_model_version_download_uri() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), READ)
    return {"artifact_uri": _service().get_model_version_download_uri(m.string("name"), m.integer("version"))}


@mlflow_route(registry_api, "/model-versions/set-tag", "POST")
def set_model_version_tag() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    _service().set_model_version_tag(m.string("name"), m.integer("version"), m.string("key"), m.string("value"))
    return {}


@mlflow_route(registry_api, "/model-versions/delete-tag", "DELETE")
def delete_model_version_tag() -> dict[str, Any]:
    m = _msg()
    acl.registered_model(m.string("name"), WRITE)
    _service().delete_model_version_tag(m.string("name"), m.integer("version"), m.string("key"))
    return {}


# -- STAC: latest-version resolver -----------------------------------------------------------
@registry_api.route("/registry/latest-item", methods=["GET"])
@mlflow_handler
def latest_item() -> Response:
    from ..registry.publication import latest_published
    name = _msg().string("name")
    acl.registered_model(name, READ)
    iid = latest_published(services.store(), name)
    if iid is None:
        raise not_found(f"No published version of registered model {name!r}")
    href = f"{base_url(registry_api.current_request)}/stac/collections/ai-model/items/{iid}"
    return Response(body="", status_code=302, headers={"Location": href})
