"""Search summaries of the registry: what searches filter and sort on, without reading every record.

Models are spread over ``SHARDS`` documents (``mlflow/registry/index/<h>.json``, ``h`` the first
hex digit of the model's uid); each holds, for its models, a summary of the model (name,
timestamps, tags) and of each live version (timestamps, stage, run id, source, tags). A search
reads the shards (a fixed number of conditional GETs, whatever the registry's size), filters and
sorts the summaries, then reads only the records of the page it returns.

A shard entry is never computed from what a writer believes it wrote: ``refresh`` re-reads the
records inside the shard's compare-and-swap, so whichever refresh lands last reflects the latest
records, and a refresh after a model's deletion removes its entries. Writers refresh after each
record write; a crash in between leaves a stale entry until the next write of that record or
``repair`` (``stacflow republish-models``). Pages re-read their records, so what a search returns
is always current; only membership and order can lag a crash.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from ..store import NotFound, NotModified, ObjectStore
from . import records as rec
from .records import ModelVersion, RegisteredModel

INDEX = rec.PREFIX + "index/"
SHARDS = 16


def shard_key(uid: str) -> str:
    return f"{INDEX}{uid[0]}.json"


def all_shard_keys() -> list[str]:
    return [f"{INDEX}{h:x}.json" for h in range(SHARDS)]


def model_summary(rm: RegisteredModel) -> dict[str, Any]:
    return {"name": rm.name, "creation_timestamp": rm.creation_timestamp,
            "last_updated_timestamp": rm.last_updated_timestamp, "tags": rm.tags}


def version_summary(mv: ModelVersion) -> dict[str, Any]:
    doc: dict[str, Any] = {"creation_timestamp": mv.creation_timestamp,
                           "last_updated_timestamp": mv.last_updated_timestamp, "source": mv.source}
    if mv.current_stage != rec.STAGE_NONE:
        doc["current_stage"] = mv.current_stage
    if mv.run_id:
        doc["run_id"] = mv.run_id
    if mv.tags:
        doc["tags"] = mv.tags
    return doc


@dataclass(frozen=True)
class ModelEntry:
    uid: str
    name: str
    creation_timestamp: int
    last_updated_timestamp: int  # the model's, or its latest version's if later (as MLflow's SQL store)
    tags: dict[str, str]
    versions: dict[int, dict[str, Any]]  # live versions' summaries

    def stage_of(self, number: int) -> str:
        return str(self.versions[number].get("current_stage", rec.STAGE_NONE))

    def latest_per_stage(self) -> dict[str, int]:
        latest: dict[str, int] = {}
        for number in self.versions:
            stage = self.stage_of(number)
            latest[stage] = max(latest.get(stage, 0), number)
        return latest


def _entry(uid: str, model: dict[str, Any], versions: dict[str, Any]) -> ModelEntry:
    summaries = {int(n): v for n, v in versions.items()}
    updated = max([int(model["last_updated_timestamp"])]
                  + [int(v["last_updated_timestamp"]) for v in summaries.values()])
    return ModelEntry(uid=uid, name=model["name"], creation_timestamp=int(model["creation_timestamp"]),
                      last_updated_timestamp=updated, tags=dict(model.get("tags") or {}), versions=summaries)


class RegistryIndex:
    """Reads (ETag-cached per process) and refreshes the shards."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- writes -------------------------------------------------------------------------
    def refresh(self, uid: str, numbers: Iterable[int] = (), *, all_versions: bool = False) -> None:
        """Bring ``uid``'s entries in line with its records: the model's, and versions ``numbers``."""
        wanted = list(numbers)

        def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
            models: dict[str, Any] = doc.setdefault("models", {})
            versions: dict[str, Any] = doc.setdefault("versions", {})
            before = (models.get(uid), versions.get(uid))
            rm = rec.load_model(self.store, uid)
            if rm is None or not rm.active:
                models.pop(uid, None)
                versions.pop(uid, None)
            else:
                models[uid] = model_summary(rm)
                mine: dict[str, Any] = dict(versions.get(uid) or {})
                numbers = wanted
                if all_versions:
                    mine = {}
                    numbers = [rec.version_number(i.key) for i in self.store.list(rec.versions_prefix(uid))]
                for number in numbers:
                    mv = rec.load_version(self.store, uid, rm.name, number)
                    if mv is None or mv.deleted:
                        mine.pop(str(number), None)
                    else:
                        mine[str(number)] = version_summary(mv)
                if mine:
                    versions[uid] = mine
                else:
                    versions.pop(uid, None)
            return None if (models.get(uid), versions.get(uid)) == before else doc

        self.store.update_json(shard_key(uid), mutate, default=dict)

    # -- reads --------------------------------------------------------------------------
    def _read(self, key: str) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(key)
        try:
            got = self.store.get(key, if_none_match=cached[0] if cached else None)
        except NotModified:
            assert cached is not None
            return cached[1]
        except NotFound:
            return {}
        doc = got.json()
        with self._lock:
            self._cache[key] = (got.etag, doc)
        return doc  # type: ignore[no-any-return]

    def entry(self, uid: str) -> ModelEntry | None:
        doc = self._read(shard_key(uid))
        model = (doc.get("models") or {}).get(uid)
        return _entry(uid, model, (doc.get("versions") or {}).get(uid) or {}) if model else None

    def entries(self) -> list[ModelEntry]:
        """Every model's entry: one conditional GET per shard, in parallel."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            docs = list(pool.map(self._read, all_shard_keys()))
        return [_entry(uid, model, (doc.get("versions") or {}).get(uid) or {})
                for doc in docs for uid, model in (doc.get("models") or {}).items()]
