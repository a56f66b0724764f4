"""The vocabulary of access decisions: callers, GitLab roles, project visibility and read scopes.

A resource (experiment, registered model, STAC item) belongs to at most one GitLab project; the
caller's role on that project, or the project's visibility, decides what they may do with it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    """GitLab access levels (REST v4 ``access_level``)."""
    NONE = 0
    GUEST = 10
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50


class Action(enum.Enum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"

    @property
    def min_role(self) -> Role:
        return _MIN_ROLE[self]


_MIN_ROLE = {Action.READ: Role.GUEST, Action.WRITE: Role.DEVELOPER, Action.DELETE: Role.MAINTAINER}

PUBLIC, INTERNAL, PRIVATE = "public", "internal", "private"
VISIBILITIES = (PUBLIC, INTERNAL, PRIVATE)


@dataclass(frozen=True)
class Principal:
    """The caller. ``token`` is theirs to GitLab and never leaves this object (no repr, no compare)."""
    username: str | None = None  # None: anonymous
    user_id: int | None = None
    token: str | None = field(default=None, repr=False, compare=False)
    via_cookie: bool = False  # a browser session: writes need the CSRF check
    admin: bool = False  # a GitLab administrator: every project, and resources that belong to none

    @property
    def authenticated(self) -> bool:
        return self.username is not None


ANONYMOUS = Principal()


@dataclass(frozen=True)
class ReadScope:
    """What one caller may read, settled once per request before a search or listing runs.

    Filters apply before counting and paging, so ``numberMatched``, extents and page tokens
    are those of the readable subset only.
    """
    everything: bool = False  # access control off
    public: bool = False  # public projects, and resources that belong to no project
    internal: bool = False  # internal projects: any signed-in user
    projects: frozenset[str] = frozenset()  # ids and full paths where the caller is Guest or above

    def allows(self, project: str | None, visibility: str | None = None,
               project_id: str | None = None) -> bool:
        if self.everything:
            return True
        if project is None and project_id is None:
            return self.public
        if project in self.projects or (project_id is not None and project_id in self.projects):
            return True
        if visibility == PUBLIC:
            return self.public
        if visibility == INTERNAL:
            return self.internal
        return False  # private, or unknown: fail closed


EVERYTHING = ReadScope(everything=True)
NOTHING = ReadScope()
