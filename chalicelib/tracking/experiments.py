"""Experiments: one small JSON object each, names made unique by create-only reservation objects.

Keys: ``mlflow/experiments/<id>.json`` (the record, updated by compare-and-swap),
``mlflow/experiment-names/<sha256 of name>.json`` (create-only: whoever creates it owns the
name), ``mlflow/experiment-counter.json`` (CAS counter for MLflow's integer ids).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..store import NotFound, ObjectStore, PreconditionFailed
from .errors import MlflowError, already_exists, invalid, not_found

EXPERIMENTS = "mlflow/experiments/"
NAMES = "mlflow/experiment-names/"
COUNTER = "mlflow/experiment-counter.json"
DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
ORPHAN_AFTER_S = 60  # a name reservation whose experiment never appeared (crashed creator)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = "active"
    creation_time: int = 0
    last_update_time: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Experiment":
        return cls(**doc)

    def doc(self) -> dict[str, Any]:
        return dict(self.__dict__, tags=dict(self.tags))

    def to_json(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "name": self.name,
                "artifact_location": self.artifact_location, "lifecycle_stage": self.lifecycle_stage,
                "creation_time": self.creation_time, "last_update_time": self.last_update_time,
                "tags": [{"key": k, "value": v} for k, v in self.tags.items()]}


def default_artifact_location(experiment_id: str) -> str:
    root = os.environ.get("STACFLOW_ARTIFACT_ROOT")
    return f"{root.rstrip('/')}/{experiment_id}" if root else f"mlflow-artifacts:/{experiment_id}"


def _name_key(name: str) -> str:
    return NAMES + hashlib.sha256(name.encode()).hexdigest() + ".json"


def _exp_key(experiment_id: str) -> str:
    return f"{EXPERIMENTS}{experiment_id}.json"


class ExperimentStore:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, Experiment]] = {}  # id -> (etag, record)

    # -- reads --------------------------------------------------------------------------
    def get(self, experiment_id: str) -> Experiment:
        try:
            obj = self.store.get(_exp_key(experiment_id))
        except NotFound:
            if experiment_id == DEFAULT_ID:
                return self._ensure_default()
            raise not_found(f"No Experiment with id={experiment_id} exists") from None
        return Experiment.from_doc(obj.json())

    def get_by_name(self, name: str) -> Experiment:
        try:
            experiment_id = self.store.get_json(_name_key(name))["experiment_id"]
            exp = self.get(experiment_id)
        except (NotFound, MlflowError):
            if name == DEFAULT_NAME:
                exp = self._ensure_default()
                if exp.name == name:
                    return exp
            raise not_found(f"Could not find experiment with name '{name}'") from None
        if exp.name != name:  # renamed; the old reservation is being released
            raise not_found(f"Could not find experiment with name '{name}'")
        return exp

    def list_all(self) -> list[Experiment]:
        """Every experiment: one LIST, then GETs only for records whose ETag changed."""
        infos = list(self.store.list(EXPERIMENTS))
        if not any(i.key == _exp_key(DEFAULT_ID) for i in infos):
            self._ensure_default()
            infos = list(self.store.list(EXPERIMENTS))
        out: list[Experiment] = []
        with self._lock:
            seen = set()
            for info in infos:
                exp_id = info.key[len(EXPERIMENTS):-5]
                seen.add(exp_id)
                cached = self._cache.get(exp_id)
                if cached is None or cached[0] != info.etag:
                    try:
                        obj = self.store.get(info.key)
                    except NotFound:
                        continue
                    cached = (obj.etag, Experiment.from_doc(obj.json()))
                    self._cache[exp_id] = cached
                out.append(cached[1])
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return out

    # -- writes -------------------------------------------------------------------------
    def _ensure_default(self) -> Experiment:
        t = now_ms()
        exp = Experiment(DEFAULT_ID, DEFAULT_NAME, default_artifact_location(DEFAULT_ID), "active", t, t)
        try:
            self.store.put_json(_name_key(DEFAULT_NAME), {"experiment_id": DEFAULT_ID, "time": t},
                                if_none_match=True)
        except PreconditionFailed:
            pass
        try:
            self.store.put_json(_exp_key(DEFAULT_ID), exp.doc(), if_none_match=True)
        except PreconditionFailed:
            return Experiment.from_doc(self.store.get_json(_exp_key(DEFAULT_ID)))
        return exp

    def _next_id(self) -> str:
        def bump(doc: dict[str, int]) -> dict[str, int]:
            return {"next": doc["next"] + 1}
        return str(self.store.update_json(COUNTER, bump, default=lambda: {"next": 0})["next"])

    def _reserve(self, name: str, experiment_id: str) -> None:
        """Take ``name`` for ``experiment_id``; RESOURCE_ALREADY_EXISTS if someone holds it."""
        key = _name_key(name)
        doc = {"experiment_id": experiment_id, "time": now_ms()}
        try:
            self.store.put_json(key, doc, if_none_match=True)
            return
        except PreconditionFailed:
            pass
        current = self.store.get(key)
        holder = current.json()["experiment_id"]
        try:
            exp = self.get(holder)
            if exp.name == name:
                state = " in deleted state" if exp.lifecycle_stage == "deleted" else ""
                raise already_exists(f"Experiment '{name}' already exists{state}.")
        except MlflowError as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            if now_ms() - current.json().get("time", 0) < ORPHAN_AFTER_S * 1000:
                raise already_exists(f"Experiment '{name}' already exists.") from None
        try:  # the holder crashed before writing its experiment, or renamed away: take over
            self.store.put_json(key, doc, if_match=current.etag)
        except PreconditionFailed:
            raise already_exists(f"Experiment '{name}' already exists.") from None

    def create(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> Experiment:
        try:
            self.get_by_name(name)
            raise already_exists(f"Experiment '{name}' already exists.")
        except MlflowError as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        experiment_id = self._next_id()
        self._reserve(name, experiment_id)
        t = now_ms()
        exp = Experiment(experiment_id, name, artifact_location or default_artifact_location(experiment_id),
                         "active", t, t, tags)
        self.store.put_json(_exp_key(experiment_id), exp.doc(), if_none_match=True)
        return exp

    def update(self, experiment_id: str, change: Any) -> Experiment:
        """CAS-update the record; ``change(exp)`` mutates it in place."""
        self.get(experiment_id)  # 404 first, and materialises "Default"

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            exp = Experiment.from_doc(doc)
            change(exp)
            exp.last_update_time = now_ms()
            return exp.doc()
        return Experiment.from_doc(self.store.update_json(_exp_key(experiment_id), mutate))

    def rename(self, experiment_id: str, new_name: str) -> None:
        exp = self.get(experiment_id)
        if exp.lifecycle_stage != "active":
            raise invalid("Cannot rename a non-active experiment.")
        if exp.name == new_name:
            return
        self._reserve(new_name, experiment_id)

        def set_name(e: Experiment) -> None:
            e.name = new_name
        self.update(experiment_id, set_name)
        try:
            old = self.store.get(_name_key(exp.name))
            if old.json()["experiment_id"] == experiment_id:
                self.store.delete(old.key, if_match=old.etag)
        except (NotFound, PreconditionFailed):
            pass

    def set_lifecycle(self, experiment_id: str, stage: str) -> None:
        exp = self.get(experiment_id)
        if stage == "deleted" and experiment_id == DEFAULT_ID:
            raise invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
        if stage == "active" and exp.lifecycle_stage != "deleted":
            raise invalid(f"Cannot restore an active experiment. Experiment id={experiment_id}")
        if stage == "deleted" and exp.lifecycle_stage != "active":
            raise invalid(f"Cannot delete an already deleted experiment. Experiment id={experiment_id}")

        def set_stage(e: Experiment) -> None:
            e.lifecycle_stage = stage
        self.update(experiment_id, set_stage)
