"""MLflow's registered-model calls: create, read, update, tag, rename, delete and search models.

A model's record is written first, then its name is claimed (``names``). Renaming announces the
new name on the record (``pending_name``), claims it, switches the record's name by
compare-and-swap, then releases the old claim; versions are keyed by the model's uid, so they
never move. Deleting tombstones the record *before* listing the versions it removes (see
``versions`` for the creation that may race it).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..mlflowapi import pages, search
from ..mlflowapi import validation as v
from ..mlflowapi.errors import MlflowError, model_exists
from ..mlflowapi.fields import Fields, Objects
from ..mlflowapi.pages import Page
from . import records as rec
from .core import RegistryCore, parallel_map
from .index import ModelEntry
from .names import NameClaims
from .records import ModelVersion, RegisteredModel
from .sources import unmark_source

MAX_RESULTS_MODELS = 1000
_MAX_FORMER_NAMES = 8  # recent names of a model: their items are removed when it is republished


def registry_tags(tags: Objects | None) -> dict[str, str]:
    return v.tags(tags, v.MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH)


def tag_key(key: Any) -> str:
    return v.name(key, "key", "Tag")


class RegisteredModels:
    def __init__(self, core: RegistryCore, names: NameClaims) -> None:
        self.core = core
        self.store = core.store
        self.names = names

    def create_registered_model(self, name: str | None, tags: Objects | None = None, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        name = v.model_name(name)
        now = self.core.clock()
        rm = RegisteredModel(name=name, creation_timestamp=now, last_updated_timestamp=now,
                             description=description or "", tags=registry_tags(tags),
                             deployment_job_id=deployment_job_id or "", uid=rec.new_uid())
        if rec.resolve(self.store, name) is not None:
            raise model_exists(name)
        # The record first: a claim is live only while its model holds the name, so it never dangles.
        self.store.put_json(rec.model_key(rm.uid), rm.to_record(), if_none_match=True)
        try:
            self.names.claim(name, rm.uid)
        except MlflowError:
            self.store.delete(rec.model_key(rm.uid))  # nobody else knows this uid
            raise
        self.core.reindex(rm.uid)
        return rm  # a new model has no versions nor aliases yet: its view is itself

    def get_registered_model(self, name: str | None) -> RegisteredModel:
        return self.view(self.core.resolve(name))

    def _update(self, name: str | None, change: Callable[[RegisteredModel], object]) -> RegisteredModel:
        rm = self.core.resolve(name)

        def apply(current: RegisteredModel) -> None:
            change(current)
            current.last_updated_timestamp = self.core.clock()

        updated = self.core.update_record(rm, apply)
        self.core.reindex(rm.uid)
        return updated

    def update_registered_model(self, name: str | None, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        def change(rm: RegisteredModel) -> None:
            if description is not None:
                rm.description = description
            if deployment_job_id is not None:
                rm.deployment_job_id = deployment_job_id
        return self.view(self._update(name, change))

    def set_registered_model_tag(self, name: str | None, key: str | None, value: str | None) -> None:
        key, value = v.tag(Fields({"key": key, "value": value}), v.MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH)
        self._update(name, lambda rm: rm.tags.__setitem__(key, value))

    def delete_registered_model_tag(self, name: str | None, key: str | None) -> None:
        key = tag_key(key)
        self._update(name, lambda rm: rm.tags.pop(key, None))

    def delete_registered_model(self, name: str | None) -> None:
        """Tombstone the record, release the name, then remove versions, aliases and markers."""
        rm = self.core.resolve(name)
        now = self.core.clock()

        def tombstone(current: RegisteredModel) -> None:
            current.state, current.last_updated_timestamp = rec.DELETED, now
        tomb = self.core.update_record(rm, tombstone)
        for held in {tomb.name, tomb.pending_name} - {""}:
            self.names.release(held, tomb.uid)
        self.core.reindex(tomb.uid)
        self.store.delete(rec.aliases_key(tomb.uid))
        self.purge_versions(tomb)

    def purge_versions(self, tomb: RegisteredModel) -> None:
        """Remove a deleted model's versions and their source markers (also the repair of a crashed delete)."""
        for info in list(self.store.list(rec.versions_prefix(tomb.uid))):
            mv = rec.load_version(self.store, tomb.uid, tomb.name, rec.version_number(info.key))
            if mv is not None:
                unmark_source(self.store, tomb.uid, mv)
            self.store.delete(info.key)
        self.store.delete(rec.hint_key(tomb.uid))

    def rename_registered_model(self, name: str | None, new_name: str | None) -> RegisteredModel:
        """Announce, claim the new name, switch the record's name, release the old name. Versions stay put."""
        rm = self.core.resolve(name)
        new_name = v.model_name(new_name, "new_name")
        if new_name == rm.name or rec.resolve(self.store, new_name) is not None:
            raise model_exists(new_name)
        self.core.update_record(rm, lambda current: setattr(current, "pending_name", new_name))
        try:
            self.names.claim(new_name, rm.uid)
        except MlflowError:
            self.withdraw(rm, new_name)
            raise
        now = self.core.clock()

        def switch(current: RegisteredModel) -> None:
            if current.pending_name != new_name:  # a concurrent rename announced another name
                raise MlflowError(f"Registered Model (name={rm.name}) is being renamed concurrently.",
                                  "RESOURCE_CONFLICT")
            current.former_names = ([n for n in current.former_names if n not in (new_name, rm.name)]
                                    + [rm.name])[-_MAX_FORMER_NAMES:]
            current.name, current.pending_name, current.last_updated_timestamp = new_name, "", now
        try:
            renamed = self.core.update_record(rm, switch)
        except MlflowError:
            self.names.release(new_name, rm.uid)
            raise
        self.names.release(rm.name, rm.uid)
        self.core.reindex(rm.uid)
        return self.view(renamed)

    def withdraw(self, rm: RegisteredModel, pending: str) -> None:
        """Clear a rename's announcement of ``pending`` (a failed or crashed rename)."""
        def clear(current: RegisteredModel) -> None:
            if current.pending_name == pending:
                current.pending_name = ""
        try:
            self.core.update_record(rm, clear)
        except MlflowError:
            pass  # deleted or renamed meanwhile: nothing announced any more

    def search_registered_models(self, filter_string: str | None = None, max_results: int | None = None,
                                 order_by: Sequence[str] | None = None,
                                 page_token: str | None = None,
                                 visible: Callable[[Mapping[str, str]], bool] | None = None) -> Page[RegisteredModel]:
        """One page of models: the index's summaries filtered and sorted, then the page's records read
        (a fixed number of index GETs plus O(page) record GETs). ``visible`` (a predicate on a model's
        tags: the caller's read access) applies before filtering and paging."""
        limit = v.registry_max_results(max_results, 100, MAX_RESULTS_MODELS)
        search.REGISTERED_MODELS.parse(filter_string)  # a bad filter fails even over no models
        subjects = [search.Subject(e, {"name": e.name, "creation_timestamp": e.creation_timestamp,
                                       "last_updated_timestamp": e.last_updated_timestamp}, tags=e.tags)
                    for e in self.core.index.entries() if visible is None or visible(e.tags)]
        matched = search.REGISTERED_MODELS.filter(subjects, filter_string)
        ordered = search.REGISTERED_MODELS.sort(matched, order_by)
        return pages.page(ordered, page_token, limit, wire=RegisteredModel.to_wire,
                          load=lambda window: parallel_map(self._view_of, [s.record for s in window]))

    def _view_of(self, entry: ModelEntry) -> RegisteredModel | None:
        rm = rec.load_model(self.store, entry.uid)
        return self.view(rm, entry) if rm is not None and rm.active else None

    def _latest(self, rm: RegisteredModel, entry: ModelEntry | None) -> dict[str, ModelVersion]:
        """The newest live version per stage (numbers from the index, records read fresh)."""
        if entry is None:
            return {}
        numbers = list(entry.latest_per_stage().values())
        found = parallel_map(lambda n: rec.load_version(self.store, rm.uid, rm.name, n), numbers)
        return {mv.current_stage: mv for mv in found if mv is not None and not mv.deleted}

    def get_latest_versions(self, name: str | None, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        wanted = [v.model_stage(s) for s in (stages or [])] or list(v.MODEL_STAGES)
        rm = self.core.resolve(name)
        latest = self._latest(rm, self.core.index.entry(rm.uid))
        return [latest[s] for s in wanted if s in latest]

    def view(self, rm: RegisteredModel, entry: ModelEntry | None = None) -> RegisteredModel:
        """``rm`` with what MLflow returns along with a model: its latest version per stage, its aliases."""
        entry = entry if entry is not None else self.core.index.entry(rm.uid)
        latest = self._latest(rm, entry)
        if entry is not None:  # like the SQL store: the model's update time follows its versions'
            rm.last_updated_timestamp = max(rm.last_updated_timestamp, entry.last_updated_timestamp)
        rm.latest_versions = [latest[s] for s in v.MODEL_STAGES if s in latest]
        rm.aliases = rec.load_aliases(self.store, rm.uid)
        return rm
