"""The request edge of access control: credentials in, a ``Principal`` out, refusals rendered.

Credentials, in this order: ``Authorization: Bearer <token>`` (the mlflow client's
``MLFLOW_TRACKING_TOKEN``), ``Authorization: Basic`` with the token as password
(``MLFLOW_TRACKING_USERNAME/PASSWORD``), ``PRIVATE-TOKEN: <token>``, the session cookie of a browser
sign-in. A cookie-authenticated write must come from the service's own origin (``Origin``, else
``Referer``), on top of the cookie's ``SameSite=Lax``: a cross-site form or fetch cannot borrow it.

Every route family calls ``caller()``, ``read_scope()`` or ``require(project, action)``; the caller
is authenticated once per request. Refusals are ``AuthError``s that each protocol's wrapper renders
(``mlflow_error``, ``stac_error``), with ``WWW-Authenticate`` on 401. Nothing here logs a token.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from typing import Any, Callable
from urllib.parse import urlsplit

from chalice import Blueprint, Response

from .. import services
from ..auth.access import Action, Principal, ReadScope
from ..auth.errors import AuthError, Forbidden, Unauthenticated
from ..auth.service import Credentials
from .urls import base_url

log = logging.getLogger("stacflow.auth")

# The sign-in routes (``http.signin``) live on this blueprint, registered at /auth by app.py; the
# functions below read the current request through it.
auth_api = Blueprint(__name__)

COOKIE = "stacflow_session"
REALM = 'Bearer realm="stacflow"'
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL = "_stacflow_principal"  # where a request keeps its caller once known


def current_request() -> Any:
    return auth_api.current_request


# -- credentials ----------------------------------------------------------------------------
# GitLab tokens (personal, project, OAuth) are short printable ASCII; anything else is refused before
# it costs a GitLab call or a cache entry (and before an HTTP client refuses to send it).
_TOKEN = re.compile(r"[\x21-\x7e]{1,512}")


def credentials(request: Any) -> Credentials | None:
    found = _credentials({k.lower(): v for k, v in (request.headers or {}).items()})
    return checked(found.token, via_cookie=found.via_cookie) if found is not None else None


def checked(token: str, *, via_cookie: bool = False) -> Credentials:
    """``token`` as credentials, if it has a GitLab token's shape (else 401, nothing asked of GitLab)."""
    if not _TOKEN.fullmatch(token):
        raise Unauthenticated("malformed token: a GitLab token is printable ASCII, at most 512 characters")
    return Credentials(token, via_cookie)


def _credentials(headers: dict[str, str]) -> Credentials | None:
    authorization = (headers.get("authorization") or "").strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return Credentials(value)
        if scheme.lower() == "basic" and value:
            try:
                _, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("malformed Basic credentials") from None
            if password:
                return Credentials(password)
        raise Unauthenticated("unsupported Authorization header: send 'Bearer <GitLab token>'")
    private = (headers.get("private-token") or "").strip()
    if private:
        return Credentials(private)
    sealed = cookie(headers.get("cookie"), COOKIE)
    if sealed:
        doc = session_codec().open(sealed)
        if doc is None:
            raise Unauthenticated("the session has expired: sign in again")
        return Credentials(doc["t"], via_cookie=True)
    return None


def cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value.strip('"')
    return None


# -- the three functions every route family uses ------------------------------------------------
def caller() -> Principal:
    """The caller of the current request, authenticated once per request."""
    request = current_request()
    known = getattr(request, PRINCIPAL, None)
    if known is not None:
        return known
    principal = services.access().authenticate(credentials(request) if services.access().enabled else None)
    if principal.via_cookie and request.method.upper() not in _SAFE_METHODS:
        check_origin(request)
    setattr(request, PRINCIPAL, principal)
    return principal


def read_scope() -> ReadScope:
    return services.access().read_scope(caller())


def require(project: str | None, action: Action) -> None:
    services.access().require(caller(), project, action)


def readable() -> Callable[[str | None], bool]:
    """A predicate on owning projects, for filtering a search before it pages."""
    return services.access().readable(caller())


def check_origin(request: Any) -> None:
    """A cookie-authenticated write must name the service's own origin (CSRF)."""
    headers = {k.lower(): v for k, v in (request.headers or {}).items()}
    claimed = headers.get("origin") or headers.get("referer") or ""
    if not claimed or _origin(claimed) != _origin(base_url(request)):
        raise Forbidden("cross-site request refused: a write signed in by cookie must come from this service's pages")


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.scheme and parts.netloc else ""


# -- refusals in each protocol's format -----------------------------------------------------------
def challenge(err: AuthError) -> dict[str, str]:
    return {"WWW-Authenticate": REALM} if err.status == 401 else {}


def mlflow_error(err: AuthError) -> Response:
    return Response(body=json.dumps({"error_code": err.code, "message": err.message}), status_code=err.status,
                    headers={"Content-Type": "application/json", **challenge(err)})


_STAC_CODES = {401: "Unauthorized", 403: "Forbidden", 503: "ServiceUnavailable"}


def stac_error(err: AuthError) -> Response:
    body = {"code": _STAC_CODES.get(err.status, "ServerError"), "description": err.message}
    return Response(body=json.dumps(body), status_code=err.status,
                    headers={"Content-Type": "application/json", **challenge(err)})


# -- the session cookie ---------------------------------------------------------------------------
_codec_lock = threading.Lock()
_codecs: dict[bytes, Any] = {}


def session_codec() -> Any:
    """The codec of the configured session key (``STACFLOW_SESSION_KEY``, else ``STACFLOW_SIGNING_KEY``)."""
    from ..auth.session import SessionCodec
    secret = _session_secret()
    with _codec_lock:
        codec = _codecs.get(secret)
        if codec is None:
            codec = _codecs[secret] = SessionCodec(secret)
        return codec


_process_secret: bytes | None = None


def _session_secret() -> bytes:
    global _process_secret
    cfg = services.settings()
    configured = cfg.session_key or cfg.signing_key
    if configured:
        return configured.encode()
    if _process_secret is None:
        import secrets
        log.warning("no STACFLOW_SESSION_KEY or STACFLOW_SIGNING_KEY: browser sessions last only as long "
                    "as this process and are not shared with other servers")
        _process_secret = secrets.token_bytes(32)
    return _process_secret


def session_cookie(request: Any, value: str, max_age: int, name: str = COOKIE) -> str:
    """``Set-Cookie`` value: HttpOnly, SameSite=Lax, Secure except for plain-http loopback development."""
    secure = "" if _plain_loopback(base_url(request)) else "; Secure"
    return f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"


def _plain_loopback(url: str) -> bool:
    import ipaddress
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- start-up ---------------------------------------------------------------------------------------
def announce() -> None:
    """Say loudly, once per process start, when nothing is protected."""
    # Chalice caps its app logger ("stacflow") at ERROR unless debug; ours must not inherit that.
    log.setLevel(logging.INFO)
    cfg = services.settings()
    if cfg.auth_enabled:
        log.info("access control: GitLab at %s (anonymous read %s)", cfg.gitlab_url,
                 "on" if cfg.anonymous_read else "off")
        return
    log.warning("ACCESS CONTROL IS OFF (STACFLOW_AUTH=off): anyone who can reach this service may read, "
                "change and delete every experiment, model, artifact and item. Set STACFLOW_AUTH=gitlab "
                "for any deployment reachable by more than one person.")
