"""MLflow's run calls: create, read, update, delete and restore runs, log to them, search them.

Every change to a run is one entry in its logs (``run_logs.RunLogs.write``); reads fold them.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from contextlib import ExitStack
from typing import Any, Callable, Iterator, Mapping

from ..mlflowapi import pages, search
from ..mlflowapi import validation as v
from ..mlflowapi.clock import now_ms
from ..mlflowapi.errors import MlflowError, invalid, invalid_status, tag_not_found
from ..mlflowapi.fields import Fields, Objects, fields_of, listed
from ..store import PreconditionFailed
from .entities import Metric, Run, RunInfo
from .eventlog import FoldedLog, append_all, new_entry_key
from .experiment_service import ExperimentService, stages_of
from .logged_model_service import LoggedModelService
from .run_logs import RunLogs
from .runs import RUN_NAME_TAG, effective_stage, fold_run, history, random_name

RUN_STATUSES = set(v.RUN_STATUS)
BULK_MAX_RESULTS = 2500  # GetMetricHistoryBulkInterval's ceiling (MLflow's MAX_RESULTS_PER_RUN)
BULK_MAX_RUNS = 100
DATASET_SUMMARIES = 1000  # MLflow's MAX_DATASET_SUMMARIES_RESULTS
DATASET_CONTEXT_TAG = "mlflow.data.context"


class _LatestValues(Mapping[str, float]):
    """A run's latest metric values, read through its ``{key: [value, timestamp, step]}`` (no copy:
    a search builds a subject per run of the experiment, and most filters read one metric)."""
    __slots__ = ("_metrics",)

    def __init__(self, metrics: dict[str, list[Any]]) -> None:
        self._metrics = metrics

    def get(self, key: str, default: Any = None) -> Any:
        rec = self._metrics.get(key)
        return default if rec is None else rec[0]

    def __getitem__(self, key: str) -> float:
        return self._metrics[key][0]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)


class _Found:
    """Recent searches' sorted runs, keyed by everything they read: each log's identity and
    ``generation`` (bumped by any change to its fold), the experiments' lifecycles, the stages, the
    filter and the order. A hit is exact; the runs it holds are the folds' own dicts, read under the
    logs' views like a fresh search's. Few entries: a key names one state of the logs."""
    SIZE = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, list[search.Subject]] = OrderedDict()

    def get(self, key: Any) -> list[search.Subject] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Any, found: list[search.Subject]) -> list[search.Subject]:
        with self._lock:
            self._entries[key] = found
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)
        return found


def _run_value(kind: str, key: str) -> Callable[[dict[str, Any]], Any]:
    """How a search reads a metric's latest value, a param, a tag or an attribute from a folded run."""
    if kind == search.METRIC:
        return lambda run: None if (rec := run["metrics"].get(key)) is None else rec[0]
    part = {search.PARAM: "params", search.TAG: "tags"}.get(kind, "info")
    return lambda run: run[part].get(key)


def _run_subject(run: dict[str, Any], stage: str) -> search.Subject:
    """What a run search reads; valid while the log's view() is held (it shares the run's dicts)."""
    return search.Subject((run, stage), run["info"], run["tags"], run["params"], _LatestValues(run["metrics"]),
                          (), run["datasets"])


