"""Who may do what on MLflow's resources: each belongs to the GitLab project of its ``stacflow.project`` tag.

Experiments and registered models carry the tag (set at creation, required when access control is
on, never changed afterwards: set/delete answer PERMISSION_DENIED); runs and logged models belong to
their experiment, model versions to their registered model, artifacts (``<experiment id>/...``) to
their experiment. Reads need Guest, writes Developer, deletes Maintainer on that project
(``auth.service``). Resources without the tag (the default experiment "0", anything created while
access control was off) are readable like public ones and writable by GitLab administrators only.

With access control off every check returns at once, without reading anything.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from .. import services
from ..auth.access import Action
from ..auth.errors import Forbidden
from ..mlflowapi.errors import MlflowError, invalid
from ..mlflowapi.fields import Fields
from . import auth

if TYPE_CHECKING:
    from ..tracking.service import TrackingService

PROJECT_TAG = "stacflow.project"

READ, WRITE, DELETE = Action.READ, Action.WRITE, Action.DELETE


def enabled() -> bool:
    return services.access().enabled


def project_of(tags: Mapping[str, str]) -> str | None:
    value = (tags.get(PROJECT_TAG) or "").strip()
    return value or None


def signed_in_or_anonymous_read() -> None:
    """Before a look-up by name: an anonymous caller who may read nothing gets 401, not a 404."""
    if enabled():
        _gate(READ)


# -- ownership of new resources, immutability of the tag ------------------------------------------
def creating(tags: Iterable[Fields], kind: str) -> None:
    """A new experiment or registered model: its project tag is required, and the caller a Developer there."""
    if not enabled():
        return
    _gate(WRITE)  # 401 before 400: an anonymous caller learns nothing about the request
    project = project_of({t.string("key") or "": t.string("value") or "" for t in tags})
    if project is None:
        raise invalid(f"A {kind} needs the tag '{PROJECT_TAG}' (the GitLab project id or full path that owns it)")
    auth.require(project, WRITE)
    group = services.settings().gitlab_group
    if group:
        path = services.access().project_path(auth.caller(), project) or ""
        if not path.startswith(group + "/"):
            raise invalid(f"The tag '{PROJECT_TAG}' must name a project of this workspace's GitLab group '{group}'")


def changing_tag(key: str | None, current: Callable[[], str | None], deleting: bool = False) -> None:
    """The project tag is fixed once set: nobody changes or deletes it (so caches of it never go
    stale); administrators may only set it on a resource that has none (adopting what was created
    while access control was off)."""
    if key != PROJECT_TAG or not enabled():
        return
    if deleting or not auth.caller().admin or current() is not None:
        raise Forbidden(f"the tag '{PROJECT_TAG}' cannot be changed or deleted")


# -- checks on existing resources ---------------------------------------------------------------------
class _Owners:
    """Experiment id -> project, per tracking service: the tag never changes, so it is read once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_service: weakref.WeakKeyDictionary[TrackingService, dict[str, str | None]] = \
            weakref.WeakKeyDictionary()

    def of(self, tracking: TrackingService, eid: str) -> str | None:
        with self._lock:
            known = self._by_service.setdefault(tracking, {})
            if eid in known:
                return known[eid]
        project = project_of(tracking.get_experiment(eid).tags)
        if project is not None:  # set once, never changed: safe to keep (an untagged one may be adopted)
            with self._lock:
                known[eid] = project
        return project


_owners = _Owners()


def model_project(name: str | None) -> str | None:
    return project_of(services.registry().get_registered_model(name).tags)


def experiment_project(eid: str) -> str | None:
    from ..mlflowapi import validation as v
    return _owners.of(services.tracking(), v.experiment_id(eid))


def _gate(action: Action) -> None:
    """Anonymous callers who may not ``action`` anything are refused (401) before any look-up, so
    whether a resource exists is not theirs to learn."""
    principal = auth.caller()
    if not principal.authenticated and (action is not READ or not services.access().anonymous_read):
        auth.require(None, action)  # raises Unauthenticated


def experiment(eid: str, action: Action) -> None:
    if enabled():
        _gate(action)
        auth.require(experiment_project(eid), action)


def run(run_id: str, action: Action) -> None:
    if enabled():
        _gate(action)
        experiment(services.tracking().logs.experiment_of(run_id), action)


def logged_model(model_id: str, action: Action) -> None:
    if enabled():
        _gate(action)
        experiment(services.tracking().get_logged_model(model_id, True).experiment_id, action)


def registered_model(name: str | None, action: Action) -> None:
    if enabled():
        _gate(action)
        auth.require(model_project(name), action)


def artifact(path: str, action: Action) -> None:
    """``<experiment id>/<run id>/artifacts/...`` or ``<experiment id>/models/<id>/artifacts/...``."""
    if enabled():
        _gate(action)
        head = path.strip("/").split("/", 1)[0]
        if not head:  # the root listing names no experiment: administrators only
            auth.require(None, WRITE if action is READ else action)
            return
        experiment(head, action)


def version_source(source: str | None) -> None:
    """A model version's source is read (its files, signature and sizes reach the version's STAC item):
    the caller must be able to read what it points at, whichever form it takes."""
    if not enabled() or not source:
        return
    from urllib.parse import unquote, urlsplit

    from ..registry import sources
    scheme = urlsplit(source).scheme.lower()
    if scheme == "runs":
        run(sources.parse_runs_uri(source)[0], READ)
        return
    if scheme == "models":
        head, _, rest = urlsplit(source).path.strip("/").partition("/")
        if head.startswith("m-"):
            logged_model(head, READ)
        else:
            registered_model(unquote(head), READ)
        return
    prefix = sources.artifact_prefix(services.store(), source)
    root = services.settings().artifact_root
    if prefix is None and root and sources.within(source, root):
        prefix = sources.ARTIFACTS_PREFIX + unquote(urlsplit(source).path)[len(urlsplit(root).path):].strip("/")
    if prefix is not None and prefix.startswith(sources.ARTIFACTS_PREFIX):
        artifact(prefix[len(sources.ARTIFACTS_PREFIX):], READ)
    elif prefix is not None:  # the store's own objects outside the artifacts: administrators only
        auth.require(None, WRITE)


# -- searches: filtered before they page --------------------------------------------------------
def readable_experiments(eids: list[str]) -> list[str]:
    """The requested experiments the caller may read (the others simply show no runs or models)."""
    if not enabled():
        return eids
    may_read = auth.readable()
    out = []
    for eid in eids:
        try:
            project = experiment_project(eid)
        except MlflowError:  # an unknown or malformed id: the search itself answers as MLflow does
            out.append(eid)
            continue
        if may_read(project):
            out.append(eid)
    return out


def tag_filter() -> Callable[[Mapping[str, str]], bool] | None:
    """A predicate on a resource's tags for the caller's searches (None: no filtering)."""
    if not enabled():
        return None
    may_read = auth.readable()
    return lambda tags: may_read(project_of(tags))
