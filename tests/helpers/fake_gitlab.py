"""A loopback GitLab: the REST v4 endpoints python-gitlab calls to read a project, over real git repositories.

Serves, for each project added with ``add_project`` (a local git repository), exactly what
``chalicelib.datasets.gitlab`` reads, with GitLab's documented JSON and headers:

- ``GET /api/v4/projects/:id`` (numeric id, or the URL-encoded ``path_with_namespace``);
- ``GET /api/v4/projects/:id/repository/tags`` (``order_by``/``sort``) and ``.../tags/:name``;
- ``GET /api/v4/projects/:id/repository/tree`` (``ref``, ``path``, ``recursive``);
- ``GET|HEAD /api/v4/projects/:id/repository/files/:path[/raw]?ref=``;
- ``GET /api/v4/projects/:id/repository/branches/:name`` and ``.../commits/:sha``.

Lists paginate as GitLab does (``page``/``per_page``, at most 100; ``X-Page``, ``X-Per-Page``,
``X-Next-Page``, ``X-Prev-Page``, ``X-Total``, ``X-Total-Pages`` and a ``Link`` header). Every
request needs the ``PRIVATE-TOKEN`` header (else 401 ``{"message": "401 Unauthorized"}``); unknown
or deleted projects answer 404 ``{"message": "404 Project Not Found"}``. Files are read from git
(``git cat-file blob <ref>:<path>``, ``git ls-tree``, ``git for-each-ref refs/tags``), so what the
fake serves is what the repository holds at that ref.

Users and access (what ``chalicelib.auth`` reads): ``add_user`` gives a user a personal access token
(sent as ``PRIVATE-TOKEN`` or ``Authorization: Bearer``), ``add_member``/``add_group_member`` give
them an access level on a project or on its group (the namespace), ``revoke`` ends a token;
``GET /api/v4/user``, ``GET /api/v4/projects/:id`` with ``permissions.project_access/group_access``
and GitLab's visibility rules (private: members only, 404 otherwise; internal: any user; public:
anyone, even without a token), ``GET /api/v4/projects?membership=true&min_access_level=N``; OAuth's
authorization-code flow (``/oauth/authorize`` signs in ``oauth_user`` at once and redirects with a
code, ``POST /oauth/token`` trades it for a user token). ``delay`` slows every answer (a GitLab that
hangs), ``fail`` makes chosen requests error. The service token (``token``) sees every project.

``push_payload``/``tag_push_payload``/``system_payload`` build GitLab's documented webhook bodies
from the repository's real commits; ``post_webhook`` delivers one as GitLab does (headers
``X-Gitlab-Event``, ``X-Gitlab-Token``, ``X-Gitlab-Event-UUID``, ...).
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ZERO_SHA = "0" * 40
API = "/api/v4"
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20


def git(repo: Path, *args: str, input: bytes | None = None) -> bytes:  # noqa: A002 (subprocess's name)
    return subprocess.run(["git", "-C", str(repo), *args], input=input, check=True, capture_output=True).stdout


def _git_ok(repo: Path, *args: str) -> bytes | None:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def _iso(date: str) -> str:
    """git's strict ISO date (``2024-05-01T10:00:00+02:00``) as GitLab writes it (``...T10:00:00.000+02:00``)."""
    parsed = datetime.fromisoformat(date)
    return parsed.isoformat(timespec="milliseconds")


@dataclass
class FakeUser:
    id: int
    username: str
    admin: bool = False


@dataclass
class FakeProject:
    id: int
    repo: Path | None
    path_with_namespace: str
    name: str
    description: str | None = None
    topics: list[str] = field(default_factory=list)
    visibility: str = "public"
    http_url_to_repo: str | None = None  # default: <gitlab>/<path>.git
    deleted: bool = False
    created_at: str = "2024-01-01T00:00:00.000Z"

    @property
    def default_branch(self) -> str | None:
        if self.repo is None:
            return None
        head = _git_ok(self.repo, "symbolic-ref", "--short", "HEAD")
        if head is None:
            return None
        branch = head.decode().strip()
        return branch if _git_ok(self.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}") else None


