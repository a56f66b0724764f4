"""Search summaries of the registry: what searches filter and sort on, without reading every record.

Summaries are spread over ``SHARDS`` documents (``mlflow/registry/index/<h>.json``): a model's
summary (name, timestamps, tags) lives in its home shard (from its uid), the summaries of its live
versions (timestamps, stage, run id, source, tags) in blocks of ``BLOCK`` version numbers, block
``b`` in the ``b``-th shard after home. So a write rewrites one shard holding at most ``BLOCK`` of
a model's versions (about 1/16 of the registry otherwise), a model's entry is read from its home
shard (plus one shard per further block), and a search reads the ``SHARDS`` documents (a fixed
number of conditional GETs, whatever the registry's size), filters and sorts the summaries, then
reads only the records of the page it returns.

A shard entry is never computed from what a writer believes it wrote: ``refresh`` re-reads the
records inside the shard's compare-and-swap, so whichever refresh lands last reflects the latest
records, and a refresh after a model's deletion removes its entries. Writers refresh after each
record write; a crash in between leaves a stale entry until the next write of that record or
``repair`` (``stacflow republish-models``). Pages re-read their records, so what a search returns
is always current; only membership and order can lag a crash.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from ..store import ObjectStore
from ..tracking.doccache import DocCache
from . import records as rec
from .records import ModelVersion, RegisteredModel

INDEX = rec.PREFIX + "index/"
SHARDS = 16
BLOCK = 512  # version numbers per block: a write of a version rewrites at most this many of its model's


def shard_key(uid: str, block: int = 0) -> str:
    """The shard of the model's summary (block 0: home) or of its versions of ``block``."""
    return f"{INDEX}{(int(uid[:8], 16) + block) % SHARDS:x}.json"


def block_of(number: int) -> int:
    return number // BLOCK


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
        self._shards: DocCache[dict[str, Any]] = DocCache(store, lambda doc: doc)

    # -- writes -------------------------------------------------------------------------
    def refresh(self, uid: str, numbers: Iterable[int] = (), *, all_versions: bool = False) -> None:
        """Bring ``uid``'s entries in line with its records: the model's, and versions ``numbers``
        (``all_versions``: every version it has, dropping summaries of any others)."""
        wanted = list(numbers)
        if all_versions:
            wanted = [rec.version_number(i.key) for i in self.store.list(rec.versions_prefix(uid))]
        by_shard: dict[str, list[int]] = {}
        for number in wanted:
            by_shard.setdefault(shard_key(uid, block_of(number)), []).append(number)
        home = shard_key(uid)
        blocks = block_of(max(wanted)) + 1 if wanted else 1
        current = rec.load_model(self.store, uid)
        if all_versions or current is None or not current.active:
            keys = [k for k in all_shard_keys() if k != home]  # removals may concern any shard
        else:
            keys = [k for k in by_shard if k != home]
        for key in keys + [home]:  # home last: its block count never announces versions not yet written
            self._refresh_shard(key, uid, by_shard.get(key, []), home=key == home, blocks=blocks,
                                replace=all_versions)

    def _refresh_shard(self, key: str, uid: str, numbers: list[int], *, home: bool, blocks: int,
                       replace: bool) -> None:
        def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
            models: dict[str, Any] = doc.setdefault("models", {})
            versions: dict[str, Any] = doc.setdefault("versions", {})
            before = (models.get(uid), versions.get(uid))
            rm = rec.load_model(self.store, uid)  # read inside the swap: the last refresh sees the last write
            if rm is None or not rm.active:
                models.pop(uid, None)
                versions.pop(uid, None)
            else:
                if home:
                    known = int((models.get(uid) or {}).get("blocks", 1))
                    models[uid] = {**model_summary(rm), "blocks": max(known, blocks)}
                mine: dict[str, Any] = {} if replace else dict(versions.get(uid) or {})
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

        self.store.update_json(key, mutate, default=dict)

    # -- reads --------------------------------------------------------------------------
    def _read(self, key: str) -> dict[str, Any]:
        loaded = self._shards.load(key)
        return loaded[1] if loaded else {}

    def entry(self, uid: str) -> ModelEntry | None:
        """The model's entry: its home shard, plus one shard per further block of versions."""
        home = self._read(shard_key(uid))
        model = (home.get("models") or {}).get(uid)
        if not model:
            return None
        others = {shard_key(uid, b) for b in range(int(model.get("blocks", 1)))} - {shard_key(uid)}
        docs = [home] + [self._read(key) for key in sorted(others)]
        return _entry(uid, model, _merged(docs).get(uid) or {})

    def entries(self) -> list[ModelEntry]:
        """Every model's entry: one conditional GET per shard, in parallel."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            docs = list(pool.map(self._read, all_shard_keys()))
        versions = _merged(docs)
        return [_entry(uid, model, versions.get(uid) or {})
                for doc in docs for uid, model in (doc.get("models") or {}).items()]


def _merged(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{uid: {n: summary}}`` over shards (a model's blocks may sit in several)."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for uid, summaries in (doc.get("versions") or {}).items():
            out.setdefault(uid, {}).update(summaries)
    return out
