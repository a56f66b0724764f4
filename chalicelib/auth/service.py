"""Access decisions: who the caller is (their GitLab token) and what they may do on a project.

Roles follow GitLab's access levels on the project that owns a resource: Guest and above read,
Developer and above write, Maintainer and above delete. Public projects are readable by anyone
signed in (and by anonymous callers when anonymous read is on), internal ones by anyone signed in.
A resource that belongs to no project is readable like a public one and writable by administrators
only. GitLab's answers are cached for ``cache_ttl`` seconds under a hash of the token, so a warm
request costs no GitLab call; GitLab down or slow is ``AuthUnavailable`` (never access granted).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .access import ANONYMOUS, EVERYTHING, INTERNAL, PRIVATE, PUBLIC, Action, Principal, ReadScope, Role
from .errors import AuthError, Forbidden, Unauthenticated
from .gitlab import GitLabApi, ProjectView, TTLCache, User, token_key

log = logging.getLogger("stacflow.auth")
T = TypeVar("T")

DEFAULT_CACHE_TTL = 60.0


@dataclass(frozen=True)
class Credentials:
    """A GitLab token as the request carried it (header or session cookie); kept out of reprs."""
    token: str = field(repr=False)
    via_cookie: bool = False


class AccessService:
    """``gitlab`` None: access control off (everything allowed, the local one-user default)."""

    def __init__(self, gitlab: GitLabApi | None = None, *, anonymous_read: bool = False,
                 cache_ttl: float = DEFAULT_CACHE_TTL, service_token: str | None = None) -> None:
        self.gitlab = gitlab
        self.anonymous_read = anonymous_read
        self._service_token = service_token
        self._users: TTLCache[User | AuthError] = TTLCache(cache_ttl)
        self._views: TTLCache[ProjectView | None] = TTLCache(cache_ttl)
        self._scopes: TTLCache[frozenset[str]] = TTLCache(cache_ttl)
        self._visibility: TTLCache[str] = TTLCache(cache_ttl)

    @property
    def enabled(self) -> bool:
        return self.gitlab is not None

    # -- who ------------------------------------------------------------------------------
    def authenticate(self, credentials: Credentials | None) -> Principal:
        """The caller of these credentials (``ANONYMOUS`` without any, or with access control off)."""
        if self.gitlab is None or credentials is None or not credentials.token:
            return ANONYMOUS
        gitlab = self.gitlab
        user = self._cached(self._users, token_key(credentials.token), lambda: _or_refusal(
            lambda: gitlab.user(credentials.token)))
        if isinstance(user, AuthError):
            raise user
        return Principal(username=user.username, user_id=user.id, token=credentials.token,
                         via_cookie=credentials.via_cookie, admin=user.admin)

    # -- what -----------------------------------------------------------------------------
    def read_scope(self, principal: Principal) -> ReadScope:
        """What ``principal`` may read, for filtering searches and listings before paging."""
        if self.gitlab is None or principal.admin:
            return EVERYTHING
        if not principal.authenticated:
            if not self.anonymous_read:
                raise Unauthenticated("sign in with a GitLab token to read")
            return ReadScope(public=True)
        gitlab, token = self.gitlab, principal.token or ""
        projects = self._cached(self._scopes, token_key(token), lambda: gitlab.memberships(token))
        return ReadScope(public=True, internal=True, projects=projects)

    def may_read(self, principal: Principal, scope: ReadScope, project: str | None) -> bool:
        """Whether ``scope`` (``principal``'s) covers ``project``: members without a GitLab call,
        others by the project's visibility (cached for everyone)."""
        if scope.everything or project is None or project in scope.projects:
            return scope.allows(project)
        if not (scope.public or scope.internal):
            return False
        return scope.allows(project, self.visibility(project))

    def readable(self, principal: Principal) -> Callable[[str | None], bool]:
        """A predicate on owning projects for ``principal``'s searches (scope settled once)."""
        if self.gitlab is None:
            return lambda project: True
        scope = self.read_scope(principal)
        return lambda project: self.may_read(principal, scope, project)

    def role(self, principal: Principal, project: str) -> Role:
        if self.gitlab is None or principal.admin:
            return Role.OWNER
        view = self._view(principal, project)
        return view.access if view is not None else Role.NONE

    def visibility(self, project: str) -> str:
        """``public``, ``internal`` or ``private`` (also for a project GitLab does not show: fail closed)."""
        if self.gitlab is None:
            return PUBLIC
        gitlab, token = self.gitlab, self._service_token

        def look_up() -> str:
            view = gitlab.project(token, project)
            return view.visibility if view is not None else PRIVATE
        return self._cached(self._visibility, project, look_up)

    def require(self, principal: Principal, project: str | None, action: Action) -> None:
        """Pass, or raise ``Unauthenticated`` (anonymous callers) / ``Forbidden`` (known ones)."""
        if self.gitlab is None or principal.admin:
            return
        if not principal.authenticated and not (self.anonymous_read and action is Action.READ):
            raise Unauthenticated(f"sign in with a GitLab token to {action.value}")
        if project is None:
            if action is Action.READ:
                return
            raise Forbidden(f"only GitLab administrators may {action.value} resources that belong to no project")
        view = self._view(principal, project)
        if action is Action.READ and view is not None and (
                view.access >= Role.GUEST or view.visibility == PUBLIC
                or (view.visibility == INTERNAL and principal.authenticated)):
            return
        if action is not Action.READ and view is not None and view.access >= action.min_role:
            return
        if not principal.authenticated:
            raise Unauthenticated(f"sign in with a GitLab token to {action.value}")
        raise Forbidden(f"permission denied: {action.value} needs the {action.min_role.name.title()} role "
                        "or above on the owning GitLab project")

    # -- caching --------------------------------------------------------------------------
    def _view(self, principal: Principal, project: str) -> ProjectView | None:
        assert self.gitlab is not None
        gitlab, token = self.gitlab, principal.token
        return self._cached(self._views, (token_key(token), project), lambda: gitlab.project(token, project))

    @staticmethod
    def _cached(cache: TTLCache[Any], key: Any, load: Callable[[], T]) -> T:
        hit, value = cache.get(key)
        if hit:
            return value  # type: ignore[return-value]
        loaded = load()  # AuthUnavailable propagates and is not cached: the next request asks again
        cache.put(key, loaded)
        return loaded


def _or_refusal(load: Callable[[], User]) -> User | AuthError:
    """GitLab's refusal of a token is cached like an answer (a bad token does not hammer GitLab)."""
    try:
        return load()
    except Unauthenticated as err:
        return err


OPEN = AccessService()  # access control off
