"""``/files/{token}``: the local store's stand-in for S3 presigned URLs (GET, PUT, multipart parts).

GET honours a single ``Range: bytes=…`` as S3 does (MLflow's client downloads big artifacts in
parallel ranged chunks from the presigned URL), and reads only the bytes it sends. ``stacflow
serve`` streams the answer of ``signed_get`` straight to the socket (local_server.py), whatever the
size; this Chalice route, which has to hand a whole body back (Lambda: 6 MB), sends at most
``PROXY_LIMIT`` bytes: a longer range is answered with its first ``PROXY_LIMIT`` bytes (a client
asks for the rest, RFC 9110 §15.3.7), a full GET of a bigger object with 413.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chalice import Blueprint, Response

from .. import services
from ..store import NotFound, ObjectReader, RangeNotSatisfiable, SignedUrls, StoreError
from ..tracking.artifacts import PROXY_LIMIT
from .cors import PreflightRoutes

files_api = Blueprint(__name__)
_cors = PreflightRoutes(files_api)  # routes with their CORS preflight (OPTIONS)


class _Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _signer() -> SignedUrls:
    signer = services.store().signed_urls
    if signer is None:
        raise _Denied(404, "signed URLs are S3's on this store")
    return signer


def _claims(token: str, method: str) -> dict[str, Any]:
    try:
        claims = _signer().verify(token)
    except PermissionError as err:
        raise _Denied(403, str(err)) from None
    if claims.get("m") != method:
        raise _Denied(403, f"signature is not valid for {method}")
    return claims


@dataclass
class SignedGet:
    """The answer to a signed GET: an error (``message``), or ``reader`` open on the bytes to send."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    reader: ObjectReader | None = None
    message: str | None = None

    @property
    def ranged(self) -> bool:
        return self.status == 206


def signed_get(token: str, range_header: str | None) -> SignedGet:
    """Verify ``token`` and open the object (only the requested range). Close ``reader`` when done."""
    try:
        claims = _claims(token, "GET")
    except _Denied as denied:
        return SignedGet(denied.status, message=denied.message)
    key = str(claims["k"])
    try:
        wanted = _byte_range(range_header)
        if wanted is None:
            reader = services.store().open(key)
        else:
            reader = services.store().open(key, start=wanted[0], length=wanted[1])
    except NotFound:
        return SignedGet(404, message="no such object")
    except RangeNotSatisfiable as err:
        return SignedGet(416, {"Content-Range": f"bytes */{err.size}"}, message="range not satisfiable")
    except _Unsatisfiable:  # bytes=-0, or last < first: unsatisfiable whatever the object
        try:
            size = services.store().head(key).size
        except NotFound:
            return SignedGet(404, message="no such object")
        return SignedGet(416, {"Content-Range": f"bytes */{size}"}, message="range not satisfiable")
    headers = {"Content-Type": "application/octet-stream", "ETag": reader.etag, "Accept-Ranges": "bytes"}
    if wanted is None or reader.size == 0:  # a suffix of an empty object is all of it
        return SignedGet(200, headers, reader)
    headers["Content-Range"] = content_range(reader.start, reader.length, reader.size)
    return SignedGet(206, headers, reader)


def content_range(start: int, length: int, size: int) -> str:
    return f"bytes {start}-{start + length - 1}/{size}"


# Up to 18 digits: byte offsets fit in 63 bits, and int() of a huge digit string is slow or refused.
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


class _Unsatisfiable(Exception):
    pass


def _byte_range(header: str | None) -> tuple[int, int | None] | None:
    """(start, length) for ``ObjectStore.open`` from a single-range header; None to send it all.

    A negative start is a suffix (the last N bytes).
    """
    match = _RANGE.match((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None  # absent, multi-range or malformed: RFC 9110 lets us ignore it
    first, last = match.groups()
    if first == "":
        if int(last) == 0:
            raise _Unsatisfiable(header)
        return -int(last), None
    if last == "":
        return int(first), None
    if int(last) < int(first):
        raise _Unsatisfiable(header)
    return int(first), int(last) - int(first) + 1


@_cors.route("/{token}", methods=["GET"])
def get_signed(token: str) -> Response:
    answer = signed_get(token, files_api.current_request.headers.get("range"))
    if answer.reader is None:
        return Response(body={"message": answer.message}, status_code=answer.status, headers=dict(answer.headers))
    headers: dict[str, Any] = dict(answer.headers)
    with answer.reader as reader:
        if reader.length <= PROXY_LIMIT:
            return Response(body=reader.read(), status_code=answer.status, headers=headers)
        if not answer.ranged:
            return Response(body={"message": f"the object has {reader.size} bytes, more than one response here "
                                             f"can carry ({PROXY_LIMIT}): request it in byte ranges"},
                            status_code=413, headers={"Accept-Ranges": "bytes"})
        headers["Content-Range"] = content_range(reader.start, PROXY_LIMIT, reader.size)
        return Response(body=reader.read(PROXY_LIMIT), status_code=206, headers=headers)


@_cors.route("/{token}", methods=["PUT"], content_types=["*/*"])
def put_signed(token: str) -> Response:
    try:
        claims = _claims(token, "PUT")
    except _Denied as denied:
        return Response(body={"message": denied.message}, status_code=denied.status)
    st = services.store()
    raw = files_api.current_request.raw_body or b""
    body = raw if isinstance(raw, bytes) else raw.encode()
    try:
        if "u" in claims:
            etag = _signer().upload_part(str(claims["k"]), str(claims["u"]), int(claims["p"]), body)
        else:
            etag = st.put(str(claims["k"]), body).etag
    except NotFound as err:
        return Response(body={"message": str(err)}, status_code=404)
    except StoreError as err:
        return Response(body={"message": str(err)}, status_code=400)
    return Response(body="", status_code=200, headers={"ETag": etag})
