"""STAC API at /stac: parse the request, call chalicelib.stac.api, shape the response."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable
from urllib.parse import unquote

from chalice import Blueprint, Response

from .. import services
from ..bounds import InputBoundError, load_json
from ..stac import api
from ..stac.errors import InvalidParameter, StacApiError
from .cors import PreflightRoutes
from .urls import base_url

stac_api = Blueprint(__name__)
_cors = PreflightRoutes(stac_api)  # routes with their CORS preflight (OPTIONS)


# POST /search: clients send JSON under several media types; Chalice rejects unlisted ones.
_BODY_TYPES = ["application/json", "application/geo+json", "application/query+json", "text/plain"]


def _api() -> api.StacApi:
    return services.stac_api()


def _base() -> str:
    return base_url(stac_api.current_request) + "/stac"


def _params() -> dict[str, list[str]]:
    query = stac_api.current_request.query_params
    return {key: query.getlist(key) for key in query} if query else {}


def _segment(value: str) -> str:
    # API Gateway decodes path parameters, Chalice's local server does not; ids never hold "%".
    return unquote(value)


def _respond(media_type: str) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Render the handler's document as ``media_type``; STAC API errors as {code, description}."""
    def wrap(handler: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Response:
            try:
                doc = handler(*args, **kwargs)
            except StacApiError as err:
                return Response(body=err.to_json(), status_code=err.status,
                                headers={"Content-Type": api.JSON})
            # Item pages come serialised already (spliced from stored bytes): passed through as is.
            body = doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
            return Response(body=body, status_code=200, headers={"Content-Type": media_type})
        return run
    return wrap


@_cors.route("/", methods=["GET"])
@_respond(api.JSON)
def landing_page() -> dict[str, Any]:
    return api.landing_page(_base())


@_cors.route("/api", methods=["GET"])
@_respond(api.OPENAPI)
def service_desc() -> dict[str, Any]:
    return api.openapi(_base())


@_cors.route("/conformance", methods=["GET"])
@_respond(api.JSON)
def conformance() -> dict[str, Any]:
    return api.conformance()


@_cors.route("/collections", methods=["GET"])
@_respond(api.JSON)
def collections() -> dict[str, Any]:
    return _api().collections(_base())


@_cors.route("/collections/{collection_id}", methods=["GET"])
@_respond(api.JSON)
def collection(collection_id: str) -> dict[str, Any]:
    return _api().collection(_base(), _segment(collection_id))


@_cors.route("/collections/{collection_id}/items", methods=["GET"])
@_respond(api.GEOJSON)
def items(collection_id: str) -> str:
    return _api().items(_base(), _segment(collection_id), _params())


@_cors.route("/collections/{collection_id}/items/{item_id}", methods=["GET"])
@_respond(api.GEOJSON)
def item(collection_id: str, item_id: str) -> dict[str, Any]:
    return _api().item(_base(), _segment(collection_id), _segment(item_id))


@_cors.route("/search", methods=["GET"])
@_respond(api.GEOJSON)
def search_get() -> str:
    return _api().search_get(_base(), _params())


@_cors.route("/search", methods=["POST"], content_types=_BODY_TYPES)
@_respond(api.GEOJSON)
def search_post() -> str:
    raw = stac_api.current_request.raw_body or b""
    try:
        body = load_json(raw) if raw.strip() else {}
    except InputBoundError as err:
        raise InvalidParameter(str(err)) from None
    return _api().search_post(_base(), body)


@_cors.route("/queryables", methods=["GET"])
@_respond(api.SCHEMA_JSON)
def queryables() -> dict[str, Any]:
    return _api().queryables(_base(), None)


@_cors.route("/collections/{collection_id}/queryables", methods=["GET"])
@_respond(api.SCHEMA_JSON)
def collection_queryables(collection_id: str) -> dict[str, Any]:
    return _api().queryables(_base(), _segment(collection_id))
