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
from .index import RegistryIndex, all_shard_keys
from .publication import Context, ensure_source_marker, holds_item, owner_of, publish_version
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
        if owner is None or not version.isdigit() or holds_item(store, owner, info.key, int(version)):
            continue  # not a registry item, or still its model's
        try:
            store.delete(info.key, if_match=current.etag)
            dropped += 1
        except PreconditionFailed:
            pass  # republished meanwhile
    return dropped
