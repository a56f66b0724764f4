"""The tracking service: MLflow's tracking-store methods over the object store, no database.

Each write to a run is ONE log entry, appended create-only to two logs that share its key:
the run's (``mlflow/runs/<run_id>/``: full metric history, for get_run and get-history) and its
experiment's (``mlflow/experiment-runs/<eid>/``: latest values only, for search_runs). See
eventlog.py for the fold/compaction protocol and runs.py for the record shape.

Public API for other modules (the model registry), all proto-JSON dicts, MlflowError when absent:
``tracking_service().get_run(run_id)`` -> ``{"info", "data", "inputs", "outputs"}``;
``.get_experiment(experiment_id)`` -> ``{"experiment_id", "name", "artifact_location", ...}``;
``.get_logged_model(model_id)`` -> ``{"model": {"info", "data"}}``.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from collections import OrderedDict
from contextlib import ExitStack
from typing import Any, Callable

from ..store import NotFound, ObjectStore, PreconditionFailed
from . import validation as v
from .errors import invalid, not_found
from .eventlog import FoldedLog, new_entry_key, parallel
from .experiments import Experiment, ExperimentStore, now_ms
from .runs import (RUN_NAME_TAG, fold_experiment, fold_run, history, json_float, latest_only, run_info_json,
                   run_json)
from . import search
from .search import ModelMetric, Subject, page_offset, paginate

RUNS = "mlflow/runs/"
EXPERIMENT_RUNS = "mlflow/experiment-runs/"
LOGGED_MODELS = "mlflow/logged-models/"
VIEW_TYPES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted"),
              "1": ("active",), "2": ("deleted",), "3": ("active", "deleted")}
RUN_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
MODEL_STATUSES = {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}
_LOG_CACHE_SIZE = 4096

_ADJECTIVES = ("able", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "grand", "happy",
               "keen", "lively", "merry", "nimble", "proud", "quick", "quiet", "sharp", "swift", "wise")
_NOUNS = ("ant", "bass", "bear", "crab", "deer", "dove", "eel", "finch", "fox", "goat", "hawk", "lark",
          "mole", "owl", "ram", "seal", "shrew", "snail", "toad", "wolf")


def _random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"


def _run_subject(run: dict[str, Any]) -> Subject:
    """What a run search reads; valid while the log's view() is held (it shares the run's dicts)."""
    return Subject(run, run["info"], tags=run["tags"], params=run["params"],
                   metrics={k: m[0] for k, m in run["metrics"].items()}, datasets=run["datasets"])


def _model_subject(doc: dict[str, Any]) -> Subject:
    return Subject(doc, doc, tags=doc["tags"], params=doc["params"],
                   model_metrics=[ModelMetric(m[0], m[1], m[2], m[5], m[6]) for m in doc.get("metrics", [])])


class TrackingService:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.experiments = ExperimentStore(store)
        self._lock = threading.Lock()
        self._logs: OrderedDict[str, FoldedLog] = OrderedDict()
        self._run_experiment: dict[str, str] = {}  # immutable, so safe to cache

    # -- logs -----------------------------------------------------------------------------
    def _log(self, prefix: str, fold: Callable[[Any, dict[str, Any]], None]) -> FoldedLog:
        with self._lock:
            log = self._logs.get(prefix)
            if log is None:
                log = self._logs[prefix] = FoldedLog(self.store, prefix, fold, dict)
                if len(self._logs) > _LOG_CACHE_SIZE:
                    self._logs.popitem(last=False)
            else:
                self._logs.move_to_end(prefix)
            return log

    def _run_log(self, run_id: str) -> FoldedLog:
        return self._log(f"{RUNS}{run_id}", fold_run)

    def _experiment_log(self, experiment_id: str) -> FoldedLog:
        return self._log(f"{EXPERIMENT_RUNS}{experiment_id}", fold_experiment)

    def _experiment_of(self, run_id: str) -> str:
        v.run_id(run_id)
        eid = self._run_experiment.get(run_id)
        if eid is None:
            try:
                eid = self.store.get_json(f"{RUNS}{run_id}.json")["experiment_id"]
            except NotFound:
                raise not_found(f"Run with id={run_id} not found") from None
            self._run_experiment[run_id] = eid
        return eid

    def _read_run(self, run_id: str, render: Callable[[dict[str, Any]], Any]) -> Any:
        self._experiment_of(run_id)
        with self._run_log(run_id).view() as runs:
            run = runs.get(run_id)
            if run is None:
                raise not_found(f"Run with id={run_id} not found")
            return render(run)

    def _write(self, run_id: str, entry: dict[str, Any], check: Callable[[dict[str, Any]], None] | None = None,
               require_active: bool = True) -> dict[str, Any]:
        """Validate against the run's current state, then append the entry to both logs (2 parallel PUTs).

        Returns the run's info as it will read after this entry."""
        eid = self._experiment_of(run_id)
        log = self._run_log(run_id)
        with log.view() as runs:
            run = runs.get(run_id)
            if run is None:
                raise not_found(f"Run with id={run_id} not found")
            stage = run["info"].get("lifecycle_stage")
            if require_active and stage != "active":
                raise invalid(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")
            if check:
                check(run)
            key = new_entry_key(after=log.last_key())
            info = dict(run["info"], **entry.get("update", {}))
        entry = dict(entry, run=run_id, time=now_ms())
        exp_log = self._experiment_log(eid)
        parallel([lambda: log.append(key, entry), lambda: exp_log.append(key, latest_only(entry))])
        return info

    # -- experiments ----------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None, tags: list[dict[str, Any]]) -> str:
        v.experiment_name(name)
        if artifact_location is not None and not isinstance(artifact_location, str):
            raise invalid("artifact_location must be a string")
        clean = dict(v.tag(t, "", v.MAX_EXPERIMENT_TAG_VAL_LENGTH) for t in tags)
        return self.experiments.create(name, artifact_location or None, clean).experiment_id

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.experiments.get(v.experiment_id(experiment_id)).to_json()

    def get_experiment_by_name(self, name: str) -> dict[str, Any]:
        return self.experiments.get_by_name(v.experiment_name(name)).to_json()

    def search_experiments(self, view_type: str | None, max_results: int | None, filter_string: str | None,
                           order_by: list[str], page_token: str | None) -> dict[str, Any]:
        stages = VIEW_TYPES.get(str(view_type or "ACTIVE_ONLY"))
        if stages is None:
            raise invalid(f"Invalid view_type '{view_type}'")
        limit = v.max_results(max_results, 1000)
        exps = [Subject(e, vars(e), tags=e.tags) for e in self.experiments.list_all() if e.lifecycle_stage in stages]
        exps = search.EXPERIMENTS.sort(search.EXPERIMENTS.filter(exps, filter_string), order_by or ["creation_time DESC"])
        page, token = paginate(exps, page_token, limit)
        out: dict[str, Any] = {"experiments": [p.record.to_json() for p in page]}
        if token:
            out["next_page_token"] = token
        return out

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.experiments.rename(v.experiment_id(experiment_id), v.experiment_name(new_name))

    def delete_experiment(self, experiment_id: str) -> None:
        self.experiments.set_lifecycle(v.experiment_id(experiment_id), "deleted")
        self._set_runs_lifecycle(experiment_id, "deleted")

    def restore_experiment(self, experiment_id: str) -> None:
        self.experiments.set_lifecycle(v.experiment_id(experiment_id), "active")
        self._set_runs_lifecycle(experiment_id, "active")

    def _set_runs_lifecycle(self, experiment_id: str, stage: str) -> None:
        """MLflow deletes/restores an experiment's runs with it: one entry per run log, one for the experiment's."""
        exp_log = self._experiment_log(experiment_id)
        with exp_log.view() as runs:
            ids = sorted(rid for rid, r in runs.items() if r["info"].get("lifecycle_stage") != stage)
            key = new_entry_key(after=exp_log.last_key())
        if not ids:
            return
        t = now_ms()
        entry = {"lifecycle": stage, "deleted_time": t if stage == "deleted" else None, "time": t}
        parallel([lambda rid=rid: self._run_log(rid).append(key, dict(entry, run=rid)) for rid in ids]
                 + [lambda: exp_log.append(key, dict(entry, run=ids))])

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        k, val = v.tag({"key": key, "value": value}, "", v.MAX_EXPERIMENT_TAG_VAL_LENGTH)
        eid = v.experiment_id(experiment_id)
        if self.experiments.get(eid).lifecycle_stage != "active":
            raise invalid(f"The experiment {eid} must be in the 'active' state. Current state is deleted.")

        def set_tag(e: Experiment) -> None:
            e.tags[k] = val
        self.experiments.update(eid, set_tag)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        eid = v.experiment_id(experiment_id)
        if key not in self.experiments.get(eid).tags:
            raise not_found(f"No tag with name: {key} in experiment with id {eid}")

        def drop(e: Experiment) -> None:
            e.tags.pop(key, None)
        self.experiments.update(eid, drop)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, msg: dict[str, Any]) -> dict[str, Any]:
        eid = v.experiment_id(msg.get("experiment_id") or "0")
        exp = self.experiments.get(eid)
        if exp.lifecycle_stage != "active":
            raise invalid(f"The experiment {eid} must be in the 'active' state. Current state is "
                          f"{exp.lifecycle_stage}.")
        tags = dict(v.tag(t, f"tags[{i}].") for i, t in enumerate(v.object_list(msg, "tags")))
        run_name = v.string(msg, "run_name")
        tag_name = tags.get(RUN_NAME_TAG)
        if run_name and tag_name and run_name != tag_name:
            raise invalid(f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                          f"different values (run_name='{run_name}', mlflow.runName='{tag_name}').")
        start_time = v.integer(msg, "start_time")
        # Random, as in MLflow: identical requests in the same millisecond are common (threads
        # starting runs), so a content-derived id would merge distinct runs.
        run_id = uuid.uuid4().hex
        run_name = run_name or tag_name or _random_name()
        tags[RUN_NAME_TAG] = run_name
        info = {"run_id": run_id, "experiment_id": eid, "user_id": v.string(msg, "user_id") or "",
                "run_name": run_name, "status": "RUNNING", "start_time": start_time or now_ms(),
                "artifact_uri": f"{exp.artifact_location}/{run_id}/artifacts", "lifecycle_stage": "active"}
        key = new_entry_key()
        entry = {"run": run_id, "time": now_ms(), "create": info, "tags": tags}
        run_log, exp_log = self._run_log(run_id), self._experiment_log(eid)
        replayed = []

        def point() -> None:
            try:
                self.store.put_json(f"{RUNS}{run_id}.json", {"experiment_id": eid}, if_none_match=True)
            except PreconditionFailed:
                replayed.append(True)  # a retry: the entries below are idempotent, rewriting is harmless
        parallel([point, lambda: run_log.append(key, entry), lambda: exp_log.append(key, entry)])
        self._run_experiment[run_id] = eid
        if replayed:
            return {"run": self.get_run(run_id)}
        state: dict[str, Any] = {}
        fold_run(state, entry)
        return {"run": run_json(state[run_id])}

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._read_run(run_id, run_json)  # type: ignore[no-any-return]

    def update_run_info(self, run_id: str, status: str | None, end_time: int | None,
                        run_name: str | None) -> dict[str, Any]:
        change: dict[str, Any] = {}
        if status is not None:
            if str(status) not in RUN_STATUSES:
                raise invalid(f"Invalid value '{status}' for parameter 'status'")
            change["status"] = str(status)
        if end_time is not None:
            change["end_time"] = end_time
        if run_name:
            change["run_name"] = run_name
        return {"run_info": run_info_json(self._write(run_id, {"update": change}))}

    def delete_run(self, run_id: str) -> None:
        self._write(run_id, {"lifecycle": "deleted", "deleted_time": now_ms()}, require_active=False)

    def restore_run(self, run_id: str) -> None:
        self._write(run_id, {"lifecycle": "active", "deleted_time": None}, require_active=False)

    def log_batch(self, run_id: str, metrics: list[dict[str, Any]], params: list[dict[str, Any]],
                  tags: list[dict[str, Any]]) -> None:
        v.batch_limits(len(metrics), len(params), len(tags))
        clean_metrics = [v.metric(m, f"metrics[{i}].") for i, m in enumerate(metrics)]
        clean_params: dict[str, str] = {}
        dupes = []
        for i, p in enumerate(params):
            key, value = v.param(p, f"params[{i}].")
            if key in clean_params:
                dupes.append(key)
            clean_params[key] = value
        if dupes:
            raise invalid(f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request "
                          "contains only one param value per param key.")
        clean_tags = dict(v.tag(t, f"tags[{i}].") for i, t in enumerate(tags))
        if not (clean_metrics or clean_params or clean_tags):
            return

        def params_unchanged(run: dict[str, Any]) -> None:
            for key, value in clean_params.items():
                old = run["params"].get(key)
                if old is not None and old != value:
                    raise invalid(f"Changing param values is not allowed. Param with key='{key}' was already "
                                  f"logged with value='{old}' for run ID='{run_id}'. Attempted logging new value "
                                  f"'{value}'.")
        entry: dict[str, Any] = {}
        if clean_metrics:
            entry["metrics"] = clean_metrics
        if clean_params:
            entry["params"] = clean_params
        if clean_tags:
            entry["tags"] = clean_tags
        for model_id in {m[4] for m in clean_metrics if m[4]}:
            self._model_doc(model_id)  # 404 before anything is written
        self._write(run_id, entry, params_unchanged)
        self._log_model_metrics(run_id, clean_metrics)

    def _log_model_metrics(self, run_id: str, metrics: list[list[Any]]) -> None:
        """Metrics logged with a model_id also belong to that logged model (MLflow 3), one CAS per model."""
        by_model: dict[str, list[list[Any]]] = {}
        for key, value, ts, step, model_id, dataset_name, dataset_digest in metrics:
            if model_id:
                by_model.setdefault(model_id, []).append([key, value, ts, step, run_id, dataset_name, dataset_digest])
        for model_id, records in by_model.items():
            def add(doc: dict[str, Any], records: list[list[Any]] = records) -> None:
                known = doc.setdefault("metrics", [])
                known.extend(r for r in records if r not in known)
            self._update_model(model_id, add)

    def delete_tag(self, run_id: str, key: str) -> None:
        def exists(run: dict[str, Any]) -> None:
            if key not in run["tags"]:
                raise not_found(f"No tag with name: {key} in run with id {run_id}")
        self._write(run_id, {"del_tags": [key]}, exists)

    def log_inputs(self, run_id: str, datasets: list[dict[str, Any]], models: list[dict[str, Any]]) -> None:
        clean = [v.dataset_input(d, f"datasets[{i}].") for i, d in enumerate(datasets)]
        model_ids = [v.string(m, "model_id", required=True) for m in models]
        if clean or model_ids:
            self._write(run_id, {"datasets": clean, "model_inputs": model_ids})

    def log_outputs(self, run_id: str, models: list[dict[str, Any]]) -> None:
        outputs = [[v.string(m, "model_id", required=True), v.integer(m, "step") or 0] for m in models]
        if outputs:
            self._write(run_id, {"model_outputs": outputs})

    def record_logged_model(self, run_id: str, model_json: str) -> None:
        try:
            model = json.loads(model_json)
        except ValueError:
            raise invalid(f"Malformed model info. \n {model_json} \n is not a valid JSON.") from None
        missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model if isinstance(model, dict) else {})
        if missing:
            raise invalid(f"Model json is missing mandatory fields: {missing}")
        self._write(run_id, {"log_model": [model]})

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None,
                           page_token: str | None) -> dict[str, Any]:
        recs = self._read_run(run_id, lambda r: history(r, metric_key))
        offset = page_offset(page_token)
        end = len(recs) if max_results is None else offset + max_results
        out: dict[str, Any] = {"metrics": [{"key": metric_key, "value": json_float(r[0]), "timestamp": r[1],
                                            "step": r[2]} for r in recs[offset:end]]}
        if end < len(recs):
            out["next_page_token"] = _b64encode(json.dumps({"offset": end}))
        return out

    def get_metric_history_bulk_interval(self, run_ids: list[str], metric_key: str, start_step: int | None,
                                         end_step: int | None, max_results: int | None) -> dict[str, Any]:
        if not run_ids:
            raise invalid("GetMetricHistoryBulkInterval request must specify at least one run_id.")
        if len(run_ids) > 100:
            raise invalid("GetMetricHistoryBulkInterval request cannot specify more than 100 run_ids. "
                          f"Received {len(run_ids)} run_ids.")
        limit = 2500 if max_results is None else max_results
        if limit <= 0 or limit > 2500:
            raise invalid(f"max_results must be between 1 and 2500, got {limit}")
        if (start_step is None) != (end_step is None):
            raise invalid("If either start step or end step are specified, both must be specified.")
        if start_step is not None and end_step is not None and start_step > end_step:
            raise invalid("end_step must be greater than start_step. Found start_step={start_step} and "
                          f"end_step={end_step}.")
        per_run = {rid: self._read_run(rid, lambda r: history(r, metric_key)) for rid in run_ids}
        steps = sorted({r[2] for recs in per_run.values() for r in recs
                        if start_step is None or start_step <= r[2] <= end_step})  # type: ignore[operator]
        chosen = set(_sample(steps, limit))
        metrics = [{"key": metric_key, "value": json_float(r[0]), "timestamp": r[1], "step": r[2], "run_id": rid}
                   for rid, recs in per_run.items() for r in sorted(recs, key=lambda r: (r[2], r[1]))
                   if r[2] in chosen]
        return {"metrics": metrics}

    def search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: str | None,
                    max_results: int | None, order_by: list[str], page_token: str | None) -> dict[str, Any]:
        stages = VIEW_TYPES.get(str(run_view_type or "ACTIVE_ONLY"))
        if stages is None:
            raise invalid(f"Invalid run_view_type '{run_view_type}'")
        limit = v.max_results(max_results, 1000)
        with ExitStack() as stack:  # hold every log's view until the page is rendered
            found: list[Subject] = []
            for eid in sorted(set(experiment_ids)):
                runs = stack.enter_context(self._experiment_log(v.experiment_id(eid)).view())
                found.extend(_run_subject(r) for r in runs.values() if r["info"].get("lifecycle_stage") in stages)
            found = search.RUNS.sort(search.RUNS.filter(found, filter_string), order_by)
            page, token = paginate(found, page_token, limit)
            out: dict[str, Any] = {"runs": [run_json(p.record) for p in page]}
        if token:
            out["next_page_token"] = token
        return out

    # -- logged models ----------------------------------------------------------------------
    def _model_key(self, model_id: str) -> str:
        return f"{LOGGED_MODELS}{v.model_id(model_id)}.json"

    def _model_doc(self, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
        try:
            doc = self.store.get_json(self._model_key(model_id))
        except NotFound:
            raise not_found(f"Logged model with ID '{model_id}' not found.") from None
        if doc["lifecycle_stage"] == "deleted" and not allow_deleted:
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        return doc  # type: ignore[no-any-return]

    @staticmethod
    def _model_json(doc: dict[str, Any]) -> dict[str, Any]:
        info = {k: doc[k] for k in ("model_id", "experiment_id", "name", "creation_timestamp_ms",
                                    "last_updated_timestamp_ms", "artifact_uri", "status", "model_type",
                                    "source_run_id", "status_message") if doc.get(k) is not None}
        info["tags"] = [{"key": k, "value": val} for k, val in doc["tags"].items()]
        metrics = [{"key": key, "value": json_float(value), "timestamp": ts, "step": step, "run_id": run_id,
                    "model_id": doc["model_id"], "dataset_name": ds_name, "dataset_digest": ds_digest}
                   for key, value, ts, step, run_id, ds_name, ds_digest in doc.get("metrics", [])]
        return {"info": info, "data": {"params": [{"key": k, "value": val} for k, val in doc["params"].items()],
                                       "metrics": [{k: val for k, val in m.items() if val is not None}
                                                   for m in metrics]}}

    def create_logged_model(self, msg: dict[str, Any]) -> dict[str, Any]:
        eid = v.experiment_id(msg.get("experiment_id"))
        exp = self.experiments.get(eid)
        if exp.lifecycle_stage != "active":
            raise invalid(f"The experiment {eid} must be in the 'active' state. Current state is deleted.")
        source_run_id = v.string(msg, "source_run_id")
        if source_run_id:
            self._experiment_of(source_run_id)
        model_id = f"m-{uuid.uuid4().hex}"
        t = now_ms()
        doc = {"model_id": model_id, "experiment_id": eid, "name": v.string(msg, "name") or _random_name(),
               "creation_timestamp_ms": t, "last_updated_timestamp_ms": t,
               "artifact_uri": f"{exp.artifact_location}/models/{model_id}/artifacts",
               "status": "LOGGED_MODEL_PENDING", "model_type": v.string(msg, "model_type"),
               "source_run_id": source_run_id or None, "status_message": None, "lifecycle_stage": "active",
               "tags": dict(v.tag(t_, f"tags[{i}].") for i, t_ in enumerate(v.object_list(msg, "tags"))),
               "params": dict(v.param(p, f"params[{i}].") for i, p in enumerate(v.object_list(msg, "params")))}
        self.store.put_json(self._model_key(model_id), doc, if_none_match=True)
        return {"model": self._model_json(doc)}

    def _update_model(self, model_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        self._model_doc(model_id)

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            change(doc)
            doc["last_updated_timestamp_ms"] = now_ms()
            return doc
        return self.store.update_json(self._model_key(model_id), mutate)  # type: ignore[no-any-return]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
        return {"model": self._model_json(self._model_doc(model_id, allow_deleted))}

    def finalize_logged_model(self, model_id: str, status: Any) -> dict[str, Any]:
        if str(status) not in MODEL_STATUSES:
            raise invalid(f"Invalid value '{status}' for parameter 'status'")

        def set_status(doc: dict[str, Any]) -> None:
            doc["status"] = str(status)
        return {"model": self._model_json(self._update_model(model_id, set_status))}

    def delete_logged_model(self, model_id: str) -> None:
        def delete(doc: dict[str, Any]) -> None:
            doc["lifecycle_stage"] = "deleted"
        self._update_model(model_id, delete)

    def set_logged_model_tags(self, model_id: str, tags: list[dict[str, Any]]) -> None:
        clean = dict(v.tag(t, f"tags[{i}].") for i, t in enumerate(tags))

        def set_tags(doc: dict[str, Any]) -> None:
            doc["tags"].update(clean)
        self._update_model(model_id, set_tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        if key not in self._model_doc(model_id)["tags"]:
            raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")

        def drop(doc: dict[str, Any]) -> None:
            doc["tags"].pop(key, None)
        self._update_model(model_id, drop)

    def log_logged_model_params(self, model_id: str, params: list[dict[str, Any]]) -> None:
        clean = dict(v.param(p, f"params[{i}].") for i, p in enumerate(params))

        def add(doc: dict[str, Any]) -> None:
            for key, value in clean.items():
                doc["params"].setdefault(key, value)
        self._update_model(model_id, add)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None,
                             datasets: list[dict[str, Any]], max_results: int | None,
                             order_by: list[dict[str, Any]], page_token: str | None) -> dict[str, Any]:
        limit = v.max_results(max_results, 100)
        wanted = {v.experiment_id(e) for e in experiment_ids}
        docs = []
        for info in self.store.list(LOGGED_MODELS):
            try:
                doc = self.store.get_json(info.key)
            except NotFound:
                continue
            if doc["experiment_id"] in wanted and doc["lifecycle_stage"] == "active":
                docs.append(doc)
        models = search.LOGGED_MODELS.filter_models([_model_subject(d) for d in docs], filter_string, datasets)
        page, token = paginate(search.LOGGED_MODELS.sort(models, order_by), page_token, limit)
        out: dict[str, Any] = {"models": [self._model_json(m.record) for m in page]}
        if token:
            out["next_page_token"] = token
        return out


def _b64encode(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


def _sample(steps: list[int], limit: int) -> list[int]:
    """At most ``limit`` steps spread evenly, always keeping the first and the last."""
    if len(steps) <= limit:
        return steps
    if limit == 1:
        return [steps[-1]]
    stride = (len(steps) - 1) / (limit - 1)
    return sorted({steps[round(i * stride)] for i in range(limit)})


def tracking_service() -> TrackingService:
    """The per-process service over the configured store."""
    from .. import services
    return services.cached("tracking", lambda: TrackingService(services.store()))  # type: ignore[no-any-return]
