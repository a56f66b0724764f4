"""Browser sign-in at /auth: a GitLab token (form) or GitLab OAuth, kept in an encrypted session cookie.

``GET /auth/login`` sends the browser to GitLab's ``/oauth/authorize`` when an OAuth application is
configured (``STACFLOW_OAUTH_CLIENT_ID/SECRET``, redirect URI ``<service>/auth/callback``), else (or
with ``?form=1``) shows a token form; ``POST /auth/login`` checks the token with GitLab before the
cookie is set. ``GET /auth/callback`` checks the OAuth ``state`` against a short-lived cookie, trades
the code for a token, and sets the session. ``POST /auth/logout`` ends it. ``GET /auth/whoami`` tells
a page who is signed in. The session cookie is HttpOnly, SameSite=Lax and Secure (except for plain
http on a loopback address, for local development); its value is the token, encrypted and
authenticated (``auth.session``), never readable by scripts or other sites.
"""
from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import parse_qs

from chalice import Response

from .. import services
from ..auth.errors import AuthError
from ..auth.service import Credentials
from ..auth.session import SESSION_TTL
from .auth import COOKIE, auth_api, caller, check_origin, checked, cookie, mlflow_error, session_codec, session_cookie
from .urls import base_url

__all__ = ["auth_api"]

STATE_COOKIE = "stacflow_oauth"
_STATE_TTL = 600  # seconds a browser has to come back from GitLab
_FORM = ["application/x-www-form-urlencoded", "multipart/form-data"]


def _page(title: str, body: str, status: int = 200, headers: dict[str, Any] | None = None) -> Response:
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
           f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return Response(body=doc, status_code=status, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
        **(headers or {})})


def _next(value: str | None) -> str:
    """Where to go after sign-in: a path on this service only (no open redirect)."""
    text = (value or "").strip()
    if not text.startswith("/") or text.startswith("//") or "\\" in text or any(ord(c) < 32 for c in text):
        return "/"
    return text


def _redirect(location: str, cookies: list[str]) -> Response:
    return Response(body="", status_code=303, headers={"Location": location, "Cache-Control": "no-store",
                                                        "Set-Cookie": cookies})


def _form(message: str = "", next_path: str = "/", status: int = 200) -> Response:
    note = f"<p role='alert'>{html.escape(message)}</p>" if message else ""
    oauth = services.settings().oauth_client_id
    alt = f"<p><a href='login?next={html.escape(next_path)}'>Sign in with GitLab</a></p>" if oauth else ""
    return _page("Sign in", note + alt + (
        "<form method='post' action='login'>"
        "<label>GitLab access token <input type='password' name='token' autocomplete='off' required></label>"
        f"<input type='hidden' name='next' value='{html.escape(next_path)}'>"
        "<button type='submit'>Sign in</button></form>"
        "<p>A personal, project or group access token with the <code>read_api</code> scope.</p>"), status)


@auth_api.route("/login", methods=["GET"])
def login_page() -> Response:
    request = auth_api.current_request
    query: dict[str, str] = dict(request.query_params or {})
    next_path = _next(query.get("next"))
    cfg, access = services.settings(), services.access()
    if not access.enabled:
        return _page("Sign-in is off", "<p>Access control is off (STACFLOW_AUTH=off): no sign-in is needed.</p>")
    if cfg.oauth_client_id and cfg.oauth_client_secret and access.gitlab is not None and not query.get("form"):
        state = secrets.token_urlsafe(24)
        sealed = session_codec().seal(state, next=next_path)
        target = access.gitlab.authorize_url(cfg.oauth_client_id, base_url(request) + "/auth/callback", state)
        return Response(body="", status_code=302, headers={
            "Location": target, "Cache-Control": "no-store",
            "Set-Cookie": session_cookie(request, sealed, _STATE_TTL, STATE_COOKIE)})
    return _form(next_path=next_path)


@auth_api.route("/login", methods=["POST"], content_types=_FORM)
def login() -> Response:
    request = auth_api.current_request
    access = services.access()
    if not access.enabled:
        return _page("Sign-in is off", "<p>Access control is off: no sign-in is needed.</p>", 404)
    raw = request.raw_body or b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        form = {k: v[-1] for k, v in parse_qs(text, max_num_fields=16).items()}
    except ValueError:  # more fields than a sign-in form has: no work spent on it
        return _form("Malformed form.", _next(None), 400)
    next_path = _next(form.get("next"))
    try:
        check_origin(request)  # no login CSRF: only this service's own form may sign a browser in
        token = form.get("token", "").strip()
        if not token:
            return _form("Enter a GitLab access token.", next_path, 400)
        access.authenticate(checked(token))
    except AuthError as err:
        return _form(err.message, next_path, err.status)
    return _redirect(next_path, [session_cookie(request, session_codec().seal(token), SESSION_TTL)])


@auth_api.route("/callback", methods=["GET"])
def callback() -> Response:
    request = auth_api.current_request
    cfg, access = services.settings(), services.access()
    query: dict[str, str] = dict(request.query_params or {})
    sealed = cookie(request.headers.get("cookie"), STATE_COOKIE)
    state = session_codec().open(sealed) if sealed else None
    clear_state = f"{STATE_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    if (access.gitlab is None or not cfg.oauth_client_id or not cfg.oauth_client_secret or state is None
            or not secrets.compare_digest(str(query.get("state") or ""), state["t"]) or not query.get("code")):
        return _page("Sign-in failed", "<p>The sign-in could not be verified. <a href='login'>Try again</a>.</p>",
                     400, {"Set-Cookie": [clear_state]})
    try:
        token = access.gitlab.exchange_code(cfg.oauth_client_id, cfg.oauth_client_secret, str(query["code"]),
                                            base_url(request) + "/auth/callback")
        access.authenticate(Credentials(token))
    except AuthError as err:
        return _page("Sign-in failed", f"<p>{html.escape(err.message)}</p>", err.status,
                     {"Set-Cookie": [clear_state]})
    return _redirect(_next(state.get("next")),
                     [clear_state, session_cookie(request, session_codec().seal(token), SESSION_TTL)])


@auth_api.route("/logout", methods=["GET"])
def logout_page() -> Response:
    return _page("Sign out", "<form method='post' action='logout'><button type='submit'>Sign out</button></form>")


@auth_api.route("/logout", methods=["POST"], content_types=_FORM + ["application/json"])
def logout() -> Response:
    request = auth_api.current_request
    try:
        check_origin(request)
    except AuthError as err:
        return mlflow_error(err)
    return _redirect("/auth/login?form=1", [f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"])


@auth_api.route("/whoami", methods=["GET"])
def whoami() -> Response:
    import json
    try:
        who = caller()
    except AuthError as err:
        return mlflow_error(err)
    body = {"auth": services.settings().auth, "authenticated": who.authenticated, "username": who.username,
            "session": who.via_cookie}
    return Response(body=json.dumps(body), status_code=200,
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store"})