class FakeGitLab:
    """Start with ``with FakeGitLab() as gl:`` (or ``start()``/``stop()``); ``gl.url`` is the GitLab URL."""

    def __init__(self, token: str = "glpat-test-token") -> None:
        self.token = token
        self.projects: dict[int, FakeProject] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path and query) of every request answered
        self._failures: list[list[Any]] = []  # [path substring, status, times left]
        self._lock = threading.Lock()
        self._next_id = 101
        self.users: dict[str, FakeUser] = {}  # username -> user
        self.tokens: dict[str, str] = {}  # live token -> username
        self.members: dict[tuple[int, str], int] = {}  # (project id, username) -> access level
        self.group_members: dict[tuple[str, str], int] = {}  # (group full path, username) -> access level
        self.delay = 0.0  # seconds every answer waits (a slow GitLab)
        self.oauth_apps: dict[str, tuple[str, str]] = {}  # client id -> (secret, redirect uri)
        self.oauth_user: str | None = None  # who is signed in to GitLab in "the browser"
        self._codes: dict[str, tuple[str, str, str]] = {}  # code -> (client id, redirect uri, username)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeGitLab:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-gitlab", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGitLab:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------
    def add_project(self, repo: Path, path_with_namespace: str, *, topics: list[str] | None = None,
                    visibility: str = "public", description: str | None = None,
                    http_url_to_repo: str | None = None, project_id: int | None = None) -> FakeProject:
        with self._lock:
            pid = project_id if project_id is not None else self._next_id
            self._next_id = max(self._next_id, pid) + 1
            project = FakeProject(id=pid, repo=Path(repo), path_with_namespace=path_with_namespace,
                                  name=path_with_namespace.rsplit("/", 1)[-1], description=description,
                                  topics=list(topics or []), visibility=visibility,
                                  http_url_to_repo=http_url_to_repo)
            self.projects[pid] = project
            return project

    def add_access_project(self, path_with_namespace: str, visibility: str = "private",
                           project_id: int | None = None) -> FakeProject:
        """A project with no repository: only its identity and visibility matter (access checks)."""
        with self._lock:
            pid = project_id if project_id is not None else self._next_id
            self._next_id = max(self._next_id, pid) + 1
            project = FakeProject(id=pid, repo=None, path_with_namespace=path_with_namespace,
                                  name=path_with_namespace.rsplit("/", 1)[-1], visibility=visibility)
            self.projects[pid] = project
            return project

    def add_user(self, username: str, *, admin: bool = False, token: str | None = None) -> str:
        """A user and a personal access token of theirs (returned)."""
        with self._lock:
            user = self.users.get(username) or FakeUser(id=1000 + len(self.users), username=username, admin=admin)
            self.users[username] = user
            token = token or f"glpat-{username}-{uuid.uuid4().hex[:12]}"
            self.tokens[token] = username
            return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def add_member(self, pid: int, username: str, access_level: int) -> None:
        self.members[(pid, username)] = access_level

    def add_group_member(self, group: str, username: str, access_level: int) -> None:
        self.group_members[(group, username)] = access_level

    def add_oauth_app(self, client_id: str, secret: str, redirect_uri: str) -> None:
        self.oauth_apps[client_id] = (secret, redirect_uri)

    def access_levels(self, p: FakeProject, username: str) -> tuple[int | None, int | None]:
        """(project access, group access) of ``username``: the direct level, the best level of a
        group the project sits in (its namespace or any parent)."""
        namespace = p.path_with_namespace.rpartition("/")[0]
        groups = [lvl for (group, user), lvl in self.group_members.items()
                  if user == username and (namespace == group or namespace.startswith(group + "/"))]
        return self.members.get((p.id, username)), max(groups) if groups else None

    def can_see(self, p: FakeProject, username: str | None) -> bool:
        """GitLab's visibility rule for ``GET /projects/:id`` (``username`` None: no token)."""
        if p.visibility == "public":
            return True
        if username is None:
            return False
        if username == SERVICE or self.users[username].admin:
            return True
        if p.visibility == "internal":
            return True
        return any(level is not None and level >= 10 for level in self.access_levels(p, username))

    def set_topics(self, pid: int, topics: list[str]) -> None:
        self.projects[pid].topics = list(topics)

    def set_visibility(self, pid: int, visibility: str) -> None:
        self.projects[pid].visibility = visibility

    def rename(self, pid: int, path_with_namespace: str) -> None:
        project = self.projects[pid]
        project.path_with_namespace = path_with_namespace
        project.name = path_with_namespace.rsplit("/", 1)[-1]

    def delete_project(self, pid: int) -> None:
        self.projects[pid].deleted = True

    def fail(self, match: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` requests whose path contains ``match`` answer ``status`` (an outage)."""
        with self._lock:
            self._failures.append([match, status, times])

    def _failure(self, path: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure[0] in path and failure[2] > 0:
                    failure[2] -= 1
                    return int(failure[1])
        return None

    def find(self, ident: str) -> FakeProject | None:
        """A live project by id or ``path_with_namespace`` (already URL-decoded)."""
        for project in self.projects.values():
            if not project.deleted and (str(project.id) == ident or project.path_with_namespace == ident):
                return project
        return None

    def paths_requested(self) -> list[str]:
        return [urlsplit(path).path for _, path in self.requests]

    # -- JSON documents (GitLab's documented fields) ---------------------------------------
    def project_json(self, p: FakeProject) -> dict[str, Any]:
        namespace, _, path = p.path_with_namespace.rpartition("/")
        web_url = f"{self.url}/{p.path_with_namespace}"
        branch = p.default_branch
        return {
            "id": p.id, "description": p.description, "name": p.name,
            "name_with_namespace": " / ".join(p.path_with_namespace.split("/")),
            "path": path, "path_with_namespace": p.path_with_namespace, "created_at": p.created_at,
            "default_branch": branch, "tag_list": list(p.topics), "topics": list(p.topics),
            "ssh_url_to_repo": f"git@127.0.0.1:{p.path_with_namespace}.git",
            "http_url_to_repo": p.http_url_to_repo or f"{web_url}.git", "web_url": web_url,
            "readme_url": f"{web_url}/-/blob/{branch}/README.md" if branch else None,
            "forks_count": 0, "star_count": 0, "last_activity_at": p.created_at,
            "namespace": {"id": 1, "name": namespace, "path": namespace, "kind": "group", "full_path": namespace},
            "visibility": p.visibility, "archived": False, "empty_repo": branch is None,
        }

    def commit_json(self, p: FakeProject, ref: str) -> dict[str, Any] | None:
        out = _git_ok(p.repo, "show", "-s", "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B",
                      f"{ref}^{{commit}}", "--")
        if out is None:
            return None
        sha, parents, an, ae, ad, cn, ce, cd, message = out.decode().split("\x00", 8)
        return {"id": sha, "short_id": sha[:8], "created_at": _iso(cd), "parent_ids": parents.split(),
                "title": message.split("\n", 1)[0], "message": message, "author_name": an, "author_email": ae,
                "authored_date": _iso(ad), "committer_name": cn, "committer_email": ce,
                "committed_date": _iso(cd), "trailers": {}, "extended_trailers": {},
                "web_url": f"{self.url}/{p.path_with_namespace}/-/commit/{sha}"}

    _TAG_FIELDS = ("refname:strip=2", "objectname", "objecttype", "taggerdate:iso-strict", "contents")
    _COMMIT_FIELDS = ("objectname", "parent", "authorname", "authoremail", "authordate:iso-strict", "committername",
                      "committeremail", "committerdate:iso-strict", "contents")

    def tags_json(self, p: FakeProject) -> list[dict[str, Any]]:
        # One for-each-ref for all tags: each field of the tag and of the commit it points at (``*`` dereferences
        # an annotated tag; a lightweight tag's own fields are the commit's).
        fields = self._TAG_FIELDS + tuple("*" + f for f in self._COMMIT_FIELDS) + self._COMMIT_FIELDS
        fmt = "%00".join(f"%({f})" for f in fields) + "%01"
        out = git(p.repo, "for-each-ref", f"--format={fmt}", "refs/tags").decode()
        tags = []
        for record in out.split("\x01"):
            record = record.lstrip("\n")
            if not record:
                continue
            values = record.split("\x00")
            name, target, kind, tagged_at, message = values[:5]
            n = len(self._COMMIT_FIELDS)
            commit_values = values[5:5 + n] if kind == "tag" else values[5 + n:]
            if kind == "tag" and not commit_values[0]:
                continue  # a tag of a tree or blob: GitLab lists only tags of commits here
            sha, parents, an, ae, ad, cn, ce, cd, body = commit_values
            commit = {"id": sha, "short_id": sha[:8], "created_at": _iso(cd), "parent_ids": parents.split(),
                      "title": body.split("\n", 1)[0], "message": body, "author_name": an,
                      "author_email": ae.strip("<>"), "authored_date": _iso(ad), "committer_name": cn,
                      "committer_email": ce.strip("<>"), "committed_date": _iso(cd), "trailers": {},
                      "extended_trailers": {}, "web_url": f"{self.url}/{p.path_with_namespace}/-/commit/{sha}"}
            annotated = kind == "tag"
            tags.append({"name": name, "message": message.strip() if annotated else "", "target": target,
                         "commit": commit, "release": None, "protected": False,
                         "created_at": _iso(tagged_at) if annotated else None})
        return tags

    def tree_json(self, p: FakeProject, ref: str, path: str, recursive: bool) -> list[dict[str, Any]] | None:
        if _git_ok(p.repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}") is None:
            return None
        path = path.strip("/")
        if recursive:
            args = ["ls-tree", "-r", "-t", "-z", "--full-tree", ref] + ([f"{path}/"] if path else [])
        else:
            args = ["ls-tree", "-z", "--full-tree", ref, f"{path}/" if path else "."]
        out = git(p.repo, *args).decode()
        entries = []
        for entry in filter(None, out.split("\x00")):
            meta, name = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            entries.append({"id": sha, "name": name.rsplit("/", 1)[-1], "type": kind, "path": name, "mode": mode})
        if path and not entries:
            return None  # GitLab: 404 Tree Not Found for a missing folder
        return entries

    def blob(self, p: FakeProject, ref: str, path: str) -> bytes | None:
        if ref.startswith("-") or not path or path.startswith("/"):
            return None
        return _git_ok(p.repo, "cat-file", "blob", f"{ref}:{path}")

    # -- webhook payloads (GitLab's documented examples, filled from the repository) -----------
    def _hook_project(self, p: FakeProject) -> dict[str, Any]:
        web_url = f"{self.url}/{p.path_with_namespace}"
        namespace = p.path_with_namespace.rpartition("/")[0]
        level = {"private": 0, "internal": 10, "public": 20}[p.visibility]
        return {"id": p.id, "name": p.name, "description": p.description or "", "web_url": web_url,
                "avatar_url": None, "git_ssh_url": f"git@127.0.0.1:{p.path_with_namespace}.git",
                "git_http_url": f"{web_url}.git", "namespace": namespace, "visibility_level": level,
                "path_with_namespace": p.path_with_namespace, "default_branch": p.default_branch,
                "ci_config_path": None, "homepage": web_url, "url": f"git@127.0.0.1:{p.path_with_namespace}.git",
                "ssh_url": f"git@127.0.0.1:{p.path_with_namespace}.git", "http_url": f"{web_url}.git"}

    def _repository(self, p: FakeProject) -> dict[str, Any]:
        web_url = f"{self.url}/{p.path_with_namespace}"
        return {"name": p.name, "url": f"git@127.0.0.1:{p.path_with_namespace}.git",
                "description": p.description or "", "homepage": web_url, "git_http_url": f"{web_url}.git",
                "git_ssh_url": f"git@127.0.0.1:{p.path_with_namespace}.git",
                "visibility_level": {"private": 0, "internal": 10, "public": 20}[p.visibility]}

    def _commits(self, p: FakeProject, before: str, after: str) -> list[dict[str, Any]]:
        if after == ZERO_SHA:
            return []
        span = after if before == ZERO_SHA else f"{before}..{after}"
        shas = git(p.repo, "rev-list", "--max-count=20", span).decode().split()
        out = []
        for sha in shas:
            c = self.commit_json(p, sha)
            assert c is not None
            out.append({"id": sha, "message": c["message"], "title": c["title"], "timestamp": c["committed_date"],
                        "url": c["web_url"], "author": {"name": c["author_name"], "email": c["author_email"]},
                        "added": [], "modified": [], "removed": []})
        return out

    def push_payload(self, pid: int, *, before: str, after: str, ref: str | None = None,
                     system: bool = False) -> dict[str, Any]:
        """A push event (project webhook, or the system hook's when ``system``) for ``before..after``."""
        p = self.projects[pid]
        ref = ref or f"refs/heads/{p.default_branch}"
        commits = self._commits(p, before, after)
        payload: dict[str, Any] = {
            "object_kind": "push", "event_name": "push", "before": before, "after": after, "ref": ref,
            "ref_protected": True, "checkout_sha": after if after != ZERO_SHA else None, "message": None,
            "user_id": 4, "user_name": "John Smith", "user_username": "jsmith", "user_email": "",
            "user_avatar": None, "project_id": p.id, "project": self._hook_project(p), "commits": commits,
            "total_commits_count": len(commits), "push_options": {}, "repository": self._repository(p)}
        if system:  # system hooks: same structure, no object_kind, never the commits
            del payload["object_kind"]
            payload["commits"] = []
        return payload

    def tag_push_payload(self, pid: int, tag: str, *, deleted: bool = False, target: str | None = None,
                         system: bool = False) -> dict[str, Any]:
        """A tag event: creation (``after`` = the tag's object) or deletion (``after`` = zeros)."""
        p = self.projects[pid]
        if deleted:
            before, after, checkout = target or ZERO_SHA, ZERO_SHA, None
        else:
            after = git(p.repo, "rev-parse", f"refs/tags/{tag}").decode().strip()
            checkout = git(p.repo, "rev-parse", f"refs/tags/{tag}^{{commit}}").decode().strip()
            before = ZERO_SHA
        payload: dict[str, Any] = {
            "object_kind": "tag_push", "event_name": "tag_push", "before": before, "after": after,
            "ref": f"refs/tags/{tag}", "ref_protected": False, "checkout_sha": checkout, "message": None,
            "user_id": 1, "user_name": "John Smith", "user_username": "jsmith", "user_email": "",
            "user_avatar": None, "project_id": p.id, "project": self._hook_project(p), "commits": [],
            "total_commits_count": 0, "push_options": {}, "repository": self._repository(p)}
        if system:
            del payload["object_kind"]
        return payload

    def system_payload(self, event_name: str, pid: int, *, old_path: str | None = None) -> dict[str, Any]:
        """project_create / project_destroy / project_rename / project_transfer / project_update."""
        p = self.projects[pid]
        payload: dict[str, Any] = {
            "created_at": "2012-07-21T07:30:54Z", "updated_at": "2012-07-21T07:38:22Z", "event_name": event_name,
            "name": p.name, "owner_email": "johnsmith@example.com", "owner_name": "John Smith",
            "owners": [{"name": "John", "email": "user1@example.com"}], "path": p.path_with_namespace.rsplit("/")[-1],
            "path_with_namespace": p.path_with_namespace, "project_id": p.id, "project_namespace_id": 23,
            "project_visibility": p.visibility}
        if old_path is not None:
            payload["old_path_with_namespace"] = old_path
        return payload


SERVICE = "\0service"  # the caller name of the service token


HOOK_EVENTS = {"push": "Push Hook", "tag_push": "Tag Push Hook"}


def event_header(payload: dict[str, Any]) -> str:
    """The ``X-Gitlab-Event`` header GitLab sends with ``payload``."""
    if "object_kind" in payload:
        return HOOK_EVENTS.get(payload["object_kind"], payload["object_kind"].replace("_", " ").title() + " Hook")
    return "System Hook"


def post_webhook(url: str, payload: dict[str, Any] | bytes, *, token: str | None,
                 event: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST ``payload`` as GitLab delivers a webhook; returns (status, body), errors included."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "GitLab/17.5.0",
               "X-Gitlab-Event": event or (event_header(payload) if isinstance(payload, dict) else "Push Hook"),
               "X-Gitlab-Instance": "https://gitlab.example.com", "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
               "X-Gitlab-Event-UUID": str(uuid.uuid4()), "Idempotency-Key": str(uuid.uuid4())}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# -- the HTTP side ---------------------------------------------------------------------------
def _handler_for(gl: FakeGitLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: tests read gl.requests instead

        def do_GET(self) -> None:
            self._route(head=False)

        def do_POST(self) -> None:
            with gl._lock:
                gl.requests.append((self.command, self.path))
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if split.path == "/oauth/token":
                ctype = self.headers.get("Content-Type") or ""
                form = json.loads(raw) if "json" in ctype else {k: v[-1] for k, v in parse_qs(raw).items()}
                return self._oauth_token(form)
            return self._error(404, "404 Not Found")

        def _caller(self) -> str | None | bool:
            """The username of the request's token, SERVICE, None (no token) or False (a bad token)."""
            token = self.headers.get("PRIVATE-TOKEN")
            bearer = self.headers.get("Authorization") or ""
            if token is None and bearer.lower().startswith("bearer "):
                token = bearer[7:].strip()
            if token is None:
                return None
            if token == gl.token:
                return SERVICE
            with gl._lock:
                return gl.tokens.get(token, False)

        def _oauth_authorize(self, query: dict[str, str]) -> None:
            app = gl.oauth_apps.get(query.get("client_id", ""))
            if app is None or query.get("redirect_uri") != app[1] or query.get("response_type") != "code":
                return self._error(400, "invalid_request")
            if gl.oauth_user is None:
                return self._error(401, "not signed in to GitLab")
            code = uuid.uuid4().hex
            gl._codes[code] = (query["client_id"], app[1], gl.oauth_user)
            target = f"{app[1]}{'&' if '?' in app[1] else '?'}{urlencode({'code': code, 'state': query.get('state', '')})}"
            self._send(302, b"", {"Location": target})

        def _oauth_token(self, form: dict[str, str]) -> None:
            app = gl.oauth_apps.get(form.get("client_id", ""))
            grant = gl._codes.pop(form.get("code", ""), None)
            if (form.get("grant_type") != "authorization_code" or app is None or grant is None
                    or form.get("client_secret") != app[0] or grant[0] != form.get("client_id")
                    or form.get("redirect_uri") != grant[1]):
                return self._json(400, {"error": "invalid_grant",
                                        "error_description": "The provided authorization grant is invalid"})
            token = gl.add_user(grant[2], token=f"gloas-{uuid.uuid4().hex}")
            self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 7200,
                             "refresh_token": uuid.uuid4().hex, "scope": "read_api", "created_at": 1700000000})

        def do_HEAD(self) -> None:
            self._route(head=True)

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                  content_type: str = "application/json", head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
            self._send(status, json.dumps(doc).encode(), headers, head=head)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"message": message})

        def _route(self, head: bool) -> None:
            with gl._lock:
                gl.requests.append((self.command, self.path))
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            if gl.delay:
                time.sleep(gl.delay)
            if split.path == "/oauth/authorize":
                return self._oauth_authorize(query)
            who = self._caller()
            if who is False:
                return self._error(401, "401 Unauthorized")
            failure = gl._failure(split.path)
            if failure is not None:
                return self._error(failure, f"{failure} Internal Server Error")
            if split.path == API + "/user":
                if who is None or who == SERVICE:
                    return self._error(401, "401 Unauthorized")
                user = gl.users[str(who)]
                return self._json(200, {"id": user.id, "username": user.username, "name": user.username.title(),
                                        "state": "active", "locked": False, "web_url": f"{gl.url}/{user.username}",
                                        "is_admin": user.admin}, head=head)
            if split.path == API + "/projects":
                if who is None:
                    return self._error(401, "401 Unauthorized")
                return self._membership(str(who), query, head)
            if not split.path.startswith(API + "/projects/"):
                return self._error(404, "404 Not Found")
            # Segments stay percent-encoded until split: ids and file paths carry %2F.
            segments = split.path[len(API + "/projects/"):].split("/")
            project = gl.find(unquote(segments[0]))
            if project is None or not gl.can_see(project, who if isinstance(who, str) else None):
                return self._error(404, "404 Project Not Found")
            rest = segments[1:]
            if not rest:
                doc = gl.project_json(project)
                if isinstance(who, str) and who != SERVICE:
                    levels = gl.access_levels(project, who)
                    doc["permissions"] = {
                        key: None if level is None else {"access_level": level, "notification_level": 3}
                        for key, level in zip(("project_access", "group_access"), levels)}
                return self._json(200, doc, head=head)
            if who is None:
                return self._error(401, "401 Unauthorized")  # the readers' endpoints need a token
            if project.repo is None:
                return self._error(404, "404 Not Found")
            if rest[0] != "repository" or len(rest) < 2:
                return self._error(404, "404 Not Found")
            what, args = rest[1], [unquote(s) for s in rest[2:]]
            if what == "tags":
                return self._tags(project, args, query, head)
            if what == "tree" and not args:
                tree = gl.tree_json(project, query.get("ref") or project.default_branch or "HEAD",
                                    query.get("path", ""), query.get("recursive") in ("true", "True", "1"))
                if tree is None:
                    return self._error(404, "404 Tree Not Found")
                return self._paginated(tree, query, head)
            if what == "files" and args:
                return self._file(project, args, query, head)
            if what == "branches" and len(args) == 1:
                commit = gl.commit_json(project, f"refs/heads/{args[0]}")
                if commit is None:
                    return self._error(404, "404 Branch Not Found")
                return self._json(200, {"name": args[0], "commit": commit, "merged": False, "protected": True,
                                        "default": args[0] == project.default_branch,
                                        "developers_can_push": False, "developers_can_merge": False,
                                        "can_push": True,
                                        "web_url": f"{gl.url}/{project.path_with_namespace}/-/tree/{args[0]}"},
                                  head=head)
            if what == "commits" and len(args) == 1:
                commit = gl.commit_json(project, args[0]) if not args[0].startswith("-") else None
                if commit is None:
                    return self._error(404, "404 Commit Not Found")
                return self._json(200, commit, head=head)
            return self._error(404, "404 Not Found")

        def _membership(self, who: str, query: dict[str, str], head: bool) -> None:
            if query.get("membership") not in ("true", "1"):
                return self._error(400, "400 Bad request - only membership listings are served")
            floor = int(query.get("min_access_level") or 10)
            listed = []
            for p in sorted(gl.projects.values(), key=lambda p: p.id):
                if p.deleted or who == SERVICE:
                    continue
                levels = [lvl for lvl in gl.access_levels(p, who) if lvl is not None]
                if levels and max(levels) >= floor:
                    listed.append({"id": p.id, "name": p.name, "path": p.path_with_namespace.rsplit("/", 1)[-1],
                                   "path_with_namespace": p.path_with_namespace,
                                   "web_url": f"{gl.url}/{p.path_with_namespace}", "created_at": p.created_at})
            self._paginated(listed, query, head)

        def _tags(self, project: FakeProject, args: list[str], query: dict[str, str], head: bool) -> None:
            tags = gl.tags_json(project)
            if args:
                found = [t for t in tags if t["name"] == "/".join(args)]
                if not found:
                    return self._error(404, "404 Tag Not Found")
                return self._json(200, found[0], head=head)
            order = query.get("order_by", "updated")
            if order == "name":
                tags.sort(key=lambda t: t["name"])
            else:  # "updated" (GitLab's default) and "version" approximated by the commit date
                tags.sort(key=lambda t: (t["commit"]["committed_date"], t["name"]))
            if query.get("sort", "desc") == "desc":
                tags.reverse()
            self._paginated(tags, query, head)

        def _file(self, project: FakeProject, args: list[str], query: dict[str, str], head: bool) -> None:
            # python-gitlab encodes the file path as one segment (%2F): args[0] is the whole path.
            raw = len(args) == 2 and args[1] == "raw"
            if len(args) != (2 if raw else 1):
                return self._error(404, "404 Not Found")
            ref = query.get("ref") or project.default_branch or "HEAD"
            data = gl.blob(project, ref, args[0])
            if data is None:
                return self._error(404, "404 File Not Found")
            meta = {"X-Gitlab-File-Path": args[0], "X-Gitlab-File-Name": args[0].rsplit("/", 1)[-1],
                    "X-Gitlab-Size": str(len(data)), "X-Gitlab-Ref": ref,
                    "X-Gitlab-Blob-Id": git(project.repo, "rev-parse", f"{ref}:{args[0]}").decode().strip()}
            if raw:
                return self._send(200, data, meta, content_type="text/plain; charset=utf-8", head=head)
            import base64
            self._json(200, {"file_name": meta["X-Gitlab-File-Name"], "file_path": args[0], "size": len(data),
                             "encoding": "base64", "content": base64.b64encode(data).decode(), "ref": ref,
                             "blob_id": meta["X-Gitlab-Blob-Id"]}, meta, head=head)

        def _paginated(self, items: list[Any], query: dict[str, str], head: bool) -> None:
            try:
                per_page = min(max(int(query.get("per_page", DEFAULT_PER_PAGE)), 1), MAX_PER_PAGE)
                page = max(int(query.get("page", 1)), 1)
            except ValueError:
                return self._error(400, "400 Bad request - page is invalid")
            total_pages = max((len(items) + per_page - 1) // per_page, 1)
            chunk = items[(page - 1) * per_page:page * per_page]

            def link(n: int) -> str:
                q = {**query, "page": str(n), "per_page": str(per_page)}
                return f"{gl.url}{urlsplit(self.path).path}?{urlencode(q)}"
            links = [f'<{link(page + 1)}>; rel="next"'] if page < total_pages else []
            if page > 1:
                links.append(f'<{link(page - 1)}>; rel="prev"')
            links += [f'<{link(1)}>; rel="first"', f'<{link(total_pages)}>; rel="last"']
            headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                       "X-Total-Pages": str(total_pages), "X-Next-Page": str(page + 1) if page < total_pages else "",
                       "X-Prev-Page": str(page - 1) if page > 1 else "", "Link": ", ".join(links)}
            self._json(200, chunk, headers, head=head)

    return Handler


# -- building repositories for tests --------------------------------------------------------
def init_repo(path: Path, files: dict[str, bytes | str] | None = None, *, branch: str = "main") -> Path:
    """A git repository at ``path`` with ``files`` committed on ``branch`` (if any are given)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.email", "data@example.com")
    git(path, "config", "user.name", "Data Manager")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "tag.gpgsign", "false")
    if files:
        commit(path, files, "initial data")
    return path


def commit(repo: Path, files: dict[str, bytes | str], message: str, *, remove: tuple[str, ...] = ()) -> str:
    for rel, content in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    for rel in remove:
        git(repo, "rm", "-q", "--", rel)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").decode().strip()


def tag(repo: Path, name: str, *, message: str | None = None, ref: str = "HEAD") -> str:
    """A lightweight tag, or an annotated one with ``message``; returns the commit it points at."""
    git(repo, "tag", *(["-a", "-m", message] if message else []), name, ref)
    return git(repo, "rev-parse", f"refs/tags/{name}^{{commit}}").decode().strip()


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").decode().strip()


__all__ = ["FakeGitLab", "FakeProject", "FakeUser", "ZERO_SHA", "commit", "event_header", "git", "head", "init_repo",
           "post_webhook", "tag"]
