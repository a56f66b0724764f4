"""STAC API at /stac: parse the request, call chalicelib.stac.api, shape the response."""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable
from urllib.parse import unquote

from chalice import Blueprint, Response

from .. import services
from ..auth.access import ReadScope
from ..auth.errors import AuthError
from ..bounds import InputBoundError, load_json
from ..stac import api
from ..stac.errors import InvalidParameter, PayloadTooLarge, StacApiError
from ..stac.transactions import MAX_BODY_BYTES, MAX_BODY_DEPTH, Caller, Transactions, Written, etag_header
from ..store.errors import is_transient
from . import auth
from .cors import PreflightRoutes
from .page_cache import shared_page
from .urls import base_url

stac_api = Blueprint(__name__)
_cors = PreflightRoutes(stac_api)  # routes with their CORS preflight (OPTIONS)
log = logging.getLogger(__name__)


# POST /search: clients send JSON under several media types; Chalice rejects unlisted ones.
_BODY_TYPES = ["application/json", "application/geo+json", "application/query+json", "text/plain"]


def _api() -> api.StacApi:
    return services.stac_api()


def _base() -> str:
    return base_url(stac_api.current_request) + "/stac"


def _scope() -> ReadScope:
    """What the caller may read (401 for an anonymous caller when anonymous read is off)."""
    return auth.read_scope()


def _caller() -> Caller:
    access = services.access()
    # With access control off an item keeps the visibility it states; with it on, GitLab's word wins.
    return Caller(scope=auth.read_scope(), require=auth.require,
                  visibility=access.visibility if access.enabled else lambda project: None)


def _transactions() -> Transactions:
    return Transactions(services.store())


def _header(name: str) -> str | None:
    value = stac_api.current_request.headers.get(name)
    return value if isinstance(value, str) else None


def _body(*, what: str = "the item") -> Any:
    raw = stac_api.current_request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"{what} is {len(raw)} bytes, over the limit of {MAX_BODY_BYTES}")
    try:
        return load_json(raw, what=what, max_bytes=MAX_BODY_BYTES, max_depth=MAX_BODY_DEPTH)
    except InputBoundError as err:
        raise InvalidParameter(str(err)) from None


def _written(written: Written, status: int, cid: str) -> Response:
    doc = api.api_item(_base(), written.item)
    headers: dict[str, str | list[str]] = {"Content-Type": api.GEOJSON, "ETag": etag_header(written.etag)}
    if status == 201:
        headers["Location"] = f"{_base()}/collections/{cid}/items/{written.item['id']}"
    return Response(body=json.dumps(doc, separators=(",", ":"), ensure_ascii=False), status_code=status,
                    headers=headers)


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
            except AuthError as err:
                return auth.stac_error(err)
            except Exception as err:
                if not is_transient(err):
                    raise
                # The store's failure, not the request's: a retryable answer, never a wrong one.
                log.warning("store unavailable: %s", type(err).__name__, exc_info=True)
                return Response(body=json.dumps({"code": "ServiceUnavailable",
                                                 "description": "the store is temporarily unavailable, retry"}),
                                status_code=503, headers={"Content-Type": api.JSON, "Retry-After": "1"})
            if isinstance(doc, Response):
                return doc
            # Item pages (spliced from stored bytes) and cached documents come serialised: passed through.
            body = doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
            return Response(body=body, status_code=200, headers={"Content-Type": media_type})
        return run
    return wrap


@_cors.route("/", methods=["GET"])
@shared_page
@_respond(api.JSON)
def landing_page() -> str:
    return api.landing_page_json(_base())


@_cors.route("/api", methods=["GET"])
@shared_page
@_respond(api.OPENAPI)
def service_desc() -> dict[str, Any]:
    return api.openapi(_base())


@_cors.route("/conformance", methods=["GET"])
@shared_page
@_respond(api.JSON)
def conformance() -> str:
    return api.conformance_json()


@_cors.route("/collections", methods=["GET"])
@_respond(api.JSON)
def collections() -> str:
    _scope()  # extents summarise public items only, but reading them is reading public data
    return _api().collections_json(_base())


@_cors.route("/collections/{collection_id}", methods=["GET"])
@_respond(api.JSON)
def collection(collection_id: str) -> str:
    _scope()
    return _api().collection_json(_base(), _segment(collection_id))


@_cors.route("/collections/{collection_id}/items", methods=["GET"])
@_respond(api.GEOJSON)
def items(collection_id: str) -> str:
    return _api().items(_base(), _segment(collection_id), _params(), _scope())


