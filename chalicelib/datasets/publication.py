"""A GitLab project's current state -> its items in ``collections/<cid>/items/`` (writing one publishes it).

``sync_project`` reads the project from GitLab (never from the webhook that triggered it), builds
its items (``items.build_items``, one per version tag plus the opted-in development item), writes
those that changed and deletes those the project no longer has: deleted tags, a lost topic, a
deleted or renamed project. Which keys a project may have written is tracked in
``datasets/projects/<id>.json`` (compare-and-swap), since a deleted project can no longer say.

Concurrency (two workers syncing one project, events redelivered, reordered or duplicated):

- every item write is conditional on the ETag read *before* GitLab was read (create-only when it
  was absent, compare-and-swap else): of two syncs, one that read GitLab earlier cannot overwrite
  what a later one wrote; it loses the condition, re-reads everything and rebuilds, as the
  registry's publication does;
- the project record is claimed (compare-and-swap) with every key the sync may write before the
  first write, and settled (compare-and-swap on the claimed ETag) with the keys that exist after
  the last one. If another sync claimed in between, the settle fails and the sync runs again: it
  may have removed (or not yet seen) a key this one wrote. So the last sync to settle read GitLab
  after every earlier sync's claim, and what stays published is GitLab's latest state;
- a key the project no longer has stays in the record as ``gone`` for ``GONE_GRACE`` seconds and is
  re-checked (and deleted if present) by every sync until then: a stale sync that died between its
  write and its settle leaves no item behind once its event is redelivered.

Items are owned: an item whose ``stacflow:project_id`` names another project, or a registered
model's item (``mlflow:registered_model_id``), is never overwritten or deleted (logged as a conflict).

Availability: the references of the pending assets are recorded before the items are written and
the written items settled after (``availability.record``/``settle``), so an object that lands while
a sync runs is caught by its own event or by the settle, whichever comes last.
"""
from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..store import NotFound, ObjectStore, PreconditionFailed, StoredObject
from ..store.contention import Backoff, Contention
from .snapshot import BuildSettings, Remote
from .webhook import CHANGES_PREFIX

if TYPE_CHECKING:
    from .gitlab import GitLabReader
    from .items import Reference

log = logging.getLogger(__name__)

PROJECTS_PREFIX = "datasets/projects/"
GONE_GRACE = 3600.0  # s: longer than any one event's processing (a Lambda runs at most 900 s)
REGISTRY_FIELD = "mlflow:registered_model_id"
_CHANGE_KEY = re.compile(rf"^{re.escape(CHANGES_PREFIX)}(\d+)/[^/]+\.json$")
SYNC_BACKOFF = Backoff(first=0.02, cap=0.5, budget=30.0, attempts=20)


@dataclass
class DatasetContext:
    """What publishing datasets needs, built by the composition root."""

    store: ObjectStore
    reader: GitLabReader | None  # None: no GitLab configured (change records are kept, not processed)
    remote: Remote
    build: BuildSettings = field(default_factory=BuildSettings)


@dataclass
class SyncReport:
    project_id: int
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    attempts: int = 0


def project_key(project_id: int) -> str:
    return f"{PROJECTS_PREFIX}{project_id}.json"


def item_key(item: dict[str, Any]) -> str:
    """Where the item is written: the static catalog for a public project, else the private prefix
    (a project changing visibility moves its items: new keys written, old ones deleted)."""
    from ..stac import catalog
    return catalog.stored_item_key(item)


def change_project(key: str) -> int | None:
    """The project id of a change record's key."""
    m = _CHANGE_KEY.match(key)
    return int(m.group(1)) if m else None


def _owner(doc: Any) -> tuple[str, Any]:
    from .items import PROJECT_ID
    props = doc.get("properties") if isinstance(doc, dict) else None
    props = props if isinstance(props, dict) else {}
    if REGISTRY_FIELD in props:
        return "registry", props[REGISTRY_FIELD]
    return "project", props.get(PROJECT_ID)


def _ours(obj: StoredObject, project_id: int) -> bool:
    try:
        kind, owner = _owner(obj.json())
    except ValueError:
        return False  # not JSON: the catalog function rejects it; not ours to touch
    return kind == "project" and owner in (None, project_id, str(project_id))


def _read(store: ObjectStore, key: str) -> StoredObject | None:
    try:
        return store.get(key)
    except NotFound:
        return None


def desired_items(ctx: DatasetContext, project_id: int, previous: Iterable[dict[str, Any]] = ()
                  ) -> tuple[dict[str, dict[str, Any]], list[Reference]]:
    """The items GitLab's current state gives the project, by key, and their pending assets' references.

    ``previous``: the project's items as stored; objects they found in the remote are not HEADed again
    (content-addressed: an md5's object never changes)."""
    from .items import build
    assert ctx.reader is not None
    out: dict[str, dict[str, Any]] = {}
    references: list[Reference] = []
    previous = list(previous)
    for snapshot in ctx.reader.snapshots(project_id):
        built = build(snapshot, ctx.remote, ctx.build, previous)
        for item in built.items:
            out[item_key(item)] = item
        references += built.references
    return out, references


def sync_project(ctx: DatasetContext, project_id: int, *, backoff: Backoff = SYNC_BACKOFF) -> SyncReport:
    """Bring the project's published items in line with GitLab's current state."""
    report = SyncReport(project_id)
    written: set[str] = set()  # keys this call wrote: a retry must see them even if the record lost them

    def attempt() -> SyncReport:
        report.attempts += 1
        return _attempt(ctx, project_id, report, written)
    try:
        return backoff.run(attempt, f"syncing project {project_id}")
    except Contention:
        log.warning("project %s: sync gave up under contention; its event will be redelivered", project_id)
        raise


