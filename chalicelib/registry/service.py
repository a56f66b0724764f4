"""The model registry on the object store, with MLflow's method names and semantics.

Each REST call maps to one method here. Records are laid out in ``records``; every write is a
conditional put, and the order of the writes is what keeps concurrent calls and crashes safe:

- **names**: a model's record is written first, then its name is claimed create-only
  (``records.name_key``); a claim whose model no longer holds the name is taken over, so a crash
  never locks a name. Renaming claims the new name (announced as ``pending_name`` on the record
  first, so that the claim is live), switches the record's name by compare-and-swap, then releases
  the old claim. Versions are keyed by the model's uid, so a rename never moves or loses them.
- **versions**: numbers are claimed create-only (``n`` taken -> try ``n + 1``): no duplicates and
  no gaps. After claiming, the creator re-reads the model record; deleting a model tombstones the
  record *before* listing the versions it removes, so a creation racing a delete is either seen
  by that listing or sees the tombstone and removes its own version (the client gets
  RESOURCE_DOES_NOT_EXIST, nothing is left behind).
- **publication**: each record write is the event that republishes the version's STAC item
  (``chalicelib/events/registry.py``); the source marker, written after the version record, is also
  ensured by that event, so a crash between the two loses nothing.
- **searches** filter and sort the summaries of ``registry.index`` and read only the records of
  the page they return; pages are capped by count and by size (``MAX_PAGE_BYTES``).
"""
from __future__ import annotations

import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

from ..store import NotFound, ObjectStore, PreconditionFailed
from ..tracking import search
from ..tracking.errors import MlflowError, already_exists, invalid, not_found
from ..tracking.search.grammar import ATTRIBUTE
from . import records as rec
from .index import ModelEntry, RegistryIndex
from .lineage import Tracking
from .records import ModelVersion, RegisteredModel
from .sources import artifact_prefix, check_source, join_uri, parse_runs_uri, within

log = logging.getLogger(__name__)

MAX_RESULTS_MODELS = 1000
MAX_RESULTS_VERSIONS = 200_000
MAX_PAGE_BYTES = 4 << 20  # a search response stays well below API Gateway/Lambda's 6 MB
_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_TAG_KEY = re.compile(r"^[/\w.\- :]*$")
_MAX_TAG_KEY = 250
_MAX_TAG_VALUE = 100_000
_MAX_NAME = 256
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]+$")
_CLAIM_ATTEMPTS = 20
_MAX_FORMER_NAMES = 8  # recent names of a model: their items are removed when it is republished
T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