@_cors.route("/collections/{collection_id}/items/{item_id}", methods=["GET"])
@_respond(api.GEOJSON)
def item(collection_id: str, item_id: str) -> Response:
    doc, etag = _api().stored_item(_segment(collection_id), _segment(item_id), _scope())
    return Response(body=json.dumps(api.api_item(_base(), doc), separators=(",", ":"), ensure_ascii=False),
                    status_code=200, headers={"Content-Type": api.GEOJSON, "ETag": etag_header(etag)})


@_cors.route("/collections/{collection_id}/items/{item_id}/download", methods=["GET"])
@_respond(api.JSON)
def download(collection_id: str, item_id: str) -> Response:
    """Check the caller may read the item, then redirect to a short-lived presigned URL of the asset."""
    asset = next(iter(_params().get("asset") or []), None)
    if not asset:
        raise InvalidParameter("the asset parameter names the asset to download")
    url = _api().download(_segment(collection_id), _segment(item_id), asset, _scope(),
                          remotes=services.dataset_context().remote,
                          base_url=base_url(stac_api.current_request))
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@_cors.route("/collections/{collection_id}/geoparquet", methods=["GET"])
@_respond(api.JSON)
def geoparquet(collection_id: str) -> dict[str, Any]:
    """The collection's public items as a stac-geoparquet dataset: its partition files (one route
    each), for any caller who may read public data."""
    _scope()
    return _api().geoparquet(_base(), _segment(collection_id))


@_cors.route("/collections/{collection_id}/geoparquet/{part}", methods=["GET"])
@_respond(api.JSON)
def geoparquet_part(collection_id: str, part: str) -> Response:
    """One partition file: a redirect to a short-lived presigned URL (a file may exceed Lambda's 6 MB
    response)."""
    _scope()
    url = _api().geoparquet_part(_segment(collection_id), _segment(part), base_url=base_url(stac_api.current_request))
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@_cors.route("/collections/{collection_id}/items", methods=["POST"], content_types=_BODY_TYPES)
@_respond(api.GEOJSON)
def create_item(collection_id: str) -> Response:
    cid = _segment(collection_id)
    return _written(_transactions().create(cid, _body(), _caller()), 201, cid)


@_cors.route("/collections/{collection_id}/items/{item_id}", methods=["PUT"], content_types=_BODY_TYPES)
@_respond(api.GEOJSON)
def replace_item(collection_id: str, item_id: str) -> Response:
    cid = _segment(collection_id)
    return _written(_transactions().replace(cid, _segment(item_id), _body(), _caller(), _header("if-match")), 200, cid)


@_cors.route("/collections/{collection_id}/items/{item_id}", methods=["PATCH"],
                content_types=_BODY_TYPES + ["application/merge-patch+json"])
@_respond(api.GEOJSON)
def patch_item(collection_id: str, item_id: str) -> Response:
    cid = _segment(collection_id)
    return _written(_transactions().patch(cid, _segment(item_id), _body(what="the merge patch"), _caller(),
                                          _header("if-match")), 200, cid)


@_cors.route("/collections/{collection_id}/items/{item_id}", methods=["DELETE"])
@_respond(api.JSON)
def delete_item(collection_id: str, item_id: str) -> Response:
    _transactions().delete(_segment(collection_id), _segment(item_id), _caller(), _header("if-match"))
    return Response(body="", status_code=204)


@_cors.route("/search", methods=["GET"])
@_respond(api.GEOJSON)
def search_get() -> str:
    return _api().search_get(_base(), _params(), _scope())


@_cors.route("/search", methods=["POST"], content_types=_BODY_TYPES)
@_respond(api.GEOJSON)
def search_post() -> str:
    raw = stac_api.current_request.raw_body or b""
    try:
        body = load_json(raw) if raw.strip() else {}
    except InputBoundError as err:
        raise InvalidParameter(str(err)) from None
    return _api().search_post(_base(), body, _scope())


@_cors.route("/queryables", methods=["GET"])
@_respond(api.SCHEMA_JSON)
def queryables() -> dict[str, Any]:
    return _api().queryables(_base(), None, _scope())


@_cors.route("/collections/{collection_id}/queryables", methods=["GET"])
@_respond(api.SCHEMA_JSON)
def collection_queryables(collection_id: str) -> dict[str, Any]:
    return _api().queryables(_base(), _segment(collection_id), _scope())
