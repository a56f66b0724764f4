"""Bring the registry and its STAC items back in line after crashes or lost events.

``stacflow republish-models`` runs ``repair``. Every step is idempotent and re-reads the records,
so it may run at any time, any number of times; it only ever converges state to what the
records say:

- an active model without a live name claim, older than ``abandoned_after_ms``, is a creation
  that crashed before claiming its name (its client got an error): it is tombstoned;
- a rename that crashed before switching names is withdrawn (its pending claim released);
- a deleted model's remaining versions and source markers are removed (a crashed delete), as are
  versions of models that have no record at all;
- every live version gets its source marker (a crash between the version record and its marker);
- the search index is rebuilt from the records, and every version is republished;
- items of the ``ai-model`` collection that their model no longer publishes at that place (left
  by renames beyond the remembered former names, or by lost events) are removed.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

from ..mlflowapi.clock import now_ms
from ..stac.model_items import COLLECTION
from ..store import NotFound, ObjectStore, PreconditionFailed
from . import records as rec
from .index import RegistryIndex, all_shard_keys, model_summary, version_summary
from .publication import (Context, _build, _comparable, ensure_source_marker, holds_item, item_key, owner_of,
                          publish_version)
from .records import RegisteredModel
from .service import RegistryService

ABANDONED_AFTER_MS = 3_600_000
ITEMS = f"collections/{COLLECTION}/items/"


def repair(ctx: Context, *, abandoned_after_ms: int = ABANDONED_AFTER_MS,
           clock: Callable[[], int] = now_ms) -> dict[str, int]:
    store = ctx.store
    service = RegistryService(store, ctx.tracking, clock=clock)
    report: Counter[str] = Counter()
    uids = [parsed[1] for info in list(store.list(rec.MODELS))
            if (parsed := rec.parse_registry_key(info.key)) is not None]
    for uid in uids:
        rm = rec.load_model(store, uid)
        if rm is None:
            continue
        report["models"] += 1
        if rm.active and not _claimed(store, rm):
            if clock() - rm.creation_timestamp < abandoned_after_ms:
                continue  # perhaps still being created
            rm = _tombstone(store, rm)
            report["abandoned_creations"] += 1
        if rm.active and rm.pending_name:
            service.models.withdraw(rm, rm.pending_name)
            service.names.release(rm.pending_name, uid)
            report["withdrawn_renames"] += 1
        numbers = _numbers(store, uid)
        if not rm.active:
            for name in {rm.name, rm.pending_name} - {""}:
                service.names.release(name, uid)
            if numbers:
                service.models.purge_versions(rm)
                report["purged_versions"] += len(numbers)
        else:
            report["markers_written"] += sum(ensure_source_marker(store, rm, n) for n in numbers)
        service.index.refresh(uid, all_versions=True)
        for number in numbers:
            report[publish_version(ctx, uid, number)] += 1
    report["orphan_models"] += _drop_orphans(store, set(uids))
    report["stale_index_entries"] += _drop_stale_entries(store, service.index, set(uids))
    report["stray_items"] += _drop_stray_items(store)
    return dict(report)


def _claimed(store: ObjectStore, rm: RegisteredModel) -> bool:
    found = rec.resolve(store, rm.name)
    return found is not None and found.uid == rm.uid


def _tombstone(store: ObjectStore, rm: RegisteredModel) -> RegisteredModel:
    def mutate(doc: dict[str, object]) -> dict[str, object] | None:
        current = RegisteredModel.from_record(doc)
        if not current.active:
            return None
        current.state = rec.DELETED
        return current.to_record()
    store.update_json(rec.model_key(rm.uid), mutate)
    return rec.load_model(store, rm.uid) or rm


def _numbers(store: ObjectStore, uid: str) -> list[int]:
    return [rec.version_number(info.key) for info in store.list(rec.versions_prefix(uid))]


def _drop_orphans(store: ObjectStore, uids: set[str]) -> int:
    """Versions (and their markers) of models that have no record at all; how many such models."""
    dropped = 0
    for info in list(store.list(rec.VERSIONS)):
        uid = info.key[len(rec.VERSIONS):].split("/", 1)[0]
        if uid in uids or rec.load_model(store, uid) is not None:
            continue
        orphan = RegisteredModel(name="", creation_timestamp=0, last_updated_timestamp=0, uid=uid,
                                 state=rec.DELETED)
        RegistryService(store).models.purge_versions(orphan)
        uids.add(uid)  # purged in one go
        dropped += 1
    return dropped


def _drop_stale_entries(store: ObjectStore, index: RegistryIndex, uids: set[str]) -> int:
    """Index entries of models that have no record (their refresh drops them)."""
    stale = 0
    for key in all_shard_keys():
        try:
            doc = store.get_json(key)
        except NotFound:
            continue
        for uid in set(doc.get("models") or {}) | set(doc.get("versions") or {}):
            if uid not in uids:
                index.refresh(uid)
                stale += 1
    return stale


def _recorded(item: dict[str, object]) -> dict[str, object]:
    """The item as the registry's records make it. Its ``metric:*`` properties are the run's metrics as
    of publication (later log-batch calls do not republish it; ``republish-models`` refreshes them)."""
    out = _comparable(item)
    props = out.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: v for k, v in props.items() if not str(k).startswith("metric:")}
    return out


def _publishes(store: ObjectStore, uid: str, key: str, number: int) -> bool:
    """Whether a live version ``number`` of live model ``uid`` has its item at ``key``."""
    if not holds_item(store, uid, key, number):
        return False
    rm = rec.load_model(store, uid)
    mv = rec.load_version(store, uid, rm.name, number) if rm is not None else None
    return mv is not None and not mv.deleted


def _drop_stray_items(store: ObjectStore) -> int:
    """Model items whose model (by uid) is gone, or publishes that version under another id."""
    dropped = 0
    for info in list(store.list(ITEMS)):
        try:
            current = store.get(info.key)
            item = current.json()
        except (NotFound, ValueError):
            continue
        owner = owner_of(item)
        version = str((item.get("properties") or {}).get("mlflow:model_version", ""))
        if owner is None or not version.isdigit() or _publishes(store, owner, info.key, int(version)):
            continue  # not a registry item, or still its model's
        try:
            store.delete(info.key, if_match=current.etag)
            dropped += 1
        except PreconditionFailed:
            pass  # republished meanwhile
    return dropped


def check(ctx: Context) -> list[tuple[str, str]]:
    """What ``repair`` would change, read-only: (key, problem) for every registry item that differs from
    what the records publish, every item no version holds, every search-index entry that differs from
    the records. Safe while the service runs (an in-flight event shows as a difference until it lands)."""
    store = ctx.store
    problems: list[tuple[str, str]] = []
    expected: dict[str, dict[str, object]] = {}  # uid -> index entry the records make
    uids = [parsed[1] for info in list(store.list(rec.MODELS))
            if (parsed := rec.parse_registry_key(info.key)) is not None]
    for uid in uids:
        rm = rec.load_model(store, uid)
        if rm is None or not rm.active:
            continue
        versions: dict[int, dict[str, object]] = {}
        for number in _numbers(store, uid):
            key = item_key(rm.name, number)
            mv = rec.load_version(store, uid, rm.name, number)
            if mv is not None and not mv.deleted:
                versions[number] = version_summary(mv)
            outcome, item = _build(ctx, rm, uid, number)
            try:
                current = store.get_json(key)
            except NotFound:
                current = None
            if item is not None and current is None:
                problems.append((key, f"version {number} of {rm.name!r} is publishable but has no item"))
            elif item is None and current is not None and owner_of(current) == uid:
                problems.append((key, f"version {number} of {rm.name!r} is {outcome} but has an item"))
            elif item is not None and current is not None and _recorded(current) != _recorded(item):
                problems.append((key, f"item differs from the records of version {number} of {rm.name!r}"))
        expected[uid] = {**model_summary(rm), "versions": versions}
    index = RegistryIndex(store)
    for entry in index.entries():
        want = expected.pop(entry.uid, None)
        got = {"name": entry.name, "creation_timestamp": entry.creation_timestamp, "tags": entry.tags,
               "versions": entry.versions}
        if want is None:
            problems.append((rec.model_key(entry.uid), "in the registry index but not an active model"))
        elif {k: want[k] for k in got} != got:
            diff = sorted(k for k in got if want[k] != got[k])
            if "versions" in diff:
                wv, gv = want["versions"], entry.versions
                assert isinstance(wv, dict)
                diff += [f"v{n}" for n in sorted(set(wv) | set(gv)) if wv.get(n) != gv.get(n)]
            problems.append((rec.model_key(entry.uid), f"its registry index entry differs from its records "
                                                       f"({', '.join(diff)}: `stacflow republish-models` refreshes it)"))
    for uid in expected:
        problems.append((rec.model_key(uid), "active but missing from the registry index"))
    for info in store.list(ITEMS):
        try:
            item = store.get_json(info.key)
        except (NotFound, ValueError):
            continue
        owner = owner_of(item)
        version = str((item.get("properties") or {}).get("mlflow:model_version", ""))
        if owner is not None and version.isdigit() and not _publishes(store, owner, info.key, int(version)):
            problems.append((info.key, "a model item that no live version publishes here"))
    return problems
