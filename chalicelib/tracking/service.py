"""The tracking service: MLflow's tracking-store methods over the object store, no database.

Each write to a run is ONE log entry, appended create-only to two logs that share its key:
the run's (``mlflow/runs/<run_id>/``: full metric history, for get_run and get-history) and its
experiment's (``mlflow/experiment-runs/<eid>/``: latest values only, for search_runs). See
eventlog.py for the fold/compaction protocol and runs.py for the record shape.

Public API for other modules (the model registry), all proto-JSON dicts, MlflowError when absent:
``TrackingService.get_run(run_id)`` -> ``{"info", "data", "inputs", "outputs"}``;
``.get_experiment(experiment_id)`` -> ``{"experiment_id", "name", "artifact_location", ...}``;
``.get_logged_model(model_id)`` -> ``{"model": {"info", "data"}}``.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import ExitStack
from typing import Any, Callable, Sequence

from ..store import NotFound, ObjectStore, PreconditionFailed
from . import validation as v
from .errors import MlflowError, invalid, not_found
from .eventlog import FoldedLog, background, new_entry_key, parallel
from .experiments import Experiment, ExperimentStore, now_ms
from .runs import (RUN_NAME_TAG, effective_stage, fold_experiment, fold_run, history, json_float, latest_only,
                   run_info_json, run_json)
from . import search
from . import responses
from .doccache import DocCache
from .search import ModelMetric, Subject

RUNS = "mlflow/runs/"
EXPERIMENT_RUNS = "mlflow/experiment-runs/"
LOGGED_MODELS = "mlflow/logged-models/"
VIEW_TYPES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}
RUN_STATUSES = set(v.RUN_STATUS)
MODEL_STATUSES = set(v.MODEL_STATUS) - {"LOGGED_MODEL_STATUS_UNSPECIFIED"}
_LOG_CACHE_SIZE = 4096
Objects = Sequence["v.Fields | dict[str, Any]"]  # repeated message fields: from the routes, or plain dicts

_ADJECTIVES = ("able", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "grand", "happy",
               "keen", "lively", "merry", "nimble", "proud", "quick", "quiet", "sharp", "swift", "wise")
_NOUNS = ("ant", "bass", "bear", "crab", "deer", "dove", "eel", "finch", "fox", "goat", "hawk", "lark",
          "mole", "owl", "ram", "seal", "shrew", "snail", "toad", "wolf")


def _random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"


def _run_subject(run: dict[str, Any], stage: str) -> Subject:
    """What a run search reads; valid while the log's view() is held (it shares the run's dicts)."""
    return Subject((run, stage), run["info"], tags=run["tags"], params=run["params"],
                   metrics={k: m[0] for k, m in run["metrics"].items()}, datasets=run["datasets"])


def _model_subject(doc: dict[str, Any]) -> Subject:
    return Subject(doc, doc, tags=doc["tags"], params=doc["params"],
                   model_metrics=[ModelMetric(m[0], m[1], m[2], m[5], m[6]) for m in doc.get("metrics", [])])


class TrackingService:
    def __init__(self, store: ObjectStore, *, artifact_root: str | None = None) -> None:
        self.store = store
        self.experiments = ExperimentStore(store, artifact_root=artifact_root)
        self._lock = threading.Lock()
        self._logs: OrderedDict[str, FoldedLog] = OrderedDict()
        self._run_experiment: dict[str, str] = {}  # immutable, so safe to cache
        self._logged_models: DocCache[dict[str, Any]] = DocCache(store, lambda doc: doc)

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

    def _lifecycle(self, experiment_id: str) -> Future[tuple[str, str]]:
        """The experiment's lifecycle, fetched alongside the run log's refresh (one conditional GET)."""
        return background(lambda: self.experiments.lifecycle(experiment_id))

    def _write(self, run_id: str, entry: dict[str, Any], check: Callable[[dict[str, Any]], None] | None = None,
               require_active: bool = True) -> dict[str, Any]:
        """Validate against the run's current state, then append the entry to both logs (2 parallel PUTs).

        Returns the run's info as it will read after this entry."""
        eid = self._experiment_of(run_id)
        experiment = self._lifecycle(eid)
        log = self._run_log(run_id)
        with log.view() as runs:
            run = runs.get(run_id)
            if run is None:
                raise not_found(f"Run with id={run_id} not found")
            exp_stage, exp_changed = experiment.result()
            stage = effective_stage(run["info"], (exp_stage, exp_changed))
            if require_active and stage != "active":
                raise invalid(f"The run {run_id} must be in the 'active' state. Current state is {stage}.")
            if entry.get("lifecycle") == "active" and exp_stage != "active":
                raise invalid(f"Cannot restore run {run_id}: its experiment {eid} is deleted. Restore the "
                              "experiment first.")
            if check:
                check(run)
            _check_record_size(run, entry)
            # After the experiment's last delete/restore too: this run's own lifecycle change follows it.
            key = new_entry_key(after=max(log.last_key(), exp_changed))
            info = dict(run["info"], **entry.get("update", {}), lifecycle_stage=stage)
        entry = dict(entry, run=run_id, time=now_ms())
        if "lifecycle" in entry:
            entry["key"] = key
        exp_log = self._experiment_log(eid)
        parallel([lambda: log.append(key, entry), lambda: exp_log.append(key, latest_only(entry))])
        return info

    # -- experiments ----------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None, tags: Objects) -> str:
        v.experiment_name(name)
        if artifact_location is not None and not isinstance(artifact_location, str):
            raise invalid("artifact_location must be a string")
        clean = dict(v.tag(t, v.MAX_EXPERIMENT_TAG_VAL_LENGTH) for t in v.fields_of(tags, "tags"))
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
        page, token = responses.page(exps, page_token, limit, lambda e: e.record.to_json())
        out: dict[str, Any] = {"experiments": page}
        if token:
            out["next_page_token"] = token
        return out

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.experiments.rename(v.experiment_id(experiment_id), v.experiment_name(new_name))

    def delete_experiment(self, experiment_id: str) -> None:
        """One write, whatever the number of runs: their lifecycles derive from the experiment's."""
        self.experiments.set_lifecycle(v.experiment_id(experiment_id), "deleted")

    def restore_experiment(self, experiment_id: str) -> None:
        self.experiments.set_lifecycle(v.experiment_id(experiment_id), "active")

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        k, val = v.tag(v.Fields({"key": key, "value": value}), v.MAX_EXPERIMENT_TAG_VAL_LENGTH)
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
    def create_run(self, request: v.Fields | dict[str, Any]) -> dict[str, Any]:
        msg = v.Fields(request)
        eid = v.experiment_id(msg.string("experiment_id") or "0")
        exp = self.experiments.get(eid)
        if exp.lifecycle_stage != "active":
            raise invalid(f"The experiment {eid} must be in the 'active' state. Current state is "
                          f"{exp.lifecycle_stage}.")
        tags = dict(v.tag(t) for t in msg.objects("tags"))
        run_name = msg.string("run_name")
        tag_name = tags.get(RUN_NAME_TAG)
        if run_name and tag_name and run_name != tag_name:
            raise invalid(f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                          f"different values (run_name='{run_name}', mlflow.runName='{tag_name}').")
        start_time = msg.integer("start_time")
        # Random, as in MLflow: identical requests in the same millisecond are common (threads
        # starting runs), so a content-derived id would merge distinct runs.
        run_id = uuid.uuid4().hex
        run_name = run_name or tag_name or _random_name()
        tags[RUN_NAME_TAG] = run_name
        info = {"run_id": run_id, "experiment_id": eid, "user_id": msg.string("user_id") or "",
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
        experiment = self._lifecycle(self._experiment_of(run_id))
        return self._read_run(  # type: ignore[no-any-return]
            run_id, lambda run: run_json(run, effective_stage(run["info"], experiment.result())))

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

    def log_batch(self, run_id: str, metrics: Objects, params: Objects, tags: Objects) -> None:
        metric_fields, param_fields = v.fields_of(metrics, "metrics"), v.fields_of(params, "params")
        tag_fields = v.fields_of(tags, "tags")
        v.batch_limits(len(metric_fields), len(param_fields), len(tag_fields))
        clean_metrics = [v.metric(m) for m in metric_fields]
        clean_params: dict[str, str] = {}
        dupes = []
        for p in param_fields:
            key, value = v.param(p)
            if key in clean_params:
                dupes.append(key)
            clean_params[key] = value
        if dupes:
            raise invalid(f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request "
                          "contains only one param value per param key.")
        clean_tags = dict(v.tag(t) for t in tag_fields)
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

    def log_inputs(self, run_id: str, datasets: Objects, models: Objects) -> None:
        clean = [v.dataset_input(d) for d in v.fields_of(datasets, "datasets")]
        model_ids = [m.string("model_id", required=True) for m in v.fields_of(models, "models")]
        if clean or model_ids:
            self._write(run_id, {"datasets": clean, "model_inputs": model_ids})

    def log_outputs(self, run_id: str, models: Objects) -> None:
        outputs = [[m.string("model_id", required=True), m.integer("step") or 0] for m in v.fields_of(models, "models")]
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
        """One page of a metric's history: ``max_results`` records (all by default) within the size budget."""
        recs = self._read_run(run_id, lambda r: history(r, metric_key))
        limit = len(recs) if max_results is None else v.max_results(max_results, 0)
        page, token = responses.page(recs, page_token, max(limit, 1), lambda r: {
            "key": metric_key, "value": json_float(r[0]), "timestamp": r[1], "step": r[2]})
        out: dict[str, Any] = {"metrics": page}
        if token:
            out["next_page_token"] = token
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
        per_run = {rid: self._read_run(v.run_id(rid), lambda r: history(r, metric_key)) for rid in run_ids}
        steps = sorted({r[2] for recs in per_run.values() for r in recs
                        if start_step is None or start_step <= r[2] <= end_step})  # type: ignore[operator]
        # This API has no page token: it is a sample (the UI's charts), so a sample that would not
        # fit in a response is thinned to fewer steps until it does.
        while True:
            chosen = set(_sample(steps, limit))
            metrics = [{"key": metric_key, "value": json_float(r[0]), "timestamp": r[1], "step": r[2],
                        "run_id": rid}
                       for rid, recs in per_run.items() for r in sorted(recs, key=lambda r: (r[2], r[1]))
                       if r[2] in chosen]
            size = responses.envelope_size(metrics)
            if size <= responses.BUDGET or len(chosen) <= 1:
                return {"metrics": metrics}
            limit = max(1, min(len(chosen) - 1, int(len(chosen) * responses.BUDGET / size * 0.95)))

    def search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: str | None,
                    max_results: int | None, order_by: list[str], page_token: str | None) -> dict[str, Any]:
        stages = VIEW_TYPES.get(str(run_view_type or "ACTIVE_ONLY"))
        if stages is None:
            raise invalid(f"Invalid run_view_type '{run_view_type}'")
        limit = v.max_results(max_results, 1000)
        eids = sorted({v.experiment_id(e) for e in experiment_ids})
        lifecycles = {eid: self._lifecycle(eid) for eid in eids}
        with ExitStack() as stack:  # hold every log's view until the page is rendered
            found: list[Subject] = []
            for eid in eids:
                try:
                    experiment = lifecycles[eid].result()
                except MlflowError as err:
                    if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                        continue  # as MLflow: an unknown experiment has no runs
                    raise
                if experiment[0] == "deleted" and "deleted" not in stages:
                    continue
                runs = stack.enter_context(self._experiment_log(eid).view())
                for run in runs.values():
                    stage = effective_stage(run["info"], experiment)
                    if stage in stages:
                        found.append(_run_subject(run, stage))
            found = search.RUNS.sort(search.RUNS.filter(found, filter_string), order_by)
            page, token = responses.page(found, page_token, limit, lambda s: run_json(*s.record))
            out: dict[str, Any] = {"runs": page}
        if token:
            out["next_page_token"] = token
        return out

    # -- repair -----------------------------------------------------------------------------
    def repair_logs(self, run_id: str | None = None, experiment_id: str | None = None) -> dict[str, Any]:
        """Refold logs from all their entries (``stacflow repair-logs``): one run's (and its
        experiment's), one experiment's and its runs', or, with neither, every experiment's."""
        if run_id is not None:
            logs = [self._run_log(run_id), self._experiment_log(self._experiment_of(run_id))]
            return {"logs": len(logs), "repaired": [log.prefix for log in logs if log.refold()]}
        eids = [v.experiment_id(experiment_id)] if experiment_id is not None else sorted(
            e.experiment_id for e in self.experiments.list_all())
        count, repaired = 0, []
        for eid in eids:
            exp_log = self._experiment_log(eid)
            # The experiment's log first: the runs read from it then include any it recovers.
            if exp_log.refold():
                repaired.append(exp_log.prefix)
            with exp_log.view() as runs:
                run_logs = [self._run_log(rid) for rid in sorted(runs)]
            repaired += [log.prefix for log in run_logs if log.refold()]
            count += 1 + len(run_logs)
        return {"logs": count, "repaired": repaired}

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

    def create_logged_model(self, request: v.Fields | dict[str, Any]) -> dict[str, Any]:
        msg = v.Fields(request)
        eid = v.experiment_id(msg.string("experiment_id"))
        exp = self.experiments.get(eid)
        if exp.lifecycle_stage != "active":
            raise invalid(f"The experiment {eid} must be in the 'active' state. Current state is deleted.")
        source_run_id = msg.string("source_run_id")
        if source_run_id:
            self._experiment_of(source_run_id)
        model_id = f"m-{uuid.uuid4().hex}"
        t = now_ms()
        doc = {"model_id": model_id, "experiment_id": eid, "name": msg.string("name") or _random_name(),
               "creation_timestamp_ms": t, "last_updated_timestamp_ms": t,
               "artifact_uri": f"{exp.artifact_location}/models/{model_id}/artifacts",
               "status": "LOGGED_MODEL_PENDING", "model_type": msg.string("model_type"),
               "source_run_id": source_run_id or None, "status_message": None, "lifecycle_stage": "active",
               "tags": dict(v.tag(t_) for t_ in msg.objects("tags")),
               "params": dict(v.param(p) for p in msg.objects("params"))}
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

    def set_logged_model_tags(self, model_id: str, tags: Objects) -> None:
        clean = dict(v.tag(t) for t in v.fields_of(tags, "tags"))

        def set_tags(doc: dict[str, Any]) -> None:
            doc["tags"].update(clean)
        self._update_model(model_id, set_tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        if key not in self._model_doc(model_id)["tags"]:
            raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")

        def drop(doc: dict[str, Any]) -> None:
            doc["tags"].pop(key, None)
        self._update_model(model_id, drop)

    def log_logged_model_params(self, model_id: str, params: Objects) -> None:
        clean = dict(v.param(p) for p in v.fields_of(params, "params"))

        def add(doc: dict[str, Any]) -> None:
            for key, value in clean.items():
                doc["params"].setdefault(key, value)
        self._update_model(model_id, add)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None,
                             datasets: list[dict[str, Any]], max_results: int | None,
                             order_by: list[dict[str, Any]], page_token: str | None) -> dict[str, Any]:
        limit = v.max_results(max_results, 100)
        wanted = {v.experiment_id(e) for e in experiment_ids}
        docs = [d for d in self._logged_models.listing(LOGGED_MODELS)
                if d["experiment_id"] in wanted and d["lifecycle_stage"] == "active"]
        models = search.LOGGED_MODELS.filter_models([_model_subject(d) for d in docs], filter_string, datasets)
        page, token = responses.page(search.LOGGED_MODELS.sort(models, order_by), page_token, limit,
                                     lambda m: self._model_json(m.record))
        out: dict[str, Any] = {"models": page}
        if token:
            out["next_page_token"] = token
        return out


def _check_record_size(run: dict[str, Any], entry: dict[str, Any]) -> None:
    """Refuse a write after which the run could not be returned: get-run (and a search page holding
    it) must fit in a Lambda response. Only writes that add to the record pay for the measure."""
    new_metrics = {m[0]: m[1:4] for m in entry.get("metrics", ()) if m[0] not in run["metrics"]}
    growth = {k: entry[k] for k in ("params", "tags", "datasets", "model_inputs", "model_outputs", "log_model")
              if entry.get(k)}
    if not (new_metrics or growth):
        return
    size = responses.envelope_size(run_json(run)) + responses.envelope_size([new_metrics, growth])
    if size > responses.RECORD_LIMIT:
        raise invalid(f"Run {run['info']['run_id']} would exceed {responses.RECORD_LIMIT} bytes (params, tags, "
                      "latest metrics and inputs together), more than a response can carry.")


def _sample(steps: list[int], limit: int) -> list[int]:
    """At most ``limit`` steps spread evenly, always keeping the first and the last."""
    if len(steps) <= limit:
        return steps
    if limit == 1:
        return [steps[-1]]
    stride = (len(steps) - 1) / (limit - 1)
    return sorted({steps[round(i * stride)] for i in range(limit)})
