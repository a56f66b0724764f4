"""``/files/{token}``: the local store's stand-in for S3 presigned URLs (GET, PUT, multipart parts).

GET honours a single ``Range: bytes=…`` as S3 does: MLflow's client downloads big
artifacts in parallel ranged chunks from the presigned URL.
"""
from __future__ import annotations

import re

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
    headers: dict[str, str | list[str]] = {"Content-Type": "application/octet-stream", "ETag": obj.etag,
                                           "Accept-Ranges": "bytes"}
    try:
        wanted = _byte_range(files_api.current_request.headers.get("range"), len(obj.body))
    except _Unsatisfiable:
        return Response(body={"message": "range not satisfiable"}, status_code=416,
                        headers={"Content-Range": f"bytes */{len(obj.body)}"})
    if wanted is None:
        return Response(body=obj.body, status_code=200, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{len(obj.body)}"
    return Response(body=obj.body[start:end + 1], status_code=206, headers=headers)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Unsatisfiable(Exception):
    pass


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range header; None to send it all."""
    match = _RANGE.match((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None  # absent, multi-range or malformed: RFC 9110 lets us ignore it
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        raise _Unsatisfiable(header)
    return start, end


@files_api.route("/{token}", methods=["PUT"], content_types=["*/*"])
def put_signed(token: str) -> Response:
    claims = _claims(token, "PUT")
    if isinstance(claims, Response):
        return claims
    st = services.store()
    raw = files_api.current_request.raw_body or b""
    body = raw if isinstance(raw, bytes) else raw.encode()
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
