"""The permission matrix's world: a fake GitLab with one project per visibility and one user per role.

Callers: ``anonymous`` (no token), ``non-member``, ``guest``, ``reporter``, ``developer``,
``maintainer`` (members of every project at that level; the reporter through the group, the others
directly), plus ``admin``. ``ALLOWED`` is the specification the matrix tests check every cell of.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.auth.access import Action

from .fake_gitlab import FakeGitLab, FakeProject

CALLERS = ("anonymous", "non-member", "guest", "reporter", "developer", "maintainer")
VISIBILITIES = ("public", "internal", "private")
GROUP = "team"
_LEVELS = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40}

R, W, D = Action.READ, Action.WRITE, Action.DELETE
# (caller, visibility) -> what they may do, as the issue states it. Anonymous callers read public
# projects only when anonymous read is on (``allowed``).
ALLOWED: dict[tuple[str, str], frozenset[Action]] = {
    ("anonymous", "public"): frozenset({R}), ("anonymous", "internal"): frozenset(),
    ("anonymous", "private"): frozenset(),
    ("non-member", "public"): frozenset({R}), ("non-member", "internal"): frozenset({R}),
    ("non-member", "private"): frozenset(),
    ("guest", "public"): frozenset({R}), ("guest", "internal"): frozenset({R}), ("guest", "private"): frozenset({R}),
    ("reporter", "public"): frozenset({R}), ("reporter", "internal"): frozenset({R}),
    ("reporter", "private"): frozenset({R}),
    ("developer", "public"): frozenset({R, W}), ("developer", "internal"): frozenset({R, W}),
    ("developer", "private"): frozenset({R, W}),
    ("maintainer", "public"): frozenset({R, W, D}), ("maintainer", "internal"): frozenset({R, W, D}),
    ("maintainer", "private"): frozenset({R, W, D}),
}


def allowed(caller: str, visibility: str, action: Action, anonymous_read: bool) -> bool:
    if caller == "anonymous" and not anonymous_read:
        return False
    return action in ALLOWED[(caller, visibility)]


def refusal(caller: str) -> int:
    """The status a refused caller gets: 401 for anonymous (sign in), 403 for a known user."""
    return 401 if caller == "anonymous" else 403


@dataclass
class AccessWorld:
    gl: FakeGitLab
    projects: dict[str, FakeProject] = field(default_factory=dict)  # visibility -> project
    tokens: dict[str, str | None] = field(default_factory=dict)  # caller -> token

    def project_id(self, visibility: str) -> str:
        return str(self.projects[visibility].id)

    def project_path(self, visibility: str) -> str:
        return self.projects[visibility].path_with_namespace


def build_world(gl: FakeGitLab) -> AccessWorld:
    world = AccessWorld(gl)
    for visibility in VISIBILITIES:
        world.projects[visibility] = gl.add_access_project(f"{GROUP}/{visibility}-project", visibility)
    world.tokens["anonymous"] = None
    for caller in CALLERS[1:] + ("admin",):
        world.tokens[caller] = gl.add_user(caller, admin=caller == "admin")
    for caller, level in _LEVELS.items():
        if caller == "reporter":
            gl.add_group_member(GROUP, caller, level)
            continue
        for project in world.projects.values():
            gl.add_member(project.id, caller, level)
    return world
