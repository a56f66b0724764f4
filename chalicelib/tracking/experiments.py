"""Experiments: one small JSON object each, names made unique by create-only reservation objects.

Keys: ``mlflow/experiments/<id>.json`` (the record, updated by compare-and-swap),
``mlflow/experiment-names/<sha256 of name>.json`` (create-only: whoever holds it owns the name),
``mlflow/experiment-counter.json`` (CAS counter for MLflow's integer ids).

Taking a name (create or rename) is a claim in three steps: (1) the record states the name as its
``pending_name`` (a create writes its record with no name yet, invisible to reads); (2) the
reservation is created, create-only; (3) the record takes the name by compare-and-swap, if its
claim still stands. A claimant finding the reservation held reads the holder's record *after*
the reservation: the name is taken if the record has it or claims it, and free only if the holder
moved away from it. A claim stalled longer than ``ORPHAN_AFTER_S`` is fenced (its record's claim is
cleared by compare-and-swap, so its step 3 fails) before the reservation changes hands. Two
claimants never both finish: each takes the reservation by create-only or compare-and-swap on the
same ETag. A rename releases the old name only after the record has the new one.

An experiment's lifecycle (delete, restore) is one compare-and-swap of its record, whatever the
number of runs: a run's lifecycle as read is derived from its experiment's (see
``runs.effective_stage``), so no fan-out to run logs can be left half done.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable

from ..mlflowapi.clock import now_ms
from ..mlflowapi.errors import (MlflowError, experiment_exists, experiment_name_not_found, experiment_not_found,
                                invalid, unavailable)
from ..store import NotFound, ObjectStore, PreconditionFailed, StoredObject
from .doccache import DocCache
from .entities import Experiment
from .eventlog import new_entry_key

EXPERIMENTS = "mlflow/experiments/"
NAMES = "mlflow/experiment-names/"
COUNTER = "mlflow/experiment-counter.json"
DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
ORPHAN_AFTER_S = 60.0  # a claim older than this, never finished, is abandoned (its claimant crashed)
_CLAIM_ATTEMPTS = 8


class _Retry(Exception):
    """The state moved under a claim step: evaluate it again."""


def default_artifact_location(experiment_id: str, root: str | None = None) -> str:
    """Under ``root`` (``s3://…``, clients write there directly), else proxied by the artifact API."""
    return f"{root.rstrip('/')}/{experiment_id}" if root else f"mlflow-artifacts:/{experiment_id}"


class ExperimentStore:
    def __init__(self, store: ObjectStore, *, artifact_root: str | None = None) -> None:
        self.store = store
        self.artifact_root = artifact_root
        self._records = DocCache(store, Experiment.from_record)

    def _load(self, experiment_id: str) -> tuple[str, Experiment] | None:
        """The stored record (pending creates included) and its ETag."""
        return self._records.load(_exp_key(experiment_id))

    def get(self, experiment_id: str) -> Experiment:
        loaded = self._load(experiment_id)
        if loaded is None or not loaded[1].name:
            if experiment_id == DEFAULT_ID:
                return self._ensure_default()
            raise experiment_not_found(experiment_id)
        return loaded[1]

    def lifecycle(self, experiment_id: str) -> tuple[str, str]:
        """(lifecycle stage, key of its last change): what runs' lifecycles derive from."""
        exp = self.get(experiment_id)
        return exp.lifecycle_stage, exp.lifecycle_key

    def get_by_name(self, name: str) -> Experiment:
        try:
            experiment_id = self.store.get_json(_name_key(name))["experiment_id"]
            exp = self.get(experiment_id)
        except (NotFound, MlflowError):
            if name == DEFAULT_NAME:
                exp = self._ensure_default()
                if exp.name == name:
                    return exp
            raise experiment_name_not_found(name) from None
        if exp.name != name:  # being claimed by a rename, or renamed away and not yet released
            raise experiment_name_not_found(name)
        return exp

    def list_all(self) -> list[Experiment]:
        """Every experiment: one LIST, then GETs only for records whose ETag changed."""
        records = self._records.listing(EXPERIMENTS)
        if not any(e.experiment_id == DEFAULT_ID for e in records):
            self._ensure_default()
            records = self._records.listing(EXPERIMENTS)
        return [e for e in records if e.name]  # a create still claiming its name is not an experiment yet

    # -- writes -------------------------------------------------------------------------
    def _ensure_default(self) -> Experiment:
        t = now_ms()
        exp = Experiment(DEFAULT_ID, DEFAULT_NAME, default_artifact_location(DEFAULT_ID, self.artifact_root), "active", t, t)
        try:
            self.store.put_json(_name_key(DEFAULT_NAME), {"experiment_id": DEFAULT_ID, "time": t},
                                if_none_match=True)
        except PreconditionFailed:
            pass
        try:
            self.store.put_json(_exp_key(DEFAULT_ID), exp.to_record(), if_none_match=True)
        except PreconditionFailed:
            return Experiment.from_record(self.store.get_json(_exp_key(DEFAULT_ID)))
        return exp

    def _next_id(self) -> str:
        def bump(doc: dict[str, int]) -> dict[str, int]:
            return {"next": doc["next"] + 1}
        return str(self.store.update_json(COUNTER, bump, default=lambda: {"next": 0})["next"])

    def _claim(self, name: str, experiment_id: str) -> None:
        """Step 2: take the reservation of ``name`` for ``experiment_id`` (whose record claims it)."""
        key = _name_key(name)
        for _ in range(_CLAIM_ATTEMPTS):
            doc = {"experiment_id": experiment_id, "time": now_ms()}
            try:
                self.store.put_json(key, doc, if_none_match=True)
                return
            except PreconditionFailed:
                pass
            try:
                current = self.store.get(key)
                holder = current.json()["experiment_id"]
                if holder != experiment_id:
                    self._check_stale(holder, name, current)
                # Ours already (a repeated claim) or stale: compare-and-swap, so that of two claimants
                # who both judged it so, one wins.
                self.store.put_json(key, doc, if_match=current.etag)
                return
            except (NotFound, PreconditionFailed, _Retry):
                continue
        raise unavailable(f"Experiment name '{name}' is being claimed concurrently; retry")

    def _check_stale(self, holder: str, name: str, reservation: StoredObject) -> None:
        """RESOURCE_ALREADY_EXISTS unless ``holder``'s reservation of ``name`` is stale (read after it)."""
        loaded = self._load(holder)
        if loaded is None:
            # A record gone (a fenced create) or, from before claims, not written yet by its creator.
            if now_ms() - reservation.json().get("time", 0) < ORPHAN_AFTER_S * 1000:
                raise experiment_exists(name)
            return
        etag, exp = loaded
        if exp.name == name:
            raise experiment_exists(name, deleted=exp.lifecycle_stage == "deleted")
        if exp.pending_name != name:
            return  # renamed away, or its claim failed: the reservation is left over
        if now_ms() - exp.pending_since < ORPHAN_AFTER_S * 1000:
            raise experiment_exists(name)
        try:  # fence the stalled claim: its step 3 fails from now on
            if exp.name:
                fenced = dataclasses.replace(exp, pending_name=None, pending_since=0)
                self.store.put_json(_exp_key(holder), fenced.to_record(), if_match=etag)
            else:
                self.store.delete(_exp_key(holder), if_match=etag)
        except PreconditionFailed:
            raise _Retry from None

    def _finish_claim(self, experiment_id: str, name: str, check: Callable[[Experiment], None]) -> Experiment:
        """Step 3: the record takes ``name`` if its claim was not fenced meanwhile."""
        def take(doc: dict[str, Any]) -> dict[str, Any]:
            exp = Experiment.from_record(doc)
            if exp.pending_name != name:
                raise _expired(name)
            check(exp)
            exp.name, exp.pending_name, exp.pending_since, exp.last_update_time = name, None, 0, now_ms()
            return exp.to_record()
        try:
            return Experiment.from_record(self.store.update_json(_exp_key(experiment_id), take))
        except NotFound:  # a fenced create's record is deleted
            raise _expired(name) from None

    def _release(self, name: str, experiment_id: str) -> None:
        """Drop ``experiment_id``'s reservation of ``name``, unless its record holds that name."""
        try:
            current = self.store.get(_name_key(name))
            if current.json()["experiment_id"] != experiment_id:
                return
            loaded = self._load(experiment_id)
            if loaded is not None and loaded[1].name == name:
                return
            self.store.delete(current.key, if_match=current.etag)
        except (NotFound, PreconditionFailed):
            pass

    def create(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> Experiment:
        try:
            self.get_by_name(name)
            raise experiment_exists(name)
        except MlflowError as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        experiment_id = self._next_id()
        t = now_ms()
        pending = Experiment(experiment_id, "", artifact_location or default_artifact_location(experiment_id, self.artifact_root),
                             "active", t, t, tags, pending_name=name, pending_since=t)
        self.store.put_json(_exp_key(experiment_id), pending.to_record(), if_none_match=True)
        try:
            self._claim(name, experiment_id)
            return self._finish_claim(experiment_id, name, lambda exp: None)
        except BaseException:
            self._release(name, experiment_id)
            self._drop_pending_create(experiment_id)
            raise

    def _drop_pending_create(self, experiment_id: str) -> None:
        loaded = self._load(experiment_id)
        if loaded is not None and not loaded[1].name:
            try:
                self.store.delete(_exp_key(experiment_id), if_match=loaded[0])
            except PreconditionFailed:
                pass

    def update(self, experiment_id: str, change: Any) -> Experiment:
        """CAS-update the record; ``change(exp)`` mutates it in place (or raises to abort)."""
        self.get(experiment_id)  # 404 first, and materialises "Default"

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            exp = Experiment.from_record(doc)
            change(exp)
            exp.last_update_time = now_ms()
            return exp.to_record()
        return Experiment.from_record(self.store.update_json(_exp_key(experiment_id), mutate))

    def rename(self, experiment_id: str, new_name: str) -> None:
        exp = self.get(experiment_id)
        if exp.name == new_name and exp.lifecycle_stage == "active":
            return

        def active(e: Experiment) -> None:
            if e.lifecycle_stage != "active":
                raise invalid("Cannot rename a non-active experiment.")

        def claim(e: Experiment) -> None:
            active(e)
            e.pending_name, e.pending_since = new_name, now_ms()
        old_name = self.update(experiment_id, claim).name
        try:
            self._claim(new_name, experiment_id)
            self._finish_claim(experiment_id, new_name, active)
        except BaseException:
            self._release(new_name, experiment_id)
            self._drop_claim(experiment_id, new_name)
            raise
        self._release(old_name, experiment_id)

    def _drop_claim(self, experiment_id: str, name: str) -> None:
        def drop(doc: dict[str, Any]) -> dict[str, Any] | None:
            if doc.get("pending_name") != name:
                return None
            return dict(doc, pending_name=None, pending_since=0)
        try:
            self.store.update_json(_exp_key(experiment_id), drop)
        except (NotFound, PreconditionFailed):
            pass

    def set_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Delete or restore: one compare-and-swap; the runs' lifecycles follow (runs.effective_stage)."""
        if stage == "deleted" and experiment_id == DEFAULT_ID:
            raise invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
        key = new_entry_key()

        def set_stage(e: Experiment) -> None:
            if stage == "active" and e.lifecycle_stage != "deleted":
                raise invalid(f"Cannot restore an active experiment. Experiment id={experiment_id}")
            if stage == "deleted" and e.lifecycle_stage != "active":
                raise invalid(f"Cannot delete an already deleted experiment. Experiment id={experiment_id}")
            e.lifecycle_stage, e.lifecycle_key = stage, max(key, e.lifecycle_key)
        self.update(experiment_id, set_stage)


def _expired(name: str) -> MlflowError:
    return unavailable(f"The claim of experiment name '{name}' expired; retry")


def _name_key(name: str) -> str:
    return NAMES + hashlib.sha256(name.encode()).hexdigest() + ".json"


def _exp_key(experiment_id: str) -> str:
    return f"{EXPERIMENTS}{experiment_id}.json"