def _attempt(ctx: DatasetContext, project_id: int, report: SyncReport, written: set[str]) -> SyncReport:
    store, rkey = ctx.store, project_key(project_id)
    record_obj = _read(store, rkey)
    record = ProjectRecord.parse(record_obj.json() if record_obj else None, project_id)
    candidates = set(record.items) | set(record.gone) | written
    # Read every key the project may have before GitLab: writes are conditional on these ETags.
    current = {key: _read(store, key) for key in sorted(candidates)}
    previous = [obj.json() for obj in current.values() if obj is not None and _ours(obj, project_id)]
    desired, references = desired_items(ctx, project_id, previous)
    for key in desired:
        if key not in current:
            current[key] = _read(store, key)

    # Claim: before writing a key the record does not list yet, the record lists it.
    claim = record.claimed(desired)
    etag = record_obj.etag if record_obj else None
    if claim.items != record.items:
        etag = _swap(store, rkey, claim, etag)

    report.written, report.deleted, report.conflicts, report.unchanged = [], [], [], 0
    writes: list[str] = []
    for key, item in sorted(desired.items()):
        obj = current.get(key)
        if obj is not None and not _ours(obj, project_id):
            log.error("project %s: %s belongs to %s; not overwritten", project_id, key, _owner(obj.json()))
            report.conflicts.append(key)
        elif obj is not None and _same(obj, item):
            report.unchanged += 1
        else:
            writes.append(key)
    from . import availability
    # The pending assets' references go before their items (an unchanged item's were recorded with it).
    availability.record(store, [ref for ref in references if ref.item_key in writes])
    for key in writes:
        obj = current.get(key)
        written.add(key)
        if obj is None:
            store.put_json(key, desired[key], if_none_match=True)  # PreconditionFailed: created meanwhile -> retry
        else:
            store.put_json(key, desired[key], if_match=obj.etag)
        report.written.append(key)
    for key in sorted(set(current) - set(desired)):
        obj = current[key]
        if obj is None or not _ours(obj, project_id):
            continue
        store.delete(key, if_match=obj.etag)
        report.deleted.append(key)

    # Settle, only if no other sync claimed or settled since our read (each write of the record carries
    # a fresh nonce, so its ETag changes even when its keys do not): else go again, seeing what it did.
    settled = claim.settled(set(desired) - set(report.conflicts), time.time())
    if report.written or report.deleted or settled != claim:
        _swap(store, rkey, settled, etag)
    availability.settle(store, ctx.remote, report.written)  # objects that landed between the build's look and the write
    log.info("project %s synced: %d written, %d deleted, %d unchanged", project_id, len(report.written),
             len(report.deleted), report.unchanged)
    return report


def _swap(store: ObjectStore, key: str, record: ProjectRecord, etag: str | None) -> str:
    doc = {**record.as_json(), "nonce": secrets.token_hex(8)}
    if etag is None:
        return store.put_json(key, doc, if_none_match=True).etag
    return store.put_json(key, doc, if_match=etag).etag


def _same(obj: StoredObject, item: dict[str, Any]) -> bool:
    try:
        return bool(obj.json() == item)
    except ValueError:
        return False


@dataclass
class ProjectRecord:
    """``datasets/projects/<id>.json``: the keys a project's items may be at."""

    project_id: int
    items: list[str] = field(default_factory=list)  # keys published by the last settled sync
    gone: dict[str, float] = field(default_factory=dict)  # key -> since when it should not exist

    @classmethod
    def parse(cls, doc: Any, project_id: int) -> ProjectRecord:
        if not isinstance(doc, dict):
            return cls(project_id)
        items = [k for k in doc.get("items", []) if isinstance(k, str)]
        gone = {k: float(v) for k, v in (doc.get("gone") or {}).items()
                if isinstance(k, str) and isinstance(v, (int, float))}
        return cls(project_id, items, gone)

    def claimed(self, desired: Iterable[str]) -> ProjectRecord:
        """Every key it had, plus the ones about to be written."""
        keys = sorted(set(self.items) | set(desired))
        return ProjectRecord(self.project_id, keys, {k: v for k, v in self.gone.items() if k not in keys})

    def settled(self, published: set[str], now: float) -> ProjectRecord:
        """``published`` live; every other key known gone since it was first seen gone (expired ones dropped)."""
        gone = {k: self.gone.get(k, now) for k in (set(self.items) | set(self.gone)) - published}
        return ProjectRecord(self.project_id, sorted(published),
                             {k: t for k, t in sorted(gone.items()) if now - t < GONE_GRACE})

    def as_json(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "items": self.items, "gone": self.gone}


def sync_changes(ctx: DatasetContext, keys: Iterable[str]) -> dict[int, SyncReport]:
    """Sync every project the change records name (each once), then remove the records."""
    projects: dict[int, list[str]] = {}
    for key in keys:
        pid = change_project(key)
        if pid is not None:
            projects.setdefault(pid, []).append(key)
    if not projects:
        return {}
    if ctx.reader is None:
        log.warning("GitLab is not configured (STACFLOW_GITLAB_URL): %d change record(s) kept, not processed",
                    sum(map(len, projects.values())))
        return {}
    reports = {}
    for pid, records in sorted(projects.items()):
        reports[pid] = sync_project(ctx, pid)
        for key in records:  # processed: a redelivered event of a removed record still syncs (by its key)
            ctx.store.delete(key)
    return reports


__all__ = ["DatasetContext", "GONE_GRACE", "PROJECTS_PREFIX", "ProjectRecord", "SyncReport",
           "change_project", "desired_items", "item_key", "project_key", "sync_changes", "sync_project"]
