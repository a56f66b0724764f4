"""GitLab's REST v4 as the access checks read it: who a token belongs to, and what it may see.

Plain ``urllib`` with a bounded timeout (python-gitlab would add ~0.2 s of imports to a cold start
and retries we do not want here: a slow GitLab must cost a request at most ``timeout`` per call).
Only documented endpoints: ``GET /user``, ``GET /projects/:id`` (``visibility`` and
``permissions.project_access/group_access``), ``GET /projects?membership=true&min_access_level=10``.

Answers are cached for a short TTL under a SHA-256 of the token, never the token itself.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar
from urllib.parse import quote

from .access import PRIVATE, VISIBILITIES, Role
from .errors import AuthUnavailable, Unauthenticated

T = TypeVar("T")

MAX_MEMBERSHIP_PAGES = 50  # 5,000 projects: beyond that the scope stops growing (logged by the caller)
_MAX_BODY = 8 * 1024 * 1024


def token_key(token: str | None) -> str:
    """What caches and logs may hold instead of a token."""
    return "anonymous" if not token else hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    id: int
    username: str
    admin: bool = False


@dataclass(frozen=True)
class ProjectView:
    """A project as one caller sees it (``GET /projects/:id`` with their token)."""
    id: int
    path: str
    visibility: str
    access: Role  # the higher of the project's and its group's access level; NONE if not a member


class TTLCache(Generic[T]):
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self._clock = ttl, max_entries, clock
        self._data: dict[Any, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, T | None]:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return False, None
            if hit[0] <= self._clock():
                del self._data[key]
                return False, None
            return True, hit[1]

    def put(self, key: Any, value: T) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._data) >= self.max_entries:
                now = self._clock()
                for k in [k for k, (exp, _) in self._data.items() if exp <= now] or list(self._data)[: len(self._data) // 2]:
                    self._data.pop(k, None)
            self._data[key] = (self._clock() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class GitLabApi:
    """The REST v4 calls the access checks make, each bounded by ``timeout`` seconds."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.base = url.rstrip("/")
        self.api = self.base + "/api/v4"
        self.timeout = timeout
        self.calls = 0  # requests sent (tests and the bench count them)

    def _get(self, path: str, token: str | None) -> tuple[int, Any, dict[str, str]]:
        headers = {"Accept": "application/json", "User-Agent": "stacflow"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.api + path, headers=headers)
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read(_MAX_BODY + 1)
                status, header_map = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as err:
            status, body, header_map = err.code, b"", {}
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as err:
            reason = "did not answer in time" if "timed out" in str(err) else "is unreachable"
            raise AuthUnavailable(f"GitLab {reason}; access cannot be checked, try again later") from None
        if status >= 500 or status == 429:
            raise AuthUnavailable(f"GitLab answered {status}; access cannot be checked, try again later")
        if status != 200:
            return status, None, header_map
        if len(body) > _MAX_BODY:
            raise AuthUnavailable("GitLab's answer is too large")
        try:
            return status, json.loads(body), header_map
        except ValueError:
            raise AuthUnavailable("GitLab's answer is not JSON") from None

    def user(self, token: str) -> User:
        status, doc, _ = self._get("/user", token)
        if status in (401, 403):  # expired, revoked, or a token without the read_user/api scope
            raise Unauthenticated("the GitLab token is invalid, expired or revoked")
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
            raise AuthUnavailable(f"GitLab answered {status} to GET /user")
        return User(id=doc["id"], username=str(doc.get("username") or doc["id"]), admin=doc.get("is_admin") is True)

    def project(self, token: str | None, project: str) -> ProjectView | None:
        """The project as ``token``'s owner sees it; None when GitLab hides it from them (404)."""
        status, doc, _ = self._get(f"/projects/{quote(project, safe='')}", token)
        if status == 401:
            raise Unauthenticated("the GitLab token is invalid, expired or revoked")
        if status in (403, 404) or not isinstance(doc, dict):
            return None
        perms = doc.get("permissions") or {}
        levels = [(perms.get(k) or {}).get("access_level") for k in ("project_access", "group_access")]
        access = max([Role.NONE] + [_role(level) for level in levels if isinstance(level, int)])
        visibility = doc.get("visibility")
        return ProjectView(id=int(doc.get("id") or 0), path=str(doc.get("path_with_namespace") or project),
                           visibility=visibility if visibility in VISIBILITIES else PRIVATE, access=access)

    def memberships(self, token: str) -> frozenset[str]:
        """Ids and full paths of the projects where ``token``'s owner is Guest or above."""
        out: set[str] = set()
        page = 1
        while page and page <= MAX_MEMBERSHIP_PAGES:
            status, doc, headers = self._get(
                f"/projects?membership=true&min_access_level={int(Role.GUEST)}&simple=true&per_page=100&page={page}",
                token)
            if status == 401:
                raise Unauthenticated("the GitLab token is invalid, expired or revoked")
            if status != 200 or not isinstance(doc, list):
                raise AuthUnavailable(f"GitLab answered {status} to the membership listing")
            for project in doc:
                if isinstance(project, dict):
                    out.add(str(project.get("id")))
                    if project.get("path_with_namespace"):
                        out.add(str(project["path_with_namespace"]))
            nxt = headers.get("x-next-page", "")
            page = int(nxt) if nxt.isdigit() else 0
        return frozenset(out)


    def authorize_url(self, client_id: str, redirect_uri: str, state: str) -> str:
        """Where a browser signs in with GitLab OAuth (authorization-code flow)."""
        from urllib.parse import urlencode
        query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code",
                           "state": state, "scope": "read_api"})
        return f"{self.base}/oauth/authorize?{query}"

    def exchange_code(self, client_id: str, client_secret: str, code: str, redirect_uri: str) -> str:
        """The access token of an authorization code (``POST /oauth/token``); Unauthenticated if refused."""
        from urllib.parse import urlencode
        form = urlencode({"grant_type": "authorization_code", "client_id": client_id, "client_secret": client_secret,
                          "code": code, "redirect_uri": redirect_uri}).encode()
        request = urllib.request.Request(self.base + "/oauth/token", data=form, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                doc = json.loads(resp.read(_MAX_BODY))
        except urllib.error.HTTPError as err:
            if err.code >= 500:
                raise AuthUnavailable(f"GitLab answered {err.code}; sign-in is not possible now") from None
            raise Unauthenticated("GitLab refused the sign-in (the code is invalid or expired)") from None
        except (urllib.error.URLError, OSError, ValueError):
            raise AuthUnavailable("GitLab is unreachable; sign-in is not possible now") from None
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthUnavailable("GitLab's token answer holds no access token")
        return token


def _role(level: int) -> Role:
    """GitLab's level as the highest ``Role`` at or below it (e.g. 5 = Minimal access -> NONE)."""
    return max((r for r in Role if r <= level), default=Role.NONE)
