"""``/files/{token}``: the local store's stand-in for S3 presigned URLs (GET, PUT, multipart parts)."""
from __future__ import annotations

from chalice import Blueprint, Response

from .. import services
from ..store import NotFound, StoreError

files_api = Blueprint(__name__)


def _claims(token: str, method: str) -> dict[str, object] | Response:
    st = services.store()
    verify = getattr(st, "verify", None)
    if verify is None:
        return Response(body={"message": "signed URLs are S3's on this store"}, status_code=404)
    try:
        claims = verify(token)
    except PermissionError as err:
        return Response(body={"message": str(err)}, status_code=403)
    if claims.get("m") != method:
        return Response(body={"message": f"signature is not valid for {method}"}, status_code=403)
    return claims


@files_api.route("/{token}", methods=["GET"])
def get_signed(token: str) -> Response:
    claims = _claims(token, "GET")
    if isinstance(claims, Response):
        return claims
    try:
        obj = services.store().get(str(claims["k"]))
    except NotFound:
        return Response(body={"message": "no such object"}, status_code=404)
    return Response(body=obj.body, status_code=200,
                    headers={"Content-Type": "application/octet-stream", "ETag": obj.etag})


@files_api.route("/{token}", methods=["PUT"], content_types=["application/octet-stream", "*/*"])
def put_signed(token: str) -> Response:
    claims = _claims(token, "PUT")
    if isinstance(claims, Response):
        return claims
    st = services.store()
    body = files_api.current_request.raw_body or b""
    try:
        if "u" in claims:
            etag = st.upload_part(str(claims["k"]), str(claims["u"]), int(claims["p"]), body)  # type: ignore[attr-defined, call-overload]
        else:
            etag = st.put(str(claims["k"]), body).etag
    except NotFound as err:
        return Response(body={"message": str(err)}, status_code=404)
    except StoreError as err:
        return Response(body={"message": str(err)}, status_code=400)
    return Response(body="", status_code=200, headers={"ETag": etag})
