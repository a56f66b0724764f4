"""The model registry on the object store, with MLflow's method names and semantics.

A thin facade: each REST call maps to one method here, done by ``models`` (registered models),
``versions`` (model versions) or ``aliases``, over ``core`` (compare-and-swap record writes and
the index refresh that follows each) and ``names`` (name claims). Records are laid out in
``records``; every write is a conditional put, and the order of the writes is what keeps
concurrent calls and crashes safe (see each module). Each record write is also the event that
republishes the version's STAC item (``registry.publication``). Searches filter and sort the
summaries of ``registry.index`` and read only the records of the page they return; pages are
capped by count and by size (``mlflowapi.pages``).

Methods return the registry's entities (``records.RegisteredModel``, ``records.ModelVersion``,
``pages.Page`` of them); their REST form is ``to_wire()``, at the HTTP edge.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..mlflowapi.clock import now_ms
from ..mlflowapi.fields import Objects
from ..mlflowapi.pages import Page
from ..store import ObjectStore
from .aliases import ModelAliases
from .core import RegistryCore
from .index import RegistryIndex
from .lineage import Tracking
from .models import RegisteredModels
from .names import NameClaims
from .records import ModelVersion, RegisteredModel
from .versions import ModelVersions


class RegistryService:
    def __init__(self, store: ObjectStore, tracking: Tracking | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.tracking = tracking
        self.core = RegistryCore(store, clock)
        self.names = NameClaims(store)
        self.models = RegisteredModels(self.core, self.names)
        self.aliases = ModelAliases(self.core)
        self.versions = ModelVersions(self.core, self.aliases, tracking)

    @property
    def index(self) -> RegistryIndex:
        return self.core.index

    # -- registered models ----------------------------------------------------------------
    def create_registered_model(self, name: str | None, tags: Objects | None = None, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        return self.models.create_registered_model(name, tags, description, deployment_job_id)

    def get_registered_model(self, name: str | None) -> RegisteredModel:
        return self.models.get_registered_model(name)

    def update_registered_model(self, name: str | None, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        return self.models.update_registered_model(name, description, deployment_job_id)

    def rename_registered_model(self, name: str | None, new_name: str | None) -> RegisteredModel:
        return self.models.rename_registered_model(name, new_name)

    def delete_registered_model(self, name: str | None) -> None:
        self.models.delete_registered_model(name)

    def search_registered_models(self, filter_string: str | None = None, max_results: int | None = None,
                                 order_by: Sequence[str] | None = None,
                                 page_token: str | None = None,
                                 visible: Callable[[Mapping[str, str]], bool] | None = None) -> Page[RegisteredModel]:
        return self.models.search_registered_models(filter_string, max_results, order_by, page_token, visible)

    def get_latest_versions(self, name: str | None, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        return self.models.get_latest_versions(name, stages)

    def set_registered_model_tag(self, name: str | None, key: str | None, value: str | None) -> None:
        self.models.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str | None, key: str | None) -> None:
        self.models.delete_registered_model_tag(name, key)

    # -- aliases --------------------------------------------------------------------------
    def set_registered_model_alias(self, name: str | None, alias: str | None, version: Any) -> None:
        self.aliases.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str | None, alias: str | None) -> None:
        self.aliases.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str | None, alias: str | None) -> ModelVersion:
        return self.aliases.get_model_version_by_alias(name, alias)

    # -- model versions -------------------------------------------------------------------
    def create_model_version(self, name: str | None, source: str | None, run_id: str | None = None, tags: Objects | None = None,
                             run_link: str | None = None, description: str | None = None,
                             model_id: str | None = None) -> ModelVersion:
        return self.versions.create_model_version(name, source, run_id, tags, run_link, description, model_id)

    def get_model_version(self, name: str | None, version: Any) -> ModelVersion:
        return self.versions.get_model_version(name, version)

    def update_model_version(self, name: str | None, version: Any, description: str | None = None) -> ModelVersion:
        return self.versions.update_model_version(name, version, description)

    def transition_model_version_stage(self, name: str | None, version: Any, stage: str | None,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        return self.versions.transition_model_version_stage(name, version, stage, archive_existing_versions)

    def delete_model_version(self, name: str | None, version: Any) -> None:
        self.versions.delete_model_version(name, version)

    def search_model_versions(self, filter_string: str | None = None, max_results: int | None = None,
                              order_by: Sequence[str] | None = None,
                              page_token: str | None = None,
                              visible: Callable[[Mapping[str, str]], bool] | None = None) -> Page[ModelVersion]:
        return self.versions.search_model_versions(filter_string, max_results, order_by, page_token, visible)

    def get_model_version_download_uri(self, name: str | None, version: Any) -> str:
        return self.versions.get_model_version_download_uri(name, version)

    def set_model_version_tag(self, name: str | None, version: Any, key: str | None, value: str | None) -> None:
        self.versions.set_model_version_tag(name, version, key, value)

    def delete_model_version_tag(self, name: str | None, version: Any, key: str | None) -> None:
        self.versions.delete_model_version_tag(name, version, key)
