"""MLflow's proxied artifact API (``mlflow-artifacts:`` URIs) and ``server-info``, mounted at /mlflow.

Paths of any depth: Chalice (like API Gateway without ``{proxy+}``) binds one path segment
per parameter, so the routes ``…/mlflow-artifacts/{p1}``, ``…/{p1}/{p2}``, … up to
``MAX_DEPTH`` segments are registered at import, all on one dispatcher. The operation
(``artifacts``, ``presigned``, ``mpu/create|complete|abort``) is itself the first segments,
so the whole API shares a single parameter tree: API Gateway gets ``MAX_DEPTH`` resources
per prefix (``api`` and ``ajax-api``), not one tree per operation, and matching is the same
under ``stacflow serve`` (chalice local) and API Gateway. Both hand the handler the
segments percent-encoded; each is decoded once and checked (``mlflowapi.validation.artifact_path``).

Bodies: downloads are always ``application/octet-stream`` (a binary type, so Chalice and
API Gateway base64 them). Uploads carry whatever type MLflow's client guesses from the file
name; API Gateway passes a body intact only if that type is in the API's binary media
types (``app.api.binary_types`` + ``BINARY_TYPES``), else as UTF-8 text. MLflow sends its
text files as ``text/plain``, which stays text here (other routes use it). On Lambda,
clients should set ``MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE`` to 4 MB or less (or 1, so
every file bypasses API Gateway): multipart parts go to presigned URLs, never through the
6 MB Lambda payload; big downloads are presigned or redirected (tracking.artifacts).
"""
from __future__ import annotations

from typing import Any, Callable

from chalice import Blueprint, Response

from .. import services
from ..store import CompletedPart
from ..mlflowapi.errors import MlflowError, invalid
from ..mlflowapi.fields import Fields
from ..mlflowapi.validation import path_from_segments
from ..tracking.artifacts import ArtifactService
from . import mlflow_access as acl
from .mlflow_access import DELETE, READ, WRITE
from .mlflow_common import mlflow_handler, request_message
from .urls import base_url

artifact_api = Blueprint(__name__)

# Segments after /mlflow-artifacts/: the operation takes 1-2, "<experiment>/models/<model>/artifacts"
# 4, leaving artifact paths of up to 19 segments (folders and file name) under a run's or a
# logged model's artifacts/. Deeper URLs match no route. 2 x 24 API Gateway resources.
MAX_DEPTH = 24
_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
_METHODS = ["GET", "PUT", "DELETE", "POST"]

# Binary media types beyond Chalice's defaults (octet-stream, zip, tar, common images) that
# Python's mimetypes gives model and EO data files; app.py adds them to the API's list.
# ".pt" (PyTorch) maps to the SNES type on hosts with Debian's mime.types.
BINARY_TYPES = ["image/tiff", "image/jp2", "image/webp", "application/x-hdf5", "application/x-netcdf",
                "application/pdf", "application/x-7z-compressed", "application/java-archive",
                "application/vnd.apache.arrow.file", "application/geopackage+sqlite3",
                "application/vnd.snesdev-page-table"]


def artifact_service() -> ArtifactService:
    return services.artifacts()


# -- operations: (request, artifact path) -> response ------------------------------------------
def _get(request: Any, path: str) -> Any:
    """``GET …/artifacts?path=<dir>`` lists a directory; ``GET …/artifacts/<path>`` downloads a file."""
    if not path:
        directory = Fields(request_message(request)).string("path") or ""
        acl.artifact(directory, READ)
        files = artifact_service().list_artifacts(directory)
        return {"files": [f.to_wire() for f in files]} if files else {}
    acl.artifact(path, READ)
    found = artifact_service().download_artifact(path, base_url=base_url(request))
    if found.url is not None:  # too big for a proxied response: the client follows the redirect
        return Response(body="", status_code=307, headers={"Location": found.url})
    return Response(body=found.body, status_code=200,
                    headers={"Content-Type": "application/octet-stream"})


def _upload(request: Any, path: str) -> dict[str, Any]:
    acl.artifact(path, WRITE)
    artifact_service().upload_artifact(path, request.raw_body or b"")
    return {}


def _delete(request: Any, path: str) -> dict[str, Any]:
    acl.artifact(path, DELETE)
    artifact_service().delete_artifact(path)
    return {}


def _presigned(request: Any, path: str) -> dict[str, Any]:
    acl.artifact(path, READ)
    return artifact_service().get_presigned_download_url(path, base_url=base_url(request)).to_wire()


def _path(msg: Fields) -> str:
    return msg.string("path", required=True)


def _mpu_create(request: Any, directory: str) -> dict[str, Any]:
    msg = Fields(request_message(request))
    acl.artifact(directory, WRITE)
    num_parts = msg.integer("num_parts")
    return artifact_service().create_multipart_upload(
        directory, _path(msg), 1 if num_parts is None else num_parts, base_url=base_url(request)).to_wire()


def _mpu_complete(request: Any, directory: str) -> dict[str, Any]:
    msg = Fields(request_message(request))
    acl.artifact(directory, WRITE)
    if not msg.present("parts"):
        raise invalid("Parameter 'parts' must be a list of {part_number, etag}")
    parts = [CompletedPart(p.integer("part_number") or 0, p.string("etag") or "") for p in msg.objects("parts")]
    artifact_service().complete_multipart_upload(directory, _path(msg), msg.string("upload_id", required=True) or "",
                                                 parts)
    return {}


def _mpu_abort(request: Any, directory: str) -> dict[str, Any]:
    msg = Fields(request_message(request))
    acl.artifact(directory, WRITE)
    artifact_service().abort_multipart_upload(directory, _path(msg), msg.string("upload_id", required=True) or "")
    return {}


# (leading segments, method) -> operation on the artifact path given by the remaining segments
_OPERATIONS: dict[tuple[tuple[str, ...], str], Callable[[Any, str], Any]] = {
    (("artifacts",), "GET"): _get,
    (("artifacts",), "PUT"): _upload,
    (("artifacts",), "DELETE"): _delete,
    (("presigned",), "GET"): _presigned,
    (("mpu", "create"), "POST"): _mpu_create,
    (("mpu", "complete"), "POST"): _mpu_complete,
    (("mpu", "abort"), "POST"): _mpu_abort,
}


@mlflow_handler
def mlflow_artifacts(**params: str) -> Any:
    """Every ``/mlflow-artifacts/…`` request, whatever its depth."""
    request = artifact_api.current_request
    segments = [params[f"p{i}"] for i in range(1, len(params) + 1)]
    for (head, method), operation in _OPERATIONS.items():
        if request.method == method and tuple(segments[:len(head)]) == head:
            return operation(request, path_from_segments(segments[len(head):]))
    raise MlflowError(f"No endpoint {request.method} {request.context.get('path', '')}", "ENDPOINT_NOT_FOUND")


def server_info() -> dict[str, Any]:
    """What the client probes (mlflow/utils/server_info.py) before choosing multipart transfers."""
    return {
        "store_type": None,
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        **ArtifactService.capabilities(),
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


def _register_routes() -> None:
    for prefix in _PREFIXES:
        for depth in range(1, MAX_DEPTH + 1):
            params = "/".join(f"{{p{i}}}" for i in range(1, depth + 1))
            artifact_api.route(f"{prefix}/{params}", methods=_METHODS, content_types=["*/*"])(mlflow_artifacts)
    for api in ("api", "ajax-api"):
        artifact_api.route(f"/{api}/3.0/mlflow/server-info", methods=["GET"])(server_info)


_register_routes()
