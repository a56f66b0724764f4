"""Request/response conventions of MLflow's REST API, shared by the tracking and registry blueprints.

GET requests carry their message as query parameters (repeated keys for lists); other
methods send JSON. Responses are proto-JSON dicts; failures are ``{"error_code", "message"}``.
"""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable

from chalice import Response

from ..auth.errors import AuthError
from ..bounds import InputBoundError, load_json
from ..store import InvalidKey
from ..store.errors import is_transient
from ..mlflowapi.errors import MlflowError

log = logging.getLogger("stacflow.mlflow")


def request_message(request: Any, repeated: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's message: JSON body, or query parameters (``repeated`` keys stay lists)."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        params = request.query_params or {}
        for key in params:
            values = params.getlist(key) if hasattr(params, "getlist") else [params[key]]
            out[key] = list(values) if key in repeated else values[-1]
        return out
    raw = request.raw_body or b""
    if not raw.strip():
        return {}
    try:
        body = load_json(raw)
    except InputBoundError as err:
        raise MlflowError(f"Malformed JSON request body: {err}", "MALFORMED_REQUEST") from None
    if not isinstance(body, dict):
        raise MlflowError("Request body must be a JSON object", "MALFORMED_REQUEST")
    return body


def mlflow_json(status: int, body: Any) -> Response:
    return mlflow_text(status, json.dumps(body, separators=(",", ":")))


def mlflow_text(status: int, text: str) -> Response:
    """A response whose JSON body is serialised already (a page spliced from its records' JSON)."""
    return Response(body=text, status_code=status, headers={"Content-Type": "application/json"})


def mlflow_handler(fn: Callable[..., Any]) -> Callable[..., Response]:
    """Shape the result as MLflow JSON; map domain errors to MLflow's error format, never a 500 for bad input."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            result = fn(*args, **kwargs)
        except MlflowError as err:
            return mlflow_json(err.status, err.to_wire())
        except AuthError as err:
            from .auth import mlflow_error
            return mlflow_error(err)
        except InvalidKey as err:
            return mlflow_json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": str(err)})
        except Exception as err:
            if is_transient(err):  # the store's failure, not the request's: the client retries 503s
                log.warning("store unavailable in %s: %s", fn.__name__, type(err).__name__, exc_info=True)
                out = mlflow_json(503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                                        "message": "the store is temporarily unavailable, retry"})
                out.headers["Retry-After"] = "1"
                return out
            log.exception("unhandled error in %s", fn.__name__)
            return mlflow_json(500, {"error_code": "INTERNAL_ERROR", "message": "internal error"})
        if isinstance(result, Response):
            return result
        return mlflow_json(200, result if result is not None else {})

    return wrapper


MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")  # the client's API and the UI's


def mlflow_route(blueprint: Any, path: str, *methods: str) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Register ``fn`` (wrapped by ``mlflow_handler``) at ``path`` under both MLflow API prefixes."""
    def register(fn: Callable[..., Any]) -> Callable[..., Response]:
        handler = mlflow_handler(fn)
        for i, prefix in enumerate(MLFLOW_PREFIXES):
            blueprint.route(prefix + path, methods=list(methods), name=f"{fn.__name__}_{i}")(handler)
        return handler
    return register