# -- validation (MLflow's rules, mlflow/utils/validation.py) ---------------------------
def text(value: Any, field: str) -> str:
    """A proto string field: absent -> "", scalars as text; an object or array is a client error."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise invalid(f"Invalid value for parameter '{field}': expected a string, got {type(value).__name__}.")
    return str(value)


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid(f"Missing value for required parameter '{field}'.")
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if name in (".", "..") or len(name) > _MAX_NAME or "\x00" in name:
        raise invalid(f"Invalid value '{name[:300]}' for parameter '{field}' "
                      f"(at most {_MAX_NAME} characters, no NUL).")
    return name


def check_version(version: Any) -> int:
    if isinstance(version, (dict, list, bool)):
        raise invalid("Parameter 'version' must be an integer.")
    try:
        number = int(str(version))
    except (TypeError, ValueError):
        raise invalid(f"Parameter 'version' must be an integer, got '{version}'.") from None
    if number < 1 or number >= 10 ** rec.VERSION_DIGITS:
        raise invalid(f"Parameter 'version' must be between 1 and {10 ** rec.VERSION_DIGITS - 1}, got '{version}'.")
    return number


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise invalid("Missing value for required parameter 'key'.")
    if len(key) > _MAX_TAG_KEY or not _TAG_KEY.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise invalid(f"Invalid tag key '{key[:300]}'. Names may only contain alphanumerics, underscores (_), "
                      "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/).")
    value = text(value, "value")
    if len(value) > _MAX_TAG_VALUE:
        raise invalid(f"Tag value for '{key}' exceeds the maximum length of {_MAX_TAG_VALUE}.")
    return key, value


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not alias:
        raise invalid("Registered model alias name cannot be empty.")
    if not _ALIAS.match(alias) or len(alias) > 255:
        raise invalid(f"Invalid alias name: '{alias[:300]}'. Names may only contain alphanumerics, "
                      "underscores (_), and dashes (-).")
    return alias


def check_flag(value: Any, field: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", ""):
        return value.lower() == "true"
    raise invalid(f"Invalid value for parameter '{field}': expected a boolean.")


def canonical_stage(stage: Any) -> str:
    for known in rec.STAGES:
        if isinstance(stage, str) and stage.lower() == known.lower():
            return known
    raise invalid(f"Invalid Model Version stage: {str(stage)[:100]}. Value must be one of {', '.join(rec.STAGES)}.")


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


def _busy(err: PreconditionFailed) -> MlflowError:
    return MlflowError(f"Too many concurrent changes, retry: {err}", "TEMPORARILY_UNAVAILABLE")


class RegistryService:
    def __init__(self, store: ObjectStore, tracking: Tracking | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.tracking = tracking
        self.clock = clock
        self.index = RegistryIndex(store)

    # -- records ---------------------------------------------------------------------
    def _cas(self, key: str, mutate: Callable[[Any], Any], default: Callable[[], Any] | None = None) -> Any:
        try:
            return self.store.update_json(key, mutate, default=default)
        except PreconditionFailed as err:
            raise _busy(err) from None

    def _resolve(self, name: Any) -> RegisteredModel:
        name = check_name(name)
        rm = rec.resolve(self.store, name)
        if rm is None:
            raise not_found(f"Registered Model with name={name} not found")
        return rm

    def _update_record(self, rm: RegisteredModel, change: Callable[[RegisteredModel], object]) -> RegisteredModel:
        """Compare-and-swap the model record, provided it is still active under ``rm.name``."""
        result: list[RegisteredModel] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            current = RegisteredModel.from_json(doc)
            if not current.active or current.name != rm.name:
                raise not_found(f"Registered Model with name={rm.name} not found")
            change(current)
            result[:] = [current]
            return current.to_json()

        try:
            self._cas(rec.model_key(rm.uid), mutate)
        except NotFound:
            raise not_found(f"Registered Model with name={rm.name} not found") from None
        return result[0]

    def _reindex(self, uid: str, numbers: Iterable[int] = ()) -> None:
        try:
            self.index.refresh(uid, numbers)
        except PreconditionFailed:  # the records are written: the next write of them (or repair) catches up
            log.warning("registry index refresh for %s lost to contention", uid)

    # -- names -------------------------------------------------------------------------
    def _claim_name(self, name: str, uid: str) -> None:
        """Make ``names/<name>`` point at ``uid``; RESOURCE_ALREADY_EXISTS if another model holds it."""
        key, claim = rec.name_key(name), {"uid": uid, "name": name}
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                self.store.put_json(key, claim, if_none_match=True)
                return
            except PreconditionFailed:
                pass
            try:
                current = self.store.get(key)
            except NotFound:
                continue
            held = current.json()
            holder = held.get("uid") if isinstance(held, dict) else None
            if holder != uid:
                model = rec.load_model(self.store, holder)
                if model is not None and model.holds(name):
                    raise already_exists(f"Registered Model (name={name}) already exists.")
            try:
                if holder == uid:  # ours (a retried rename): rewriting it voids a concurrent takeover
                    self.store.put_json(key, claim, if_match=current.etag)
                    return
                self.store.delete(key, if_match=current.etag)  # not live: left by a crash, rename or delete
            except (PreconditionFailed, NotFound):
                continue
        raise MlflowError(f"Too many concurrent claims of the name {name!r}, retry.", "TEMPORARILY_UNAVAILABLE")

    def _release_name(self, name: str, uid: str) -> None:
        """Drop ``uid``'s claim of ``name`` unless the model holds the name again."""
        key = rec.name_key(name)
        try:
            current = self.store.get(key)
        except NotFound:
            return
        held = current.json()
        model = rec.load_model(self.store, uid)
        if not isinstance(held, dict) or held.get("uid") != uid or (model is not None and model.holds(name)):
            return
        try:
            self.store.delete(key, if_match=current.etag)  # a concurrent re-claim changes the ETag
        except PreconditionFailed:
            pass

    # -- registered models ----------------------------------------------------------
    def create_registered_model(self, name: Any, tags: Any = None, description: Any = None,
                                deployment_job_id: Any = None) -> RegisteredModel:
        name = check_name(name)
        now = self.clock()
        rm = RegisteredModel(name=name, creation_timestamp=now, last_updated_timestamp=now,
                             description=text(description, "description"), tags=_tags_from(tags),
                             deployment_job_id=text(deployment_job_id, "deployment_job_id"), uid=rec.new_uid())
        if rec.resolve(self.store, name) is not None:
            raise already_exists(f"Registered Model (name={name}) already exists.")
        # The record first: a claim is live only while its model holds the name, so it never dangles.
        self.store.put_json(rec.model_key(rm.uid), rm.to_json(), if_none_match=True)
        try:
            self._claim_name(name, rm.uid)
        except MlflowError:
            self.store.delete(rec.model_key(rm.uid))  # nobody else knows this uid
            raise
        self._reindex(rm.uid)
        return rm

    def get_registered_model(self, name: Any) -> RegisteredModel:
        return self._resolve(name)

    def _update_model(self, name: Any, change: Callable[[RegisteredModel], object]) -> RegisteredModel:
        rm = self._resolve(name)

        def apply(current: RegisteredModel) -> None:
            change(current)
            current.last_updated_timestamp = self.clock()

        updated = self._update_record(rm, apply)
        self._reindex(rm.uid)
        return updated

    def update_registered_model(self, name: Any, description: Any = None,
                                deployment_job_id: Any = None) -> RegisteredModel:
        new_description = None if description is None else text(description, "description")
        new_job = None if deployment_job_id is None else text(deployment_job_id, "deployment_job_id")

        def change(rm: RegisteredModel) -> None:
            if new_description is not None:
                rm.description = new_description
            if new_job is not None:
                rm.deployment_job_id = new_job
        return self._update_model(name, change)

    def set_registered_model_tag(self, name: Any, key: Any, value: Any) -> None:
        key, value = check_tag(key, value)
        self._update_model(name, lambda rm: rm.tags.__setitem__(key, value))

    def delete_registered_model_tag(self, name: Any, key: Any) -> None:
        key, _ = check_tag(key, "")
        self._update_model(name, lambda rm: rm.tags.pop(key, None))

    def delete_registered_model(self, name: Any) -> None:
        """Tombstone the record, release the name, then remove versions, aliases and markers."""
        rm = self._resolve(name)
        now = self.clock()

        def tombstone(current: RegisteredModel) -> None:
            current.state, current.last_updated_timestamp = rec.DELETED, now
        tomb = self._update_record(rm, tombstone)
        for held in {tomb.name, tomb.pending_name} - {""}:
            self._release_name(held, tomb.uid)
        self._reindex(tomb.uid)
        self.store.delete(rec.aliases_key(tomb.uid))
        self.purge_versions(tomb)

    def purge_versions(self, tomb: RegisteredModel) -> None:
        """Remove a deleted model's versions and their source markers (also the repair of a crashed delete)."""
        for info in list(self.store.list(rec.versions_prefix(tomb.uid))):
            mv = rec.load_version(self.store, tomb.uid, tomb.name, rec.version_number(info.key))
            if mv is not None:
                self._unmark_source(tomb.uid, mv)
            self.store.delete(info.key)
        self.store.delete(rec.hint_key(tomb.uid))

    def rename_registered_model(self, name: Any, new_name: Any) -> RegisteredModel:
        """Announce, claim the new name, switch the record's name, release the old name. Versions stay put."""
        rm = self._resolve(name)
        new_name = check_name(new_name, "new_name")
        if new_name == rm.name or rec.resolve(self.store, new_name) is not None:
            raise already_exists(f"Registered Model (name={new_name}) already exists.")
        self._update_record(rm, lambda current: setattr(current, "pending_name", new_name))
        try:
            self._claim_name(new_name, rm.uid)
        except MlflowError:
            self._withdraw(rm, new_name)
            raise
        now = self.clock()

        def switch(current: RegisteredModel) -> None:
            if current.pending_name != new_name:  # a concurrent rename announced another name
                raise MlflowError(f"Registered Model (name={rm.name}) is being renamed concurrently.",
                                  "RESOURCE_CONFLICT")
            current.former_names = ([n for n in current.former_names if n not in (new_name, rm.name)]
                                    + [rm.name])[-_MAX_FORMER_NAMES:]
            current.name, current.pending_name, current.last_updated_timestamp = new_name, "", now
        try:
            renamed = self._update_record(rm, switch)
        except MlflowError:
            self._release_name(new_name, rm.uid)
            raise
        self._release_name(rm.name, rm.uid)
        self._reindex(rm.uid)
        return renamed

    def _withdraw(self, rm: RegisteredModel, pending: str) -> None:
        def clear(current: RegisteredModel) -> None:
            if current.pending_name == pending:
                current.pending_name = ""
        try:
            self._update_record(rm, clear)
        except MlflowError:
            pass  # deleted or renamed meanwhile: nothing announced any more

    def search_registered_models(self, filter_string: Any = None, max_results: Any = None,
                                 order_by: Any = None,
                                 page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        """REST ``RegisteredModel``s of one page: the index's summaries filtered and sorted, then the
        page's records read (a fixed number of index GETs plus O(page) record GETs)."""
        limit = _max_results(max_results, 100, MAX_RESULTS_MODELS)
        filter_string, token, order = text(filter_string, "filter"), text(page_token, "page_token"), \
            _order_by(order_by)
        search.REGISTERED_MODELS.parse(filter_string)  # a bad filter fails even over no models
        subjects = [search.Subject(e, {"name": e.name, "creation_timestamp": e.creation_timestamp,
                                       "last_updated_timestamp": e.last_updated_timestamp}, tags=e.tags)
                    for e in self.index.entries()]
        matched = search.REGISTERED_MODELS.filter(subjects, filter_string)
        ordered = search.REGISTERED_MODELS.sort(matched, order)
        start = search.page_offset(token or None)
        views = _parallel(self._view_of, [s.record for s in ordered[start:start + limit]])
        return _capped(views, start, len(ordered), lambda view: view)

    def _view_of(self, entry: ModelEntry) -> dict[str, Any] | None:
        rm = rec.load_model(self.store, entry.uid)
        return self.model_view(rm, entry) if rm is not None and rm.active else None

    def _latest(self, rm: RegisteredModel, entry: ModelEntry | None) -> dict[str, ModelVersion]:
        """The newest live version per stage (numbers from the index, records read fresh)."""
        if entry is None:
            return {}
        numbers = list(entry.latest_per_stage().values())
        found = _parallel(lambda n: rec.load_version(self.store, rm.uid, rm.name, n), numbers)
        return {mv.current_stage: mv for mv in found if mv is not None and not mv.deleted}

    def get_latest_versions(self, name: Any, stages: Any = None) -> list[ModelVersion]:
        if stages is not None and not isinstance(stages, list):
            raise invalid("Parameter 'stages' must be a list of strings.")
        wanted = [canonical_stage(s) for s in (stages or [])] or list(rec.STAGES)
        rm = self._resolve(name)
        latest = self._latest(rm, self.index.entry(rm.uid))
        return [latest[s] for s in wanted if s in latest]

    def model_view(self, rm: RegisteredModel, entry: ModelEntry | None = None) -> dict[str, Any]:
        """The REST ``RegisteredModel`` (latest version per stage, aliases)."""
        entry = entry if entry is not None else self.index.entry(rm.uid)
        latest = self._latest(rm, entry)
        if entry is not None:  # like the SQL store: the model's update time follows its versions'
            rm.last_updated_timestamp = max(rm.last_updated_timestamp, entry.last_updated_timestamp)
        return rec.model_message(rm, [latest[s] for s in rec.STAGES if s in latest],
                                 rec.load_aliases(self.store, rm.uid))

    # -- aliases --------------------------------------------------------------------
    def set_registered_model_alias(self, name: Any, alias: Any, version: Any) -> None:
        alias = check_alias(alias)
        if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
            raise invalid(f"Alias name '{alias}' is reserved.")
        name, number = check_name(name), check_version(version)
        rm = self._resolve(name)
        self._live_version(rm, number)
        previous: list[int] = []

        def point(doc: dict[str, Any]) -> dict[str, Any] | None:
            previous[:] = [int(doc[alias])] if alias in doc else []
            return None if previous == [number] else {**doc, alias: number}

        self._cas(rec.aliases_key(rm.uid), point, default=dict)
        if previous == [number]:
            return
        current = rec.load_version(self.store, rm.uid, rm.name, number)
        if current is None or current.deleted:  # deleted meanwhile (its delete cleared aliases before ours landed)
            self._unalias(rm.uid, lambda a, v: a == alias and v == number)
            raise not_found(f"Model Version (name={name}, version={number}) not found")
        for touched in set(previous + [number]):
            self._touch(rm, touched)  # their items list the alias: republish both

    def _unalias(self, uid: str, drop: Callable[[str, int], bool]) -> list[int]:
        """Remove the aliases ``drop`` selects; the versions they pointed at."""
        dropped: list[int] = []

        def mutate(doc: dict[str, Any]) -> dict[str, Any] | None:
            dropped[:] = [int(v) for a, v in doc.items() if drop(a, int(v))]
            return {a: v for a, v in doc.items() if not drop(a, int(v))} if dropped else None

        self._cas(rec.aliases_key(uid), mutate, default=dict)
        return dropped

    def delete_registered_model_alias(self, name: Any, alias: Any) -> None:
        name = check_name(name)
        alias = check_alias(alias)
        rm = self._resolve(name)
        for version in self._unalias(rm.uid, lambda a, v: a == alias):
            self._touch(rm, version)

    def get_model_version_by_alias(self, name: Any, alias: Any) -> ModelVersion:
        rm = self._resolve(name)
        if isinstance(alias, str) and alias.lower() == "latest":
            entry = self.index.entry(rm.uid)
            if entry is None or not entry.versions:
                raise invalid(f"Registered model alias {alias} not found.")
            return self.get_model_version(rm.name, max(entry.versions))
        alias = check_alias(alias)
        version = rec.load_aliases(self.store, rm.uid).get(alias)
        if version is None:
            raise invalid(f"Registered model alias {alias} not found.")
        return self.get_model_version(rm.name, version)

    # -- model versions -------------------------------------------------------------
    def create_model_version(self, name: Any, source: Any, run_id: Any = None, tags: Any = None,
                             run_link: Any = None, description: Any = None, model_id: Any = None) -> ModelVersion:
        name = check_name(name)
        check_source(source)
        version_tags = _tags_from(tags)
        run_id, run_link = text(run_id, "run_id"), text(run_link, "run_link")
        description, model_id = text(description, "description"), text(model_id, "model_id")
        rm = self._resolve(name)
        source, storage, run_id, model_id = self._resolve_source(source, run_id, model_id)
        now = self.clock()
        mv = ModelVersion(name=rm.name, version=0, creation_timestamp=now, last_updated_timestamp=now,
                          source=source, storage_location=storage, run_id=run_id, run_link=run_link,
                          model_id=model_id, description=description, tags=version_tags)
        number = self._next_version_hint(rm.uid)
        while True:
            mv.version = number
            try:
                self.store.put_json(rec.version_key(rm.uid, number), mv.to_json(), if_none_match=True)
                break
            except PreconditionFailed:
                number += 1
        self.store.put_json(rec.hint_key(rm.uid), {"next": number + 1})
        self._mark_source(rm.uid, mv)
        # A delete tombstones the record before listing versions: either it saw ours, or we see it.
        current = rec.load_model(self.store, rm.uid)
        if current is None or not current.active:
            self._unmark_source(rm.uid, mv)
            self.store.delete(rec.version_key(rm.uid, number))
            self.store.delete(rec.hint_key(rm.uid))
            raise not_found(f"Registered Model with name={name} not found")
        mv.name = current.name  # renamed meanwhile: the version is the model's, under its new name
        self._reindex(rm.uid, [number])
        return mv

    def _next_version_hint(self, uid: str) -> int:
        try:
            return max(1, int(self.store.get_json(rec.hint_key(uid))["next"]))
        except (NotFound, KeyError, TypeError, ValueError):
            last = None
            for info in self.store.list(rec.versions_prefix(uid)):
                last = info.key
            return rec.version_number(last) + 1 if last else 1

    def _mark_source(self, uid: str, mv: ModelVersion) -> None:
        """Index the version by where its files live, so that files landing later republish it."""
        prefix = artifact_prefix(self.store, mv.storage_location)
        if prefix:
            self.store.put(rec.source_marker_key(prefix, uid, mv.version), b"")

    def _unmark_source(self, uid: str, mv: ModelVersion) -> None:
        prefix = artifact_prefix(self.store, mv.storage_location)
        if prefix:
            self.store.delete(rec.source_marker_key(prefix, uid, mv.version))

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

    def _live_version(self, rm: RegisteredModel, number: int) -> ModelVersion:
        mv = rec.load_version(self.store, rm.uid, rm.name, number)
        if mv is None or mv.deleted:
            raise not_found(f"Model Version (name={rm.name}, version={number}) not found")
        return mv

    def _with_aliases(self, mv: ModelVersion, uid: str, aliases: dict[str, int] | None = None) -> ModelVersion:
        aliases = rec.load_aliases(self.store, uid) if aliases is None else aliases
        mv.aliases = sorted(a for a, v in aliases.items() if v == mv.version)
        return mv

    def get_model_version(self, name: Any, version: Any) -> ModelVersion:
        name, number = check_name(name), check_version(version)
        rm = self._resolve(name)
        return self._with_aliases(self._live_version(rm, number), rm.uid)

    def _update_version(self, name: Any, version: Any, change: Callable[[ModelVersion], object]) -> ModelVersion:
        name, number = check_name(name), check_version(version)
        return self._change_version(self._resolve(name), number, change)

    def _change_version(self, rm: RegisteredModel, number: int,
                        change: Callable[[ModelVersion], object]) -> ModelVersion:
        result: list[ModelVersion] = []
        missing = f"Model Version (name={rm.name}, version={number}) not found"

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            mv = ModelVersion.from_json(doc, rm.name)
            if mv.deleted:
                raise not_found(missing)
            change(mv)
            mv.last_updated_timestamp = self.clock()
            result[:] = [mv]
            return mv.to_json()

        try:
            self._cas(rec.version_key(rm.uid, number), mutate)
        except NotFound:
            raise not_found(missing) from None
        self._reindex(rm.uid, [number])
        return self._with_aliases(result[0], rm.uid)

    def _touch(self, rm: RegisteredModel, version: int) -> None:
        try:
            self._change_version(rm, version, lambda mv: None)
        except MlflowError:
            pass  # deleted meanwhile: nothing to republish

    def update_model_version(self, name: Any, version: Any, description: Any = None) -> ModelVersion:
        new_description = None if description is None else text(description, "description")

        def change(mv: ModelVersion) -> None:
            if new_description is not None:
                mv.description = new_description
        return self._update_version(name, version, change)

    def transition_model_version_stage(self, name: Any, version: Any, stage: Any,
                                       archive_existing_versions: Any = False) -> ModelVersion:
        stage = canonical_stage(stage)
        archive = check_flag(archive_existing_versions, "archive_existing_versions")
        if archive and stage not in rec.ACTIVE_STAGES:
            raise invalid(f"Model version transition cannot archive existing model versions because "
                          f"'{stage}' is not an Active stage. Valid stages are {list(rec.ACTIVE_STAGES)}")
        name, number = check_name(name), check_version(version)
        rm = self._resolve(name)
        mv = self._change_version(rm, number, lambda mv: setattr(mv, "current_stage", stage))
        if archive:
            entry = self.index.entry(rm.uid)
            for other in sorted(entry.versions) if entry else []:
                if other != number and entry is not None and entry.stage_of(other) == stage:
                    try:
                        self._change_version(rm, other, lambda o: setattr(
                            o, "current_stage", "Archived" if o.current_stage == stage else o.current_stage))
                    except MlflowError:
                        pass  # deleted meanwhile
        return mv

    def delete_model_version(self, name: Any, version: Any) -> None:
        name, number = check_name(name), check_version(version)
        rm = self._resolve(name)
        self._change_version(rm, number, lambda mv: setattr(mv, "deleted", True))
        self._unalias(rm.uid, lambda a, v: v == number)

    def set_model_version_tag(self, name: Any, version: Any, key: Any, value: Any) -> None:
        key, value = check_tag(key, value)
        self._update_version(name, version, lambda mv: mv.tags.__setitem__(key, value))

    def delete_model_version_tag(self, name: Any, version: Any, key: Any) -> None:
        key, _ = check_tag(key, "")
        self._update_version(name, version, lambda mv: mv.tags.pop(key, None))

    def get_model_version_download_uri(self, name: Any, version: Any) -> str:
        mv = self.get_model_version(name, version)
        return mv.storage_location or mv.source

    def search_model_versions(self, filter_string: Any = None, max_results: Any = None,
                              order_by: Any = None, page_token: Any = None) -> tuple[list[ModelVersion], str | None]:
        """One page of versions: the index's summaries filtered and sorted, then the page's records read.

        ``name = 'x'`` or ``name IN (...)`` reads only those models' shards."""
        limit = _max_results(max_results, 10_000, MAX_RESULTS_VERSIONS)
        filter_string, token = text(filter_string, "filter"), text(page_token, "page_token")
        order = _order_by(order_by) or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
        names = _names_in(search.MODEL_VERSIONS.parse(filter_string))
        if names is None:
            entries = self.index.entries()
        else:
            found = [rec.resolve(self.store, n) for n in names]
            entries = [e for e in (self.index.entry(rm.uid) for rm in found if rm is not None) if e is not None]
        subjects = [search.Subject((e.uid, e.name, n), {
            "name": e.name, "version": n, "creation_timestamp": s["creation_timestamp"],
            "last_updated_timestamp": s["last_updated_timestamp"], "source": s["source"],
            "run_id": s.get("run_id", ""), "current_stage": s.get("current_stage", rec.STAGE_NONE)},
            tags=s.get("tags") or {}) for e in entries for n, s in e.versions.items()]
        matched = search.MODEL_VERSIONS.filter(subjects, filter_string)
        ordered = search.MODEL_VERSIONS.sort(matched, order)
        start = search.page_offset(token or None)
        window: list[tuple[str, str, int]] = [s.record for s in ordered[start:start + limit]]
        uids = sorted({uid for uid, _, _ in window})
        aliases = dict(zip(uids, _parallel(lambda uid: rec.load_aliases(self.store, uid), uids)))

        def fetch(ref: tuple[str, str, int]) -> ModelVersion | None:
            uid, name, number = ref
            mv = rec.load_version(self.store, uid, name, number)
            return None if mv is None or mv.deleted else self._with_aliases(mv, uid, aliases[uid])
        return _capped(_parallel(fetch, window), start, len(ordered), rec.version_message)


def _parallel(fn: Callable[[Any], T], items: list[Any]) -> list[T]:
    """``fn`` over ``items`` in order; concurrently, since each is a store round trip."""
    if len(items) < 4:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, items))


def _capped(found: list[T | None], start: int, total: int,
            message: Callable[[T], dict[str, Any]]) -> tuple[list[T], str | None]:
    """The page (records gone since the index was read are skipped) cut at ``MAX_PAGE_BYTES`` of
    messages, and the token of what follows."""
    page: list[T] = []
    size, consumed = 0, 0
    for record in found:
        if record is not None:
            nbytes = len(json.dumps(message(record), separators=(",", ":"), ensure_ascii=False).encode())
            if page and size + nbytes > MAX_PAGE_BYTES:
                break
            page.append(record)
            size += nbytes
        consumed += 1
    end = start + consumed
    return page, search.page_token(end) if end < total else None


def _max_results(value: Any, default: int, ceiling: int) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, (dict, list, bool)):
        raise invalid("Invalid value for max_results: expected an integer.")
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


def _names_in(clauses: list[Any]) -> list[str] | None:
    """The model names a filter restricts versions to (``name = 'x'`` or ``name IN (...)``), if any."""
    for clause in clauses:
        if clause.type == ATTRIBUTE and clause.key == "name":
            if clause.comparator == "=":
                return [str(clause.value)]
            if clause.comparator == "IN":
                return [str(v) for v in clause.value]
    return None
