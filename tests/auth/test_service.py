"""AccessService against a loopback GitLab: identity, roles, read scopes, caching and failure modes."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from chalicelib.auth.access import ANONYMOUS, EVERYTHING, Action, Role
from chalicelib.auth.errors import AuthUnavailable, Forbidden, Unauthenticated
from chalicelib.auth.gitlab import GitLabApi, TTLCache, token_key
from chalicelib.auth.service import OPEN, AccessService, Credentials
from tests.helpers.access_world import CALLERS, VISIBILITIES, AccessWorld, allowed, build_world
from tests.helpers.fake_gitlab import FakeGitLab


@pytest.fixture(scope="module")
def world() -> Iterator[AccessWorld]:
    with FakeGitLab() as gl:
        yield build_world(gl)


def _service(world: AccessWorld, *, anonymous_read: bool = False, ttl: float = 60.0,
             timeout: float = 2.0) -> AccessService:
    return AccessService(GitLabApi(world.gl.url, timeout), anonymous_read=anonymous_read, cache_ttl=ttl,
                         service_token=world.gl.token)


def _who(service: AccessService, world: AccessWorld, caller: str):  # type: ignore[no-untyped-def]
    token = world.tokens[caller]
    return service.authenticate(Credentials(token) if token else None)


@pytest.mark.parametrize("anonymous_read", [False, True])
@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("by", ["id", "path"])
def test_require_follows_gitlab_roles(world: AccessWorld, caller: str, visibility: str, action: Action,
                                      anonymous_read: bool, by: str) -> None:
    service = _service(world, anonymous_read=anonymous_read)
    principal = _who(service, world, caller)
    project = world.project_id(visibility) if by == "id" else world.project_path(visibility)
    if allowed(caller, visibility, action, anonymous_read):
        service.require(principal, project, action)
    else:
        with pytest.raises(Unauthenticated if caller == "anonymous" else Forbidden):
            service.require(principal, project, action)


@pytest.mark.parametrize("anonymous_read", [False, True])
@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("caller", CALLERS)
def test_read_scope_agrees_with_require(world: AccessWorld, caller: str, visibility: str,
                                        anonymous_read: bool) -> None:
    service = _service(world, anonymous_read=anonymous_read)
    principal = _who(service, world, caller)
    if caller == "anonymous" and not anonymous_read:
        with pytest.raises(Unauthenticated):
            service.read_scope(principal)
        return
    readable = service.readable(principal)
    expected = allowed(caller, visibility, Action.READ, anonymous_read)
    assert readable(world.project_id(visibility)) is expected
    assert readable(world.project_path(visibility)) is expected


def test_roles_come_from_project_and_group_access(world: AccessWorld) -> None:
    service = _service(world)
    pid = world.project_id("private")
    assert service.role(_who(service, world, "reporter"), pid) is Role.REPORTER  # through the group
    assert service.role(_who(service, world, "maintainer"), pid) is Role.MAINTAINER
    assert service.role(_who(service, world, "non-member"), pid) is Role.NONE
    assert service.visibility(pid) == "private"
    assert service.visibility(world.project_id("internal")) == "internal"


def test_administrators_may_do_everything(world: AccessWorld) -> None:
    service = _service(world)
    admin = _who(service, world, "admin")
    assert admin.admin
    service.require(admin, world.project_id("private"), Action.DELETE)
    service.require(admin, None, Action.WRITE)
    assert service.read_scope(admin) == EVERYTHING


def test_resources_without_a_project_are_read_like_public_ones_and_written_by_admins_only(world: AccessWorld) -> None:
    service = _service(world)
    maintainer = _who(service, world, "maintainer")
    service.require(maintainer, None, Action.READ)
    with pytest.raises(Forbidden):
        service.require(maintainer, None, Action.WRITE)
    with pytest.raises(Unauthenticated):
        service.require(ANONYMOUS, None, Action.READ)


def test_an_unknown_project_is_nobodys(world: AccessWorld) -> None:
    service = _service(world)
    with pytest.raises(Forbidden):
        service.require(_who(service, world, "maintainer"), "team/no-such-project", Action.READ)


def test_auth_off_allows_everything() -> None:
    assert OPEN.authenticate(Credentials("anything")) == ANONYMOUS
    OPEN.require(ANONYMOUS, "any/project", Action.DELETE)
    assert OPEN.read_scope(ANONYMOUS) == EVERYTHING
    assert OPEN.role(ANONYMOUS, "x") is Role.OWNER


def test_a_warm_request_costs_no_gitlab_call(world: AccessWorld) -> None:
    service = _service(world)
    pid = world.project_id("private")
    service.require(_who(service, world, "developer"), pid, Action.WRITE)
    before = len(world.gl.requests)
    for _ in range(20):
        service.require(_who(service, world, "developer"), pid, Action.WRITE)
        service.readable(_who(service, world, "developer"))(pid)
    assert service.gitlab is not None
    assert len(world.gl.requests) - before == 1  # the membership listing, once; identity and role cached


def test_cache_entries_expire() -> None:
    now = [100.0]
    cache: TTLCache[int] = TTLCache(5.0, clock=lambda: now[0])
    cache.put("k", 1)
    assert cache.get("k") == (True, 1)
    now[0] += 5.0
    assert cache.get("k") == (False, None)


def test_a_revoked_token_is_refused_once_its_cache_entry_expires(world: AccessWorld) -> None:
    token = world.gl.add_user("leaver")
    service = _service(world, ttl=0.2)
    assert service.authenticate(Credentials(token)).username == "leaver"
    world.gl.revoke(token)
    time.sleep(0.25)
    with pytest.raises(Unauthenticated) as refused:
        service.authenticate(Credentials(token))
    assert refused.value.status == 401
    assert token not in str(refused.value)


def test_an_unknown_token_is_refused_and_the_refusal_cached(world: AccessWorld) -> None:
    service = _service(world)
    before = len(world.gl.requests)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            service.authenticate(Credentials("glpat-not-a-token"))
    assert len(world.gl.requests) - before == 1


def test_gitlab_erroring_fails_closed(world: AccessWorld) -> None:
    service = _service(world)
    world.gl.fail("/api/v4/user", 502, times=1)
    with pytest.raises(AuthUnavailable) as down:
        _who(service, world, "developer")
    assert down.value.status == 503
    assert _who(service, world, "developer").username == "developer"  # outages are not cached


def test_gitlab_unreachable_fails_closed() -> None:
    with FakeGitLab() as gl:
        url = gl.url
    service = AccessService(GitLabApi(url, 1.0))
    with pytest.raises(AuthUnavailable):
        service.authenticate(Credentials("glpat-x"))


def test_a_slow_gitlab_holds_a_request_no_longer_than_the_timeout(world: AccessWorld) -> None:
    service = _service(world, timeout=0.3)
    world.gl.delay = 3.0
    try:
        started = time.monotonic()
        with pytest.raises(AuthUnavailable):
            service.authenticate(Credentials(world.tokens["guest"] or ""))
        assert time.monotonic() - started < 1.5
    finally:
        world.gl.delay = 0.0


def test_tokens_never_show_in_reprs_or_cache_keys(world: AccessWorld) -> None:
    service = _service(world)
    token = world.tokens["developer"] or ""
    principal = service.authenticate(Credentials(token))
    assert token not in repr(principal)
    assert token not in repr(Credentials(token))
    assert token not in token_key(token)
    assert token not in repr(service._users._data)
