"""The record operations every registry call builds on: compare-and-swap writes of model, version
and alias records (each followed by its index refresh), and the reads that resolve a name or a
live version. ``models``, ``versions`` and ``aliases`` hold the calls themselves.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

from ..mlflowapi import validation as v
from ..mlflowapi.clock import now_ms
from ..mlflowapi.errors import MlflowError, model_not_found, unavailable, version_not_found
from ..store import NotFound, ObjectStore, PreconditionFailed
from . import records as rec
from .index import RegistryIndex
from .records import ModelVersion, RegisteredModel

log = logging.getLogger(__name__)
T = TypeVar("T")


def parallel_map(fn: Callable[[Any], T], items: list[Any]) -> list[T]:
    """``fn`` over ``items`` in order; concurrently, since each is a store round trip. A pool of its
    own per call: callers nest these (a page of models, each reading its latest versions)."""
    if len(items) < 4:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, items))


class RegistryCore:
    def __init__(self, store: ObjectStore, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.clock = clock
        self.index = RegistryIndex(store)

    def cas(self, key: str, mutate: Callable[[Any], Any], default: Callable[[], Any] | None = None) -> Any:
        try:
            return self.store.update_json(key, mutate, default=default)
        except PreconditionFailed as err:
            raise unavailable(f"Too many concurrent changes, retry: {err}") from None

    def reindex(self, uid: str, numbers: Iterable[int] = ()) -> None:
        try:
            self.index.refresh(uid, numbers)
        except PreconditionFailed:  # the records are written: the next write of them (or repair) catches up
            log.warning("registry index refresh for %s lost to contention", uid)

    # -- models -----------------------------------------------------------------------------
    def resolve(self, name: Any) -> RegisteredModel:
        """The active model called ``name``, or RESOURCE_DOES_NOT_EXIST."""
        name = v.model_name(name)
        rm = rec.resolve(self.store, name)
        if rm is None:
            raise model_not_found(name)
        return rm

    def update_record(self, rm: RegisteredModel, change: Callable[[RegisteredModel], object]) -> RegisteredModel:
        """Compare-and-swap the model record, provided it is still active under ``rm.name``."""
        result: list[RegisteredModel] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            current = RegisteredModel.from_record(doc)
            if not current.active or current.name != rm.name:
                raise model_not_found(rm.name)
            change(current)
            result[:] = [current]
            return current.to_record()

        try:
            self.cas(rec.model_key(rm.uid), mutate)
        except NotFound:
            raise model_not_found(rm.name) from None
        return result[0]

    # -- versions ---------------------------------------------------------------------------
    def live_version(self, rm: RegisteredModel, number: int) -> ModelVersion:
        mv = rec.load_version(self.store, rm.uid, rm.name, number)
        if mv is None or mv.deleted:
            raise version_not_found(rm.name, number)
        return mv

    def with_aliases(self, mv: ModelVersion, uid: str, aliases: dict[str, int] | None = None) -> ModelVersion:
        aliases = rec.load_aliases(self.store, uid) if aliases is None else aliases
        mv.aliases = sorted(a for a, n in aliases.items() if n == mv.version)
        return mv

    def get_version(self, name: Any, version: Any) -> ModelVersion:
        """Live version ``version`` of the active model ``name``, with its aliases."""
        name, number = v.model_name(name), v.model_version(version)
        rm = self.resolve(name)
        return self.with_aliases(self.live_version(rm, number), rm.uid)

    def change_version(self, rm: RegisteredModel, number: int,
                       change: Callable[[ModelVersion], object]) -> ModelVersion:
        """Compare-and-swap a live version's record (its update time too), then refresh the index."""
        result: list[ModelVersion] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            mv = ModelVersion.from_record(doc, rm.name)
            if mv.deleted:
                raise version_not_found(rm.name, number)
            change(mv)
            mv.last_updated_timestamp = self.clock()
            result[:] = [mv]
            return mv.to_record()

        try:
            self.cas(rec.version_key(rm.uid, number), mutate)
        except NotFound:
            raise version_not_found(rm.name, number) from None
        self.reindex(rm.uid, [number])
        return self.with_aliases(result[0], rm.uid)

    def touch(self, rm: RegisteredModel, version: int) -> None:
        """Rewrite a version's record unchanged, so that its STAC item is published again."""
        try:
            self.change_version(rm, version, lambda mv: None)
        except MlflowError:
            pass  # deleted meanwhile: nothing to republish

    # -- aliases ----------------------------------------------------------------------------
    def unalias(self, uid: str, drop: Callable[[str, int], bool]) -> list[int]:
        """Remove the aliases ``drop`` selects; the versions they pointed at."""
        dropped: list[int] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
            dropped[:] = [int(n) for a, n in doc.items() if drop(a, int(n))]
            return {a: n for a, n in doc.items() if not drop(a, int(n))} if dropped else None

        self.cas(rec.aliases_key(uid), mutate, default=dict)
        return dropped
