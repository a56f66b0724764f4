"""What MLflow's web UI calls beyond the client's REST API, mounted at /mlflow (as ``mlflow server
--static-prefix /mlflow``): ``graphql``, ``get-artifact``, ``model-versions/get-artifact``,
``ajax-api/2.0/mlflow/artifacts/list`` and ``experiments/search-datasets``, and the answers MLflow
gives for the features this service does not have (see ``UNAVAILABLE``), so the UI hides them.
"""
from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

from chalice import Blueprint, Response

from .. import services
from ..auth.errors import AuthError
from ..bounds import InputBoundError, load_json
from ..mlflowapi import validation as v
from ..mlflowapi.errors import invalid, missing
from ..mlflowapi.fields import Fields
from ..tracking.artifacts import ArtifactService
from . import auth
from . import mlflow_access as acl
from .mlflow_artifact_lists import list_run_artifacts
from .mlflow_common import mlflow_handler, mlflow_json, mlflow_route, request_message
from .urls import base_url

ui_api = Blueprint(__name__)

# Path segments of the deepest file in the bundle (``lib/notebook-trace-renderer/js/…``), with margin:
# app.py mounts the bundle's files under /mlflow/static-files/ with D's static site server.
MLFLOW_BUNDLE_DEPTH = 6

# MLflow's get_text_extensions(): previewed as text/plain whatever mimetypes says.
TEXT_EXTENSIONS = frozenset(
    "txt log err cfg conf cnf cf ini properties prop hocon toml yaml yml xml json js py py3 csv tsv md rst "
    "ipynb MLmodel MLproject".split())
# An artifact is the user's content served from the UI's origin: never rendered as a page of it.
_ARTIFACT_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}


def _msg() -> Fields:
    return Fields(request_message(ui_api.current_request))


# -- GraphQL ------------------------------------------------------------------------------------
@ui_api.route("/graphql", methods=["POST", "GET"])
def graphql() -> Response:
    request = ui_api.current_request
    if request.method == "GET":
        params: Any = request.query_params or {}
        body: Any = {k: params.get(k) for k in ("query", "operationName")}
        try:
            body["variables"] = load_json(params["variables"]) if params.get("variables") else None
        except InputBoundError as err:
            return mlflow_json(400, {"error_code": "MALFORMED_REQUEST", "message": str(err)})
    else:
        try:
            body = load_json(request.raw_body or b"{}")
        except InputBoundError as err:
            return mlflow_json(400, {"error_code": "MALFORMED_REQUEST", "message": str(err)})
        if not isinstance(body, dict):
            return mlflow_json(400, {"error_code": "MALFORMED_REQUEST", "message": "Request body must be a JSON object"})
    try:
        acl.signed_in_or_anonymous_read()  # each resolver checks its own resources
    except AuthError as err:
        return auth.mlflow_error(err)
    from .mlflow_graphql import run_query  # graphql-core only on this route
    return mlflow_json(200, run_query(body.get("query"), body.get("variables"), body.get("operationName")))


# -- artifacts, as the UI reads them (by run or model version, relative paths) -----------------------
@mlflow_route(ui_api, "/artifacts/list", "GET")
def list_artifacts() -> dict[str, Any]:
    m = _msg()
    return list_run_artifacts(m.string("run_id") or m.string("run_uuid"), m.string("path"))


def _send_artifact(artifact_uri: str, path: str | None) -> Response:
    """A file under ``artifact_uri`` as ``mlflow server`` sends it: its media type, as an attachment."""
    if not path:
        raise missing("path")
    found = services.artifacts().download_artifact(ArtifactService.proxied_path(artifact_uri, path),
                                                   base_url=base_url(ui_api.current_request))
    name = posixpath.basename(path)
    headers = {**_ARTIFACT_HEADERS, "Content-Disposition": _attachment(name)}
    if found.url is not None:  # too big for a proxied response
        return Response(body="", status_code=307, headers={**headers, "Location": found.url})
    media_type, body = _media_type(name), found.body or b""
    if media_type.startswith("text/") or media_type in ("application/json", "image/svg+xml"):
        try:
            return Response(body=body.decode("utf-8"), status_code=200,
                            headers={**headers, "Content-Type": f"{media_type}; charset=utf-8"})
        except UnicodeDecodeError:
            media_type = "application/octet-stream"
    app = ui_api.current_app
    if media_type not in (app.api.binary_types if app is not None else []):
        media_type = "application/octet-stream"  # the API passes only its binary types as bytes
    return Response(body=body, status_code=200, headers={**headers, "Content-Type": media_type})


