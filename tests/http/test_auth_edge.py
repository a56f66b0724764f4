"""The request edge: credential forms, 401 challenges, sessions sealed in cookies, CSRF on cookie writes."""
from __future__ import annotations

import base64
import json
from typing import Any, Iterator

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from chalicelib.auth.gitlab import GitLabApi
from chalicelib.auth.service import AccessService
from chalicelib.http.auth import COOKIE, session_codec
from chalicelib.settings import Settings
from tests.helpers.access_world import AccessWorld, build_world
from tests.helpers.fake_gitlab import FakeGitLab

ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def world() -> Iterator[AccessWorld]:
    with FakeGitLab() as gl:
        yield build_world(gl)


@pytest.fixture
def client(world: AccessWorld, local_store: Any) -> Iterator[Client]:
    cfg = Settings(store_uri=local_store.uri, public_url=ORIGIN, dispatch_events=False, auth="gitlab",
                   gitlab_url=world.gl.url, gitlab_token=world.gl.token, signing_key="s" * 32)
    services.configure(store=local_store, settings=cfg,
                       access=AccessService(GitLabApi(world.gl.url, 2.0), service_token=world.gl.token))
    with Client(app) as c:
        yield c
    services.configure()


def _whoami(client: Client, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    resp = client.http.get("/auth/whoami", headers=headers)
    return resp.status_code, json.loads(resp.body), {k.lower(): v for k, v in resp.headers.items()}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("form", ["bearer", "private-token", "basic", "cookie"])
def test_every_credential_form_names_the_caller(client: Client, world: AccessWorld, form: str) -> None:
    token = world.tokens["developer"] or ""
    headers = {"bearer": {"Authorization": f"Bearer {token}"}, "private-token": {"PRIVATE-TOKEN": token},
               "basic": {"Authorization": _basic("anyone", token)},
               "cookie": {"Cookie": f"other=1; {COOKIE}={session_codec().seal(token)}"}}[form]
    status, body, _ = _whoami(client, headers)
    assert status == 200
    assert body["username"] == "developer"
    assert body["session"] is (form == "cookie")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer glpat-wrong"}, {"PRIVATE-TOKEN": "glpat-wrong"},
                                     {"Authorization": "Basic !!!"}, {"Authorization": "Digest x"},
                                     {"Cookie": f"{COOKIE}=forged-value"}])
def test_bad_credentials_get_401_with_a_challenge_and_no_echo(client: Client, headers: dict[str, str]) -> None:
    status, body, resp_headers = _whoami(client, headers)
    assert status == 401
    assert body["error_code"] == "UNAUTHENTICATED"
    assert resp_headers["www-authenticate"].startswith("Bearer")
    assert "wrong" not in body["message"]
    assert "forged" not in body["message"]


@pytest.mark.parametrize("token", ["x" * 513, "glpat-\u00e9t\u00e9", "glpat-\u20ac", "tab\tinside"])
def test_a_malformed_token_is_refused_without_asking_gitlab(client: Client, world: AccessWorld, token: str) -> None:
    asked = len(world.gl.requests)
    for headers in ({"Authorization": f"Bearer {token}"}, {"PRIVATE-TOKEN": token},
                    {"Authorization": _basic("u", token)}):
        status, body, _ = _whoami(client, headers)
        assert status == 401
        assert body["error_code"] == "UNAUTHENTICATED"
    assert len(world.gl.requests) == asked


def test_a_tampered_session_cookie_is_no_session(client: Client, world: AccessWorld) -> None:
    sealed = session_codec().seal(world.tokens["maintainer"] or "")
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    assert _whoami(client, {"Cookie": f"{COOKIE}={tampered}"})[0] == 401


def test_the_sealed_cookie_does_not_hold_the_token_in_clear(world: AccessWorld) -> None:
    services.configure(settings=Settings(store_uri="file:///tmp/x", public_url=None, dispatch_events=False,
                                         signing_key="k" * 32))
    token = world.tokens["guest"] or ""
    sealed = session_codec().seal(token)
    assert token not in sealed
    assert token not in base64.urlsafe_b64decode(sealed + "==").decode("latin-1")
    assert session_codec().open(sealed) == {"t": token}
    services.configure()


def test_anonymous_callers_are_known_as_such(client: Client) -> None:
    status, body, _ = _whoami(client, {})
    assert status == 200
    assert body["authenticated"] is False


def test_gitlab_down_is_503(client: Client, world: AccessWorld) -> None:
    world.gl.fail("/api/v4/user", 500, times=1)
    status, body, _ = _whoami(client, {"Authorization": f"Bearer {world.tokens['reporter']}"})
    assert status == 503
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
