"""Browser sign-in: the token form, GitLab OAuth (authorization code) against the fake GitLab, logout,
and the session cookie's attributes."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from chalicelib.auth.gitlab import GitLabApi
from chalicelib.auth.service import AccessService
from chalicelib.http.auth import COOKIE
from chalicelib.http.signin import STATE_COOKIE
from chalicelib.settings import Settings
from tests.helpers.access_world import AccessWorld, build_world
from tests.helpers.fake_gitlab import FakeGitLab

HTTPS = "https://stacflow.example"
LOOPBACK = "http://127.0.0.1:8000"
CLIENT_ID, CLIENT_SECRET = "app-id", "app-secret"


@pytest.fixture(scope="module")
def world() -> Iterator[AccessWorld]:
    with FakeGitLab() as gl:
        yield build_world(gl)


def _configure(world: AccessWorld, store: Any, public_url: str, oauth: bool = False) -> None:
    cfg = Settings(store_uri=store.uri, public_url=public_url, dispatch_events=False, auth="gitlab",
                   gitlab_url=world.gl.url, signing_key="s" * 32,
                   oauth_client_id=CLIENT_ID if oauth else None, oauth_client_secret=CLIENT_SECRET if oauth else None)
    services.configure(store=store, settings=cfg, access=AccessService(GitLabApi(world.gl.url, 2.0)))


@pytest.fixture
def client(local_store: Any) -> Iterator[Client]:
    with Client(app) as c:
        yield c
    services.configure()


def _cookies(resp: Any) -> list[str]:
    value = {k.lower(): v for k, v in resp.headers.items()}.get("set-cookie", [])
    return value if isinstance(value, list) else [value]


def _cookie_value(resp: Any, name: str) -> str:
    for header in _cookies(resp):
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {_cookies(resp)}")


def _login(client: Client, token: str, origin: str, next_path: str = "/stac") -> Any:
    return client.http.post("/auth/login", body=urlencode({"token": token, "next": next_path}),
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": origin})


def _whoami(client: Client, cookie: str) -> dict[str, Any]:
    return json.loads(client.http.get("/auth/whoami", headers={"Cookie": f"{COOKIE}={cookie}"}).body)


@pytest.mark.parametrize("public_url, secure", [(HTTPS, True), (LOOPBACK, False)])
def test_the_token_form_signs_in_with_a_secure_httponly_samesite_cookie(
        client: Client, world: AccessWorld, local_store: Any, public_url: str, secure: bool) -> None:
    _configure(world, local_store, public_url)
    page = client.http.get("/auth/login")
    assert page.status_code == 200
    assert b"name='token'" in page.body
    resp = _login(client, world.tokens["developer"] or "", public_url)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/stac"
    [header] = _cookies(resp)
    attributes = {part.strip().split("=")[0] for part in header.split(";")[1:]}
    assert {"HttpOnly", "SameSite", "Path", "Max-Age"} <= attributes
    assert "SameSite=Lax" in header
    assert ("Secure" in attributes) is secure
    assert (world.tokens["developer"] or "") not in header
    assert _whoami(client, _cookie_value(resp, COOKIE))["username"] == "developer"


def test_a_bad_token_sets_no_cookie(client: Client, world: AccessWorld, local_store: Any) -> None:
    _configure(world, local_store, HTTPS)
    resp = _login(client, "glpat-wrong", HTTPS)
    assert resp.status_code == 401
    assert _cookies(resp) == []
    assert b"glpat-wrong" not in resp.body


def test_a_malformed_form_costs_no_gitlab_call(client: Client, world: AccessWorld, local_store: Any) -> None:
    _configure(world, local_store, HTTPS)
    asked = len(world.gl.requests)
    resp = _login(client, "t" * 10_000, HTTPS)
    assert resp.status_code == 401
    assert _cookies(resp) == []
    many = "&".join(f"f{i}=x" for i in range(10_000))
    resp = client.http.post("/auth/login", body=many,
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": HTTPS})
    assert resp.status_code == 400
    assert len(world.gl.requests) == asked


def test_a_cross_site_form_cannot_sign_a_browser_in(client: Client, world: AccessWorld, local_store: Any) -> None:
    _configure(world, local_store, HTTPS)
    resp = _login(client, world.tokens["developer"] or "", "https://evil.example")
    assert resp.status_code == 403
    assert _cookies(resp) == []


@pytest.mark.parametrize("next_path", ["//evil.example/x", "https://evil.example", "/\\evil", "javascript:x"])
def test_sign_in_never_redirects_off_site(client: Client, world: AccessWorld, local_store: Any, next_path: str) -> None:
    _configure(world, local_store, HTTPS)
    assert _login(client, world.tokens["guest"] or "", HTTPS, next_path).headers["Location"] == "/"


def _follow_gitlab(url: str) -> str:
    """The browser's visit to GitLab's authorize page: the redirect back to the service."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=5)
    except urllib.error.HTTPError as err:
        assert err.code == 302
        return str(err.headers["Location"])
    raise AssertionError("GitLab did not redirect")


def test_gitlab_oauth_signs_in_with_the_authorization_code(client: Client, world: AccessWorld, local_store: Any) -> None:
    _configure(world, local_store, HTTPS, oauth=True)
    world.gl.add_oauth_app(CLIENT_ID, CLIENT_SECRET, f"{HTTPS}/auth/callback")
    world.gl.oauth_user = "maintainer"
    start = client.http.get("/auth/login?next=/mlflow")
    assert start.status_code == 302
    assert start.headers["Location"].startswith(world.gl.url + "/oauth/authorize?")
    state_cookie = _cookie_value(start, STATE_COOKIE)
    back = urlsplit(_follow_gitlab(start.headers["Location"]))
    assert back.path == "/auth/callback"
    done = client.http.get(f"/auth/callback?{back.query}", headers={"Cookie": f"{STATE_COOKIE}={state_cookie}"})
    assert done.status_code == 303
    assert done.headers["Location"] == "/mlflow"
    assert _whoami(client, _cookie_value(done, COOKIE))["username"] == "maintainer"


@pytest.mark.parametrize("tamper", ["state", "no-cookie", "code"])
def test_an_oauth_callback_that_does_not_match_its_start_is_refused(
        client: Client, world: AccessWorld, local_store: Any, tamper: str) -> None:
    _configure(world, local_store, HTTPS, oauth=True)
    world.gl.add_oauth_app(CLIENT_ID, CLIENT_SECRET, f"{HTTPS}/auth/callback")
    world.gl.oauth_user = "developer"
    start = client.http.get("/auth/login")
    query = parse_qs(urlsplit(_follow_gitlab(start.headers["Location"])).query)
    code, state = query["code"][0], query["state"][0]
    if tamper == "state":
        state = "forged"
    if tamper == "code":
        code = "forged"
    headers = {} if tamper == "no-cookie" else {"Cookie": f"{STATE_COOKIE}={_cookie_value(start, STATE_COOKIE)}"}
    done = client.http.get(f"/auth/callback?{urlencode({'code': code, 'state': state})}", headers=headers)
    assert done.status_code in (400, 401)
    assert not [c for c in _cookies(done) if c.startswith(COOKIE + "=") and "Max-Age=0" not in c]


def test_logout_clears_the_session(client: Client, world: AccessWorld, local_store: Any) -> None:
    _configure(world, local_store, HTTPS)
    resp = client.http.post("/auth/logout", body="", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                               "Origin": HTTPS})
    assert resp.status_code == 303
    [header] = _cookies(resp)
    assert header.startswith(f"{COOKIE}=;")
    assert "Max-Age=0" in header
