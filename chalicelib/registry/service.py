"""The model registry on the object store, with MLflow's method names and semantics.

Each REST call maps to one method here. Every record is its own object (see ``records``),
written with conditional puts: a model is created create-only, version numbers are claimed
create-only (``n`` taken -> try ``n + 1``), so concurrent registrations get 1, 2, 3... with no
duplicates and no gaps; read-modify-writes are compare-and-swap. Each write is also the event
that republishes the version's STAC item (``functions/registry.py``).
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..store import NotFound, ObjectStore, PreconditionFailed
from ..tracking import search
from ..tracking.errors import MlflowError, already_exists, invalid, not_found
from . import records as rec
from .lineage import Tracking
from .records import ModelVersion, RegisteredModel
from .sources import artifact_prefix, check_source, join_uri, parse_runs_uri, within

MAX_RESULTS_MODELS = 1000
MAX_RESULTS_VERSIONS = 200_000
_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_TAG_KEY = re.compile(r"^[/\w.\- :]*$")
_MAX_TAG_KEY = 250
_MAX_TAG_VALUE = 100_000
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]+$")
_NEXT_HINTS = rec.PREFIX + "next-version/"  # not authoritative: where to start probing for a free number


def now_ms() -> int:
    return int(time.time() * 1000)


# -- validation (MLflow's rules, mlflow/utils/validation.py) ---------------------------
def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid(f"Missing value for required parameter '{field}'.")
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if name in (".", "..") or name.startswith("../") or len(name) > 256 or "\x00" in name:
        raise invalid(f"Invalid value '{name}' for parameter '{field}'.")
    return name


def check_version(version: Any) -> int:
    try:
        number = int(str(version))
    except (TypeError, ValueError):
        raise invalid(f"Parameter 'version' must be an integer, got '{version}'.") from None
    if number < 1:
        raise invalid(f"Parameter 'version' must be positive, got '{version}'.")
    return number


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise invalid("Missing value for required parameter 'key'.")
    if len(key) > _MAX_TAG_KEY or not _TAG_KEY.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise invalid(f"Invalid tag key '{key}'. Names may only contain alphanumerics, underscores (_), "
                      "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/).")
    text = "" if value is None else str(value)
    if len(text) > _MAX_TAG_VALUE:
        raise invalid(f"Tag value for '{key}' exceeds the maximum length of {_MAX_TAG_VALUE}.")
    return key, text


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not alias:
        raise invalid("Registered model alias name cannot be empty.")
    if not _ALIAS.match(alias) or len(alias) > 255:
        raise invalid(f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
                      "underscores (_), and dashes (-).")
    return alias


def canonical_stage(stage: Any) -> str:
    for known in rec.STAGES:
        if isinstance(stage, str) and stage.lower() == known.lower():
            return known
    raise invalid(f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(rec.STAGES)}.")


def _tags_from(tags: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if tags is None:
        return out
    if not isinstance(tags, list):
        raise invalid("Parameter 'tags' must be a list of {key, value} objects.")
    for tag in tags:
        if not isinstance(tag, dict):
            raise invalid("Parameter 'tags' must be a list of {key, value} objects.")
        key, value = check_tag(tag.get("key"), tag.get("value"))
        out[key] = value
    return out


class RegistryService:
    def __init__(self, store: ObjectStore, tracking: Tracking | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.tracking = tracking
        self.clock = clock

    # -- registered models ----------------------------------------------------------
    def create_registered_model(self, name: Any, tags: Any = None, description: Any = None,
                                deployment_job_id: Any = None) -> RegisteredModel:
        name = check_name(name)
        now = self.clock()
        rm = RegisteredModel(name=name, creation_timestamp=now, last_updated_timestamp=now,
                             description=str(description or ""), tags=_tags_from(tags),
                             deployment_job_id=str(deployment_job_id or ""))
        try:
            self.store.put_json(rec.model_key(name), rm.to_json(), if_none_match=True)
        except PreconditionFailed:
            raise already_exists(f"Registered Model (name={name}) already exists.") from None
        return rm

    def get_registered_model(self, name: Any) -> RegisteredModel:
        name = check_name(name)
        try:
            return RegisteredModel.from_json(self.store.get_json(rec.model_key(name)))
        except NotFound:
            raise not_found(f"Registered Model with name={name} not found") from None

    def _update_model(self, name: Any, change: Callable[[RegisteredModel], object]) -> RegisteredModel:
        name = check_name(name)
        result: list[RegisteredModel] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            rm = RegisteredModel.from_json(doc)
            change(rm)
            rm.last_updated_timestamp = self.clock()
            result[:] = [rm]
            return rm.to_json()

        try:
            self.store.update_json(rec.model_key(name), mutate)
        except NotFound:
            raise not_found(f"Registered Model with name={name} not found") from None
        return result[0]

    def update_registered_model(self, name: Any, description: Any = None,
                                deployment_job_id: Any = None) -> RegisteredModel:
        def change(rm: RegisteredModel) -> None:
            if description is not None:
                rm.description = str(description)
            if deployment_job_id is not None:
                rm.deployment_job_id = str(deployment_job_id)
        return self._update_model(name, change)

    def set_registered_model_tag(self, name: Any, key: Any, value: Any) -> None:
        key, value = check_tag(key, value)
        self._update_model(name, lambda rm: rm.tags.__setitem__(key, value))

    def delete_registered_model_tag(self, name: Any, key: Any) -> None:
        key, _ = check_tag(key, "")
        self._update_model(name, lambda rm: rm.tags.pop(key, None))

    def delete_registered_model(self, name: Any) -> None:
        rm = self.get_registered_model(name)
        for info in list(self.store.list(rec.aliases_prefix(rm.name))):
            self.store.delete(info.key)
        for mv in self._all_versions(rm.name, include_deleted=True):
            self.store.delete(rec.version_key(rm.name, mv.version))
            prefix = artifact_prefix(self.store, mv.storage_location)
            if prefix:
                self.store.delete(rec.source_marker_key(prefix, mv.name, mv.version))
        self.store.delete(_NEXT_HINTS + rec.encode_name(rm.name))
        self.store.delete(rec.model_key(rm.name))

    def rename_registered_model(self, name: Any, new_name: Any) -> RegisteredModel:
        """Copy the model's records under the new name (create-only), then delete the old ones."""
        rm = self.get_registered_model(name)
        new_name = check_name(new_name, "new_name")
        now = self.clock()
        renamed = RegisteredModel.from_json({**rm.to_json(), "name": new_name, "last_updated_timestamp": now})
        try:
            self.store.put_json(rec.model_key(new_name), renamed.to_json(), if_none_match=True)
        except PreconditionFailed:
            raise already_exists(f"Registered Model (name={new_name}) already exists.") from None
        for mv in self._all_versions(rm.name, include_deleted=True):
            mv.name, mv.last_updated_timestamp = new_name, now
            self.store.put_json(rec.version_key(new_name, mv.version), mv.to_json())
            self._mark_source(mv)
        for alias, version in self._aliases(rm.name).items():
            self.store.put_json(rec.alias_key(new_name, alias), {"version": version})
        self.delete_registered_model(rm.name)
        return renamed

    def _all_models(self) -> list[RegisteredModel]:
        keys = [info.key for info in self.store.list(rec.MODELS)]
        return [RegisteredModel.from_json(doc) for doc in self._get_many(keys)]

    def search_registered_models(self, filter_string: Any = None, max_results: Any = None,
                                 order_by: Any = None,
                                 page_token: Any = None) -> tuple[list[RegisteredModel], str | None]:
        limit = _max_results(max_results, 100, MAX_RESULTS_MODELS)
        models = [search.Subject(rm, vars(rm), tags=rm.tags) for rm in self._all_models()]
        matched = search.REGISTERED_MODELS.filter(models, filter_string or "")
        page, token = search.paginate(search.REGISTERED_MODELS.sort(matched, _order_by(order_by)), page_token, limit)
        return [p.record for p in page], token

    def get_latest_versions(self, name: Any, stages: Any = None) -> list[ModelVersion]:
        rm = self.get_registered_model(name)
        wanted = [canonical_stage(s) for s in (stages or [])] or list(rec.STAGES)
        latest: dict[str, ModelVersion] = {}
        for mv in self._all_versions(rm.name):
            if mv.current_stage in wanted and (mv.current_stage not in latest
                                               or latest[mv.current_stage].version < mv.version):
                latest[mv.current_stage] = mv
        return [latest[s] for s in wanted if s in latest]

    def model_view(self, rm: RegisteredModel) -> dict[str, Any]:
        """The REST ``RegisteredModel`` (latest version per stage, aliases)."""
        versions = self._all_versions(rm.name)
        latest: dict[str, ModelVersion] = {}
        for mv in versions:
            if mv.current_stage not in latest or latest[mv.current_stage].version < mv.version:
                latest[mv.current_stage] = mv
        if versions:  # like the SQL store: the model's update time follows its versions'
            rm.last_updated_timestamp = max(rm.last_updated_timestamp,
                                            max(mv.last_updated_timestamp for mv in versions))
        return rec.model_message(rm, [latest[s] for s in rec.STAGES if s in latest], self._aliases(rm.name))

    # -- aliases --------------------------------------------------------------------
    def _aliases(self, name: str) -> dict[str, int]:
        return rec.load_aliases(self.store, name)

    def set_registered_model_alias(self, name: Any, alias: Any, version: Any) -> None:
        alias = check_alias(alias)
        if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
            raise invalid(f"Alias name '{alias}' is reserved.")
        mv = self.get_model_version(name, version)
        key = rec.alias_key(mv.name, alias)
        previous: list[int] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            previous[:] = [int(doc["version"])] if doc else []
            return {"version": mv.version}

        self.store.update_json(key, mutate, default=dict)
        for number in set(previous + [mv.version]):
            self._touch(mv.name, number)  # their items list the alias: republish both

    def delete_registered_model_alias(self, name: Any, alias: Any) -> None:
        rm = self.get_registered_model(name)
        alias = check_alias(alias)
        key = rec.alias_key(rm.name, alias)
        try:
            version = int(self.store.get_json(key)["version"])
        except NotFound:
            return
        self.store.delete(key)
        self._touch(rm.name, version)

    def get_model_version_by_alias(self, name: Any, alias: Any) -> ModelVersion:
        rm = self.get_registered_model(name)
        if isinstance(alias, str) and alias.lower() == "latest":
            live = self._all_versions(rm.name)
            if not live:
                raise invalid(f"Registered model alias {alias} not found.")
            return self._with_aliases(max(live, key=lambda mv: mv.version))
        alias = check_alias(alias)
        try:
            version = int(self.store.get_json(rec.alias_key(rm.name, alias))["version"])
        except NotFound:
            raise invalid(f"Registered model alias {alias} not found.") from None
        return self.get_model_version(rm.name, version)

    # -- model versions -------------------------------------------------------------
    def create_model_version(self, name: Any, source: Any, run_id: Any = None, tags: Any = None,
                             run_link: Any = None, description: Any = None, model_id: Any = None) -> ModelVersion:
        name = check_name(name)
        check_source(source)
        version_tags = _tags_from(tags)
        self.get_registered_model(name)
        source, storage, run_id, model_id = self._resolve_source(source, str(run_id or ""), str(model_id or ""))
        now = self.clock()
        mv = ModelVersion(name=name, version=0, creation_timestamp=now, last_updated_timestamp=now,
                          source=source, storage_location=storage, run_id=run_id, run_link=str(run_link or ""),
                          model_id=model_id, description=str(description or ""), tags=version_tags)
        hint_key = _NEXT_HINTS + rec.encode_name(name)
        number = self._next_version_hint(name, hint_key)
        while True:
            mv.version = number
            try:
                self.store.put_json(rec.version_key(name, number), mv.to_json(), if_none_match=True)
                break
            except PreconditionFailed:
                number += 1
        self.store.put_json(hint_key, {"next": number + 1})
        self._mark_source(mv)
        return mv

    def _next_version_hint(self, name: str, hint_key: str) -> int:
        try:
            return max(1, int(self.store.get_json(hint_key)["next"]))
        except (NotFound, KeyError, TypeError, ValueError):
            last = None
            for info in self.store.list(rec.versions_prefix(name)):
                last = info.key
            return int(last.rsplit("/", 1)[1][:-len(".json")]) + 1 if last else 1

    def _mark_source(self, mv: ModelVersion) -> None:
        """Index the version by where its files live, so that files landing later republish it."""
        prefix = artifact_prefix(self.store, mv.storage_location)
        if prefix:
            self.store.put(rec.source_marker_key(prefix, mv.name, mv.version), b"")

    def _resolve_source(self, source: str, run_id: str, model_id: str) -> tuple[str, str, str, str]:
        """(source, storage location, run id, model id), checked like MLflow's server does."""
        scheme = source.split(":", 1)[0].lower()
        if scheme == "runs":
            source_run, path = parse_runs_uri(source)
            if run_id and run_id != source_run:
                raise invalid(f"Invalid model version source: '{source}'. The run_id request parameter "
                              "must identify the resource that contains the source.")
            run = self._run(source_run, source)
            return source, join_uri(run["info"]["artifact_uri"], path), source_run, model_id
        if scheme == "models":
            ref = source.split(":", 1)[1].lstrip("/")
            if _LOGGED_MODEL_ID.match(ref):
                if model_id and model_id != ref:
                    raise invalid(f"Invalid model version source: '{source}'. The model_id request "
                                  "parameter must identify the resource that contains the source.")
                logged = self._logged_model(ref, source)
                info = logged.get("info", logged)
                return source, info["artifact_uri"], run_id or info.get("source_run_id", ""), ref
            name, _, version = ref.partition("/")
            if "@" in ref:
                name, _, alias = ref.partition("@")
                target = self.get_model_version_by_alias(name, alias)
            else:
                target = self.get_model_version(name, version)
            return (f"models:/{target.name}/{target.version}", target.storage_location,
                    run_id or target.run_id, model_id or target.model_id)
        if model_id:
            logged = self._logged_model(model_id, source)
            root = logged.get("info", logged)["artifact_uri"]
            if scheme == "mlflow-artifacts" and not within(source, root):
                raise invalid(f"Invalid model version source: '{source}'. The model_id request parameter "
                              "must identify the resource that contains the source.")
            run_id = run_id or logged.get("info", logged).get("source_run_id", "")
        elif run_id:
            run = self._run(run_id, source)
            if scheme == "mlflow-artifacts" and not within(source, run["info"]["artifact_uri"]):
                raise invalid(f"Invalid model version source: '{source}'. The run_id request parameter "
                              "must identify the resource that contains the source.")
        elif scheme in ("mlflow-artifacts", "http", "https"):
            raise invalid(f"Invalid model version source: '{source}'. The run_id request parameter must "
                          "identify the resource that contains the source.")
        return source, source, run_id, model_id

    def _run(self, run_id: str, source: str) -> dict[str, Any]:
        run = self.tracking.get_run(run_id) if self.tracking else None
        if not run:
            raise invalid(f"Invalid model version source: '{source}'. Run '{run_id}' does not exist.")
        return run

    def _logged_model(self, model_id: str, source: str) -> dict[str, Any]:
        logged = self.tracking.get_logged_model(model_id) if self.tracking else None
        if not logged:
            raise invalid(f"Invalid model version source: '{source}'. Logged model '{model_id}' does not exist.")
        return logged

    def _with_aliases(self, mv: ModelVersion) -> ModelVersion:
        mv.aliases = sorted(a for a, v in self._aliases(mv.name).items() if v == mv.version)
        return mv

    def get_model_version(self, name: Any, version: Any) -> ModelVersion:
        name, number = check_name(name), check_version(version)
        mv = rec.load_version(self.store, name, number)
        if mv is None or mv.deleted:
            raise not_found(f"Model Version (name={name}, version={number}) not found")
        return self._with_aliases(mv)

    def _update_version(self, name: Any, version: Any, change: Callable[[ModelVersion], object]) -> ModelVersion:
        name, number = check_name(name), check_version(version)
        result: list[ModelVersion] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            mv = ModelVersion.from_json(doc)
            if mv.deleted:
                raise not_found(f"Model Version (name={name}, version={number}) not found")
            change(mv)
            mv.last_updated_timestamp = self.clock()
            result[:] = [mv]
            return mv.to_json()

        try:
            self.store.update_json(rec.version_key(name, number), mutate)
        except NotFound:
            raise not_found(f"Model Version (name={name}, version={number}) not found") from None
        return self._with_aliases(result[0])

    def _touch(self, name: str, version: int) -> None:
        try:
            self._update_version(name, version, lambda mv: None)
        except MlflowError:
            pass  # deleted meanwhile: nothing to republish

    def update_model_version(self, name: Any, version: Any, description: Any = None) -> ModelVersion:
        def change(mv: ModelVersion) -> None:
            if description is not None:
                mv.description = str(description)
        return self._update_version(name, version, change)

    def transition_model_version_stage(self, name: Any, version: Any, stage: Any,
                                       archive_existing_versions: Any = False) -> ModelVersion:
        stage = canonical_stage(stage)
        archive = archive_existing_versions in (True, "true", "True")
        if archive and stage not in rec.ACTIVE_STAGES:
            raise invalid(f"Model version transition cannot archive existing model versions because "
                          f"'{stage}' is not an Active stage. Valid stages are {list(rec.ACTIVE_STAGES)}")
        mv = self._update_version(name, version, lambda mv: setattr(mv, "current_stage", stage))
        if archive:
            for other in self._all_versions(mv.name):
                if other.version != mv.version and other.current_stage == stage:
                    self._update_version(mv.name, other.version,
                                         lambda o: setattr(o, "current_stage", "Archived"))
        return mv

    def delete_model_version(self, name: Any, version: Any) -> None:
        mv = self._update_version(name, version, lambda mv: setattr(mv, "deleted", True))
        for alias in mv.aliases:
            self.store.delete(rec.alias_key(mv.name, alias))

    def set_model_version_tag(self, name: Any, version: Any, key: Any, value: Any) -> None:
        key, value = check_tag(key, value)
        self._update_version(name, version, lambda mv: mv.tags.__setitem__(key, value))

    def delete_model_version_tag(self, name: Any, version: Any, key: Any) -> None:
        key, _ = check_tag(key, "")
        self._update_version(name, version, lambda mv: mv.tags.pop(key, None))

    def get_model_version_download_uri(self, name: Any, version: Any) -> str:
        mv = self.get_model_version(name, version)
        return mv.storage_location or mv.source

    def _all_versions(self, name: str, include_deleted: bool = False) -> list[ModelVersion]:
        keys = [info.key for info in self.store.list(rec.versions_prefix(name))]
        versions = [ModelVersion.from_json(doc) for doc in self._get_many(keys) if doc is not None]
        return [mv for mv in versions if include_deleted or not mv.deleted]

    def search_model_versions(self, filter_string: Any = None, max_results: Any = None,
                              order_by: Any = None, page_token: Any = None) -> tuple[list[ModelVersion], str | None]:
        limit = _max_results(max_results, 10_000, MAX_RESULTS_VERSIONS)
        names = _names_in_filter(filter_string)
        if names is None:
            names = [rm.name for rm in self._all_models()]
        versions = [search.Subject(mv, vars(mv), tags=mv.tags)
                    for name in names for mv in map(self._with_aliases, self._all_versions(name))]
        matched = search.MODEL_VERSIONS.filter(versions, filter_string or "")
        ordered = search.MODEL_VERSIONS.sort(
            matched, _order_by(order_by) or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"])
        page, token = search.paginate(ordered, page_token, limit)
        return [p.record for p in page], token

    # -- helpers --------------------------------------------------------------------
    def _get_many(self, keys: list[str]) -> list[Any]:
        def get(key: str) -> Any:
            try:
                return self.store.get_json(key)
            except NotFound:
                return None
        if len(keys) < 4:
            return [get(k) for k in keys]
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(get, keys))


def _max_results(value: Any, default: int, ceiling: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value for max_results: '{value}'.") from None
    if number < 1 or number > ceiling:
        raise invalid(f"Invalid value for request parameter max_results. It must be between 1 and {ceiling}, "
                      f"but got value {number}")
    return number


def _order_by(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in items):
        raise invalid("order_by must be a list of strings.")
    return items


_NAME_EQ = re.compile(r"""^\s*name\s*=\s*(['"])(.*)\1\s*$""")


def _names_in_filter(filter_string: Any) -> list[str] | None:
    """``name = 'x'`` alone (the client's usual filter) reads one model's versions instead of all."""
    match = _NAME_EQ.match(filter_string or "")
    if not match or match.group(1) in match.group(2):
        return None
    return [match.group(2)]