class RunService:
    def __init__(self, logs: RunLogs, experiments: ExperimentService, logged_models: LoggedModelService) -> None:
        self.logs = logs
        self.experiments = experiments
        self.logged_models = logged_models
        self._found = _Found()

    def create_run(self, request: Fields | dict[str, Any]) -> Run:
        msg = Fields(request)
        eid = v.experiment_id(msg.string("experiment_id") or "0")
        exp = self.experiments.active(eid)
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
        run_name = run_name or tag_name or random_name()
        tags[RUN_NAME_TAG] = run_name
        info = {"run_id": run_id, "experiment_id": eid, "user_id": msg.string("user_id") or "",
                "run_name": run_name, "status": "RUNNING", "start_time": start_time or now_ms(),
                "artifact_uri": f"{exp.artifact_location}/{run_id}/artifacts", "lifecycle_stage": "active"}
        key = new_entry_key()
        entry = {"run": run_id, "time": now_ms(), "create": info, "tags": tags}
        run_log, exp_log = self.logs.run_log(run_id), self.logs.experiment_log(eid)
        replayed = []

        def point() -> None:
            try:
                # Written as an entry: a pointer torn by a crash before the ack reads as absent (run_logs).
                self.logs.store.create_entry(self.logs.pointer_key(run_id), json.dumps({"experiment_id": eid}, separators=(",", ":")).encode(),
                                             content_type="application/json")
            except PreconditionFailed:
                replayed.append(True)  # a retry: the entries below are idempotent, rewriting is harmless
        append_all([(run_log, key, entry), (exp_log, key, entry)], also=[point])
        self.logs.remember(run_id, eid)
        if replayed:
            return self.get_run(run_id)
        state: dict[str, Any] = {}
        fold_run(state, entry)
        return Run.from_record(state[run_id])

    def get_run(self, run_id: str) -> Run:
        experiment = self.logs.lifecycle(self.logs.experiment_of(run_id))
        return self.logs.read(run_id, lambda run: Run.from_record(run, effective_stage(run["info"],
                                                                                       experiment.result())))

    def update_run_info(self, run_id: str, status: str | None, end_time: int | None,
                        run_name: str | None) -> RunInfo:
        change: dict[str, Any] = {}
        if status is not None:
            if str(status) not in RUN_STATUSES:
                raise invalid_status(status)
            change["status"] = str(status)
        if end_time is not None:
            change["end_time"] = end_time
        if run_name:
            change["run_name"] = run_name
        return RunInfo.from_record(self.logs.write(run_id, {"update": change}))

    def delete_run(self, run_id: str) -> None:
        self.logs.write(run_id, {"lifecycle": "deleted", "deleted_time": now_ms()}, require_active=False)

    def restore_run(self, run_id: str) -> None:
        self.logs.write(run_id, {"lifecycle": "active", "deleted_time": None}, require_active=False)

    def log_batch(self, run_id: str, metrics: Objects, params: Objects, tags: Objects) -> None:
        param_fields, tag_fields = fields_of(params, "params"), fields_of(tags, "tags")
        v.batch_limits(len(listed(metrics, "metrics")), len(param_fields), len(tag_fields))
        clean_metrics = v.metrics(metrics)
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
            self.logged_models.load(model_id)  # 404 before anything is written
        self.logs.write(run_id, entry, params_unchanged)
        self.logged_models.add_metrics(run_id, clean_metrics)

    def delete_tag(self, run_id: str, key: str) -> None:
        def exists(run: dict[str, Any]) -> None:
            if key not in run["tags"]:
                raise tag_not_found(key, "run", run_id)
        self.logs.write(run_id, {"del_tags": [key]}, exists)

    def log_inputs(self, run_id: str, datasets: Objects, models: Objects) -> None:
        clean = [v.dataset_input(d) for d in fields_of(datasets, "datasets")]
        model_ids = [m.string("model_id", required=True) for m in fields_of(models, "models")]
        if clean or model_ids:
            self.logs.write(run_id, {"datasets": clean, "model_inputs": model_ids})

    def log_outputs(self, run_id: str, models: Objects) -> None:
        outputs = [[m.string("model_id", required=True), m.integer("step") or 0] for m in fields_of(models, "models")]
        if outputs:
            self.logs.write(run_id, {"model_outputs": outputs})

    def record_logged_model(self, run_id: str, model_json: str) -> None:
        try:
            model = json.loads(model_json)
        except ValueError:
            raise invalid(f"Malformed model info. \n {model_json} \n is not a valid JSON.") from None
        missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model if isinstance(model, dict) else {})
        if missing:
            raise invalid(f"Model json is missing mandatory fields: {missing}")
        self.logs.write(run_id, {"log_model": [model]})

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None,
                           page_token: str | None) -> pages.Page[Metric]:
        """One page of a metric's history: ``max_results`` records (all by default) within the size budget."""
        recs = self.logs.read(run_id, lambda r: history(r, metric_key))
        limit = len(recs) if max_results is None else v.max_results(max_results, 0)
        return pages.page(recs, page_token, max(limit, 1), wire=Metric.to_wire,
                          load=lambda window: [Metric(metric_key, r[0], r[1], r[2]) for r in window])

    def get_metric_history_bulk_interval(self, run_ids: list[str], metric_key: str, start_step: int | None,
                                         end_step: int | None, max_results: int | None) -> list[Metric]:
        if not run_ids:
            raise invalid("GetMetricHistoryBulkInterval request must specify at least one run_id.")
        if len(run_ids) > BULK_MAX_RUNS:
            raise invalid(f"GetMetricHistoryBulkInterval request cannot specify more than {BULK_MAX_RUNS} run_ids. "
                          f"Received {len(run_ids)} run_ids.")
        limit = BULK_MAX_RESULTS if max_results is None else max_results
        if limit <= 0 or limit > BULK_MAX_RESULTS:
            raise invalid(f"max_results must be between 1 and {BULK_MAX_RESULTS}, got {limit}")
        if (start_step is None) != (end_step is None):
            raise invalid("If either start step or end step are specified, both must be specified.")
        if start_step is not None and end_step is not None and start_step > end_step:
            raise invalid(f"end_step must be greater than start_step. Found start_step={start_step} and "
                          f"end_step={end_step}.")
        per_run = {rid: self.logs.read(v.run_id(rid), lambda r: history(r, metric_key)) for rid in run_ids}
        steps = sorted({r[2] for recs in per_run.values() for r in recs
                        if start_step is None or start_step <= r[2] <= end_step})  # type: ignore[operator]
        # This API has no page token: it is a sample (the UI's charts), so a sample that would not
        # fit in a response is thinned to fewer steps until it does.
        while True:
            chosen = set(_sample(steps, limit))
            metrics = [Metric(metric_key, r[0], r[1], r[2], run_id=rid)
                       for rid, recs in per_run.items() for r in sorted(recs, key=lambda r: (r[2], r[1]))
                       if r[2] in chosen]
            size = pages.envelope_size([m.to_wire() for m in metrics])
            if size <= pages.BUDGET or len(chosen) <= 1:
                return metrics
            limit = max(1, min(len(chosen) - 1, int(len(chosen) * pages.BUDGET / size * 0.95)))

    def search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: str | None,
                    max_results: int | None, order_by: list[str], page_token: str | None) -> pages.Page[Run]:
        stages = stages_of(run_view_type, "run_view_type")
        limit = v.max_results(max_results, 1000)
        eids = sorted({v.experiment_id(e) for e in experiment_ids})
        lifecycles = {eid: self.logs.lifecycle(eid) for eid in eids}
        matches = search.RUNS.predicate(filter_string, _run_value, _run_subject)  # a bad filter fails first
        search.RUNS.sort([], order_by)  # and a bad order_by
        with ExitStack() as stack:  # hold every log's view until the page's runs are copied out
            sources: list[tuple[str, tuple[str, str], FoldedLog, dict[str, Any]]] = []
            for eid in eids:
                try:
                    experiment = lifecycles[eid].result()
                except MlflowError as err:
                    if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                        continue  # as MLflow: an unknown experiment has no runs
                    raise
                if experiment[0] == "deleted" and "deleted" not in stages:
                    continue
                log = self.logs.experiment_log(eid)
                sources.append((eid, experiment, log, stack.enter_context(log.view())))
            # The same search over the same folds gives the same runs: the UI polls, clients page.
            key = (tuple((eid, experiment, log.generation) for eid, experiment, log, _ in sources),
                   frozenset(stages), filter_string, tuple(order_by))
            found = self._found.get(key)
            if found is None:
                found = []
                for _, experiment, _, runs in sources:
                    for run in runs.values():
                        stage = effective_stage(run["info"], experiment)
                        if stage in stages and matches(run, stage):
                            found.append(_run_subject(run, stage))
                found = self._found.put(key, search.RUNS.sort(found, order_by))
            return pages.page(found, page_token, limit, wire=Run.to_wire,
                              load=lambda window: [Run.from_record(*s.record) for s in window],
                              text=self.logs.rendered)

    def search_datasets(self, experiment_ids: list[str]) -> list[dict[str, Any]]:
        """MLflow's ``experiments/search-datasets``: distinct (experiment, name, digest, context) of the
        datasets logged to the experiments' runs, at most ``DATASET_SUMMARIES`` (as its SQL store)."""
        found: dict[tuple[str, str, str, str | None], None] = {}
        for eid in sorted({v.experiment_id(e) for e in experiment_ids}):
            with self.logs.experiment_log(eid).view() as runs:
                for run in runs.values():
                    for dataset_input in run["datasets"]:
                        dataset = dataset_input.get("dataset") or {}
                        context = next((t.get("value") for t in dataset_input.get("tags") or []
                                        if t.get("key") == DATASET_CONTEXT_TAG), None)
                        found.setdefault((eid, dataset.get("name", ""), dataset.get("digest", ""), context))
                        if len(found) >= DATASET_SUMMARIES:
                            break
        return [{k: val for k, val in zip(("experiment_id", "name", "digest", "context"), key) if val is not None}
                for key in list(found)[:DATASET_SUMMARIES]]


def _sample(steps: list[int], limit: int) -> list[int]:
    """At most ``limit`` steps spread evenly, always keeping the first and the last."""
    if len(steps) <= limit:
        return steps
    if limit == 1:
        return [steps[-1]]
    stride = (len(steps) - 1) / (limit - 1)
    return sorted({steps[round(i * stride)] for i in range(limit)})
