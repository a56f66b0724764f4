"""MLflow's model-version calls: create, read, update, stage, tag, delete and search versions.

Numbers are claimed create-only (``n`` taken -> try ``n + 1``): no duplicates and no gaps. After
claiming, the creator re-reads the model record; deleting a model tombstones the record *before*
listing the versions it removes, so a creation racing a delete is either seen by that listing or
sees the tombstone and removes its own version (the client gets RESOURCE_DOES_NOT_EXIST, nothing
is left behind). The source marker, written after the version record, is also ensured by the
publication function, so a crash between the two loses nothing.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from ..mlflowapi import pages, search
from ..mlflowapi import validation as v
from ..mlflowapi.errors import MlflowError, invalid, invalid_source, model_not_found
from ..mlflowapi.fields import Fields, Objects
from ..mlflowapi.pages import Page
from ..mlflowapi.search.grammar import ATTRIBUTE
from ..store import NotFound, PreconditionFailed
from ..tracking.entities import LoggedModel, Run
from . import records as rec
from .aliases import ModelAliases
from .core import RegistryCore, parallel_map
from .lineage import Tracking
from .models import registry_tags, tag_key
from .records import ModelVersion
from .sources import check_source, join_uri, mark_source, parse_runs_uri, unmark_source, within

MAX_RESULTS_VERSIONS = 200_000
_LOGGED_MODEL_REF = re.compile(r"^m-[0-9a-f]+$")  # models:/<logged model id>, as opposed to models:/<name>/<n>
_SOURCE_RUN = "The run_id request parameter must identify the resource that contains the source."
_SOURCE_MODEL = "The model_id request parameter must identify the resource that contains the source."


class ModelVersions:
    def __init__(self, core: RegistryCore, aliases: ModelAliases, tracking: Tracking | None = None) -> None:
        self.core = core
        self.store = core.store
        self.aliases = aliases
        self.tracking = tracking

    def create_model_version(self, name: str | None, source: str | None, run_id: str | None = None, tags: Objects | None = None,
                             run_link: str | None = None, description: str | None = None,
                             model_id: str | None = None) -> ModelVersion:
        name = v.model_name(name)
        source = check_source(source)
        version_tags = registry_tags(tags)
        rm = self.core.resolve(name)
        source, storage, run_id, model_id = self._resolve_source(source, run_id or "", model_id or "")
        now = self.core.clock()
        mv = ModelVersion(name=rm.name, version=0, creation_timestamp=now, last_updated_timestamp=now,
                          source=source, storage_location=storage, run_id=run_id, run_link=run_link or "",
                          model_id=model_id, description=description or "", tags=version_tags)
        number = self._next_version_hint(rm.uid)
        while True:
            mv.version = number
            try:
                self.store.put_json(rec.version_key(rm.uid, number), mv.to_record(), if_none_match=True)
                break
            except PreconditionFailed:
                number += 1
        self.store.put_json(rec.hint_key(rm.uid), {"next": number + 1})
        mark_source(self.store, rm.uid, mv)
        # A delete tombstones the record before listing versions: either it saw ours, or we see it.
        current = rec.load_model(self.store, rm.uid)
        if current is None or not current.active:
            unmark_source(self.store, rm.uid, mv)
            self.store.delete(rec.version_key(rm.uid, number))
            self.store.delete(rec.hint_key(rm.uid))
            raise model_not_found(name)
        mv.name = current.name  # renamed meanwhile: the version is the model's, under its new name
        self.core.reindex(rm.uid, [number])
        return mv

    def _next_version_hint(self, uid: str) -> int:
        try:
            return max(1, int(self.store.get_json(rec.hint_key(uid))["next"]))
        except (NotFound, KeyError, TypeError, ValueError):
            last = None
            for info in self.store.list(rec.versions_prefix(uid)):
                last = info.key
            return rec.version_number(last) + 1 if last else 1

    def _resolve_source(self, source: str, run_id: str, model_id: str) -> tuple[str, str, str, str]:
        """(source, storage location, run id, model id), checked like MLflow's server does."""
        scheme = source.split(":", 1)[0].lower()
        if scheme == "runs":
            source_run, path = parse_runs_uri(source)
            if run_id and run_id != source_run:
                raise invalid_source(source, _SOURCE_RUN)
            run = self._run(source_run, source)
            return source, join_uri(run.info.artifact_uri or "", path), source_run, model_id
        if scheme == "models":
            ref = source.split(":", 1)[1].lstrip("/")
            if _LOGGED_MODEL_REF.match(ref):
                if model_id and model_id != ref:
                    raise invalid_source(source, _SOURCE_MODEL)
                logged = self._logged_model(ref, source)
                return source, logged.artifact_uri, run_id or logged.source_run_id or "", ref
            name, _, version = ref.partition("/")
            if "@" in ref:
                name, _, alias = ref.partition("@")
                target = self.aliases.get_model_version_by_alias(name, alias)
            else:
                target = self.core.get_version(name, version)
            return (f"models:/{target.name}/{target.version}", target.storage_location,
                    run_id or target.run_id, model_id or target.model_id)
        if model_id:
            logged = self._logged_model(model_id, source)
            if scheme == "mlflow-artifacts" and not within(source, logged.artifact_uri):
                raise invalid_source(source, _SOURCE_MODEL)
            run_id = run_id or logged.source_run_id or ""
        elif run_id:
            run = self._run(run_id, source)
            if scheme == "mlflow-artifacts" and not within(source, run.info.artifact_uri or ""):
                raise invalid_source(source, _SOURCE_RUN)
        elif scheme in ("mlflow-artifacts", "http", "https"):
            raise invalid_source(source, _SOURCE_RUN)
        return source, source, run_id, model_id

    def _run(self, run_id: str, source: str) -> Run:
        run = self.tracking.get_run(run_id) if self.tracking else None
        if not run:
            raise invalid_source(source, f"Run '{run_id}' does not exist.")
        return run

    def _logged_model(self, model_id: str, source: str) -> LoggedModel:
        logged = self.tracking.get_logged_model(model_id) if self.tracking else None
        if not logged:
            raise invalid_source(source, f"Logged model '{model_id}' does not exist.")
        return logged

    def get_model_version(self, name: str | None, version: Any) -> ModelVersion:
        return self.core.get_version(name, version)

    def _update(self, name: str | None, version: Any, change: Callable[[ModelVersion], object]) -> ModelVersion:
        name, number = v.model_name(name), v.model_version(version)
        return self.core.change_version(self.core.resolve(name), number, change)

    def update_model_version(self, name: str | None, version: Any, description: str | None = None) -> ModelVersion:
        def change(mv: ModelVersion) -> None:
            if description is not None:
                mv.description = description
        return self._update(name, version, change)

    def transition_model_version_stage(self, name: str | None, version: Any, stage: str | None,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        stage = v.model_stage(stage)
        if archive_existing_versions and stage not in v.ACTIVE_MODEL_STAGES:
            raise invalid(f"Model version transition cannot archive existing model versions because "
                          f"'{stage}' is not an Active stage. Valid stages are {list(v.ACTIVE_MODEL_STAGES)}")
        name, number = v.model_name(name), v.model_version(version)
        rm = self.core.resolve(name)
        mv = self.core.change_version(rm, number, lambda mv: setattr(mv, "current_stage", stage))
        if archive_existing_versions:
            entry = self.core.index.entry(rm.uid)
            for other in sorted(entry.versions) if entry else []:
                if other != number and entry is not None and entry.stage_of(other) == stage:
                    try:
                        self.core.change_version(rm, other, lambda o: setattr(
                            o, "current_stage", "Archived" if o.current_stage == stage else o.current_stage))
                    except MlflowError:
                        pass  # deleted meanwhile
        return mv

    def delete_model_version(self, name: str | None, version: Any) -> None:
        name, number = v.model_name(name), v.model_version(version)
        rm = self.core.resolve(name)
        self.core.change_version(rm, number, lambda mv: setattr(mv, "deleted", True))
        self.core.unalias(rm.uid, lambda a, n: n == number)

    def set_model_version_tag(self, name: str | None, version: Any, key: str | None, value: str | None) -> None:
        key, value = v.tag(Fields({"key": key, "value": value}), v.MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH)
        self._update(name, version, lambda mv: mv.tags.__setitem__(key, value))

    def delete_model_version_tag(self, name: str | None, version: Any, key: str | None) -> None:
        key = tag_key(key)
        self._update(name, version, lambda mv: mv.tags.pop(key, None))

    def get_model_version_download_uri(self, name: str | None, version: Any) -> str:
        mv = self.core.get_version(name, version)
        return mv.storage_location or mv.source

    def search_model_versions(self, filter_string: str | None = None, max_results: int | None = None,
                              order_by: Sequence[str] | None = None,
                              page_token: str | None = None,
                              visible: Callable[[Mapping[str, str]], bool] | None = None) -> Page[ModelVersion]:
        """One page of versions: the index's summaries filtered and sorted, then the page's records read.
        ``visible`` (a predicate on the registered model's tags) applies before filtering and paging.

        ``name = 'x'`` or ``name IN (...)`` reads only those models' shards."""
        limit = v.registry_max_results(max_results, 10_000, MAX_RESULTS_VERSIONS)
        order = list(order_by or []) or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
        names = _names_in(search.MODEL_VERSIONS.parse(filter_string))
        if names is None:
            entries = self.core.index.entries()
        else:
            found = [rec.resolve(self.store, n) for n in names]
            entries = [e for e in (self.core.index.entry(rm.uid) for rm in found if rm is not None) if e is not None]
        subjects = [search.Subject((e.uid, e.name, n), {
            "name": e.name, "version": n, "creation_timestamp": s["creation_timestamp"],
            "last_updated_timestamp": s["last_updated_timestamp"], "source": s["source"],
            "run_id": s.get("run_id", ""), "current_stage": s.get("current_stage", rec.STAGE_NONE)},
            tags=s.get("tags") or {}) for e in entries if visible is None or visible(e.tags)
            for n, s in e.versions.items()]
        matched = search.MODEL_VERSIONS.filter(subjects, filter_string)
        ordered = search.MODEL_VERSIONS.sort(matched, order)
        return pages.page(ordered, page_token, limit, wire=ModelVersion.to_wire, load=self._records_of)

    def _records_of(self, window: Sequence[search.Subject]) -> list[ModelVersion | None]:
        """The live versions a page of summaries names, with their aliases (None: gone since)."""
        refs: list[tuple[str, str, int]] = [s.record for s in window]
        uids = sorted({uid for uid, _, _ in refs})
        aliases = dict(zip(uids, parallel_map(lambda uid: rec.load_aliases(self.store, uid), uids)))

        def fetch(ref: tuple[str, str, int]) -> ModelVersion | None:
            uid, name, number = ref
            mv = rec.load_version(self.store, uid, name, number)
            return None if mv is None or mv.deleted else self.core.with_aliases(mv, uid, aliases[uid])
        return parallel_map(fetch, refs)


def _names_in(clauses: list[Any]) -> list[str] | None:
    """The model names a filter restricts versions to (``name = 'x'`` or ``name IN (...)``), if any."""
    for clause in clauses:
        if clause.type == ATTRIBUTE and clause.key == "name":
            if clause.comparator == "=":
                return [str(clause.value)]
            if clause.comparator == "IN":
                return [str(value) for value in clause.value]
    return None
