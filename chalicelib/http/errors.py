"""Errors outside any one route, in the shape of the API the path belongs to.

Under ``/mlflow`` MLflow's ``{"error_code", "message"}`` (its client and UI read that), everywhere
else the STAC/OGC ``{"code", "description"}``. Used for paths no route matches (``stacflow serve``;
on AWS API Gateway answers those itself, see README "Web UI") and for the static UIs' errors.
"""
from __future__ import annotations

import json

from ..mlflowapi.errors import MlflowError
from ..stac.errors import InvalidParameter, NotFoundError, StacApiError

JSON = "application/json"


def error_body(path: str, status: int, message: str, *, route: bool = False) -> str:
    """The body of an error ``status`` (400 or 404) for ``path``; ``route``: no route matched at all."""
    if path == "/mlflow" or path.startswith("/mlflow/"):
        code = ("ENDPOINT_NOT_FOUND" if route else "RESOURCE_DOES_NOT_EXIST") if status == 404 \
            else "INVALID_PARAMETER_VALUE"
        return json.dumps(MlflowError(message, code).to_wire())
    err: StacApiError = NotFoundError(message) if status == 404 else InvalidParameter(message)
    return json.dumps(err.to_json())


def no_route(path: str) -> bytes:
    return error_body(path, 404, f"no resource at {path[:200]!r}", route=True).encode()