def _media_type(name: str) -> str:
    extension = posixpath.splitext(name)[1].lstrip(".") or name
    if extension in TEXT_EXTENSIONS:
        return "text/plain"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _attachment(name: str) -> str:
    from urllib.parse import quote
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@ui_api.route("/get-artifact", methods=["GET"])
@mlflow_handler
def get_artifact() -> Response:
    m = _msg()
    run_id = v.run_id(m.string("run_id") or m.string("run_uuid"))
    acl.run(run_id, acl.READ)
    run = services.tracking().get_run(run_id)
    return _send_artifact(run.info.artifact_uri or "", m.string("path"))


@ui_api.route("/model-versions/get-artifact", methods=["GET"])
@mlflow_handler
def get_model_version_artifact() -> Response:
    m = _msg()
    acl.registered_model(m.string("name"), acl.READ)
    uri = services.registry().get_model_version_download_uri(m.string("name"), m.string("version"))
    if uri.startswith("models:/"):
        raise invalid(f"Model version source {uri!r} has no artifact location")
    return _send_artifact(uri, m.string("path"))


# -- datasets of an experiment's runs (the runs table's dataset filter) ------------------------------
@mlflow_route(ui_api, "/experiments/search-datasets", "POST")
def search_datasets() -> dict[str, Any]:
    ids = acl.readable_experiments(_msg().strings("experiment_ids"))
    return {"dataset_summaries": services.tracking().search_datasets(ids)}



# -- features this service does not have, answered as ``mlflow server`` answers with them off or empty --
# The UI probes these on its pages; an error (or Chalice's 403 for an unknown route) would pop an
# error dialog. Protobuf's JSON omits empty lists, so MLflow's "nothing here" is mostly ``{}``.
# (path under /mlflow, methods, status, body)
UNAVAILABLE: list[tuple[str, tuple[str, ...], int, Any]] = [
    # No deployments target: MLflow "pretends an empty gateway service is running".
    ("/ajax-api/2.0/mlflow/gateway-proxy", ("GET", "POST"), 200, {"endpoints": []}),
    # No assistant provider installed: empty config, setup incomplete; remote access never allowed.
    ("/ajax-api/3.0/mlflow/assistant/config", ("GET",), 200,
     {"providers": {}, "projects": {}, "remote_access_allowed": False}),
    ("/ajax-api/3.0/mlflow/assistant/providers", ("GET",), 200,
     {"providers": [], "resolved": None, "gateway_vendor_options": {}}),
    # No traces, trace metrics, scorers, evaluation datasets, webhooks: empty results.
    ("/ajax-api/3.0/mlflow/traces/metrics", ("POST",), 200, {}),
    ("/ajax-api/3.0/mlflow/traces/search", ("GET", "POST"), 200, {}),
    ("/ajax-api/2.0/mlflow/traces", ("GET",), 200, {}),
    ("/ajax-api/3.0/mlflow/scorers/list", ("GET",), 200, {}),
    ("/ajax-api/3.0/mlflow/datasets/search", ("GET", "POST"), 200, {}),
    ("/ajax-api/2.0/mlflow/webhooks", ("GET",), 200, {}),
    # No authentication yet (issue 10 replaces this): MLflow without its auth app answers 404.
    ("/ajax-api/2.0/mlflow/users/current", ("GET",), 404,
     {"error_code": "ENDPOINT_NOT_FOUND", "message": "Authentication is not enabled on this server"}),
]


def _answer(status: int, body: Any) -> Any:
    return lambda: mlflow_json(status, body)


for _path, _methods, _status, _body in UNAVAILABLE:
    ui_api.route(_path, methods=list(_methods), name="unavailable" + _path.replace("/", "_").replace("-", "_"))(
        _answer(_status, _body))
