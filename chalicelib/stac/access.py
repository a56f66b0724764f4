"""Who may read a STAC item: its GitLab project and that project's visibility, as stored in the item.

An item names its project in ``stacflow:project`` (full path) and/or ``stacflow:project_id``, with
the project's ``stacflow:visibility`` at publication. An item of no project is public; an item of a
project whose visibility is missing or unknown is treated as private (fail closed). Where an item is
*stored* follows the same rule (``is_public``): public items in the static catalog, the others under
``catalog.PRIVATE_PREFIX``, which the static catalog never links.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..auth.access import PUBLIC, ReadScope

PROJECT = "stacflow:project"  # GitLab path_with_namespace
PROJECT_ID = "stacflow:project_id"
VISIBILITY = "stacflow:visibility"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None


def owner(props: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(project path, project id, visibility) of an item's properties, as ``ReadScope.allows`` takes them."""
    return _text(props.get(PROJECT)), _text(props.get(PROJECT_ID)), _text(props.get(VISIBILITY))


def item_owner(item: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    props = item.get("properties")
    return owner(props if isinstance(props, dict) else {})


def project_of(item: Mapping[str, Any]) -> str | None:
    """The project an access check names for ``item``: its path, else its id (None: no project)."""
    path, pid, _ = item_owner(item)
    return path if path is not None else pid


def _public(project: str | None, project_id: str | None, visibility: str | None) -> bool:
    return (project is None and project_id is None) or visibility == PUBLIC


def is_public(item: Mapping[str, Any]) -> bool:
    """Readable by everyone allowed to read public data: no project, or a public one."""
    return _public(*item_owner(item))


def allows(scope: ReadScope, item: Mapping[str, Any]) -> bool:
    if scope.everything:
        return True
    project, project_id, visibility = item_owner(item)
    return scope.allows(project, visibility, project_id)


class Owners:
    """Per-row owners of a table of items, grouped: a scope is evaluated once per distinct
    (project, id, visibility), then broadcast to the rows with one numpy take."""

    def __init__(self, projects: list[Any], project_ids: list[Any], visibilities: list[Any]) -> None:
        groups: dict[tuple[str | None, str | None, str | None], int] = {}
        codes = np.empty(len(projects), dtype=np.intp)
        for row, raw in enumerate(zip(projects, project_ids, visibilities)):
            key = (_text(raw[0]), _text(raw[1]), _text(raw[2]))
            codes[row] = groups.setdefault(key, len(groups))
        self.groups = list(groups)
        self.codes = codes

    def readable(self, scope: ReadScope) -> np.ndarray:
        allowed = np.fromiter((scope.allows(p, v, i) for p, i, v in self.groups), dtype=bool, count=len(self.groups))
        return allowed[self.codes] if len(self.codes) else np.zeros(0, dtype=bool)
