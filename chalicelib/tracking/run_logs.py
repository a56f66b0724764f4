"""Run logs: the per-process cache of folded logs, and the one-entry write every run change makes.

Each write to a run is ONE log entry, appended create-only to two logs that share its key:
the run's (``mlflow/runs/<run_id>/``: full metric history, for get_run and get-history) and its
experiment's (``mlflow/experiment-runs/<eid>/``: latest values only, for search_runs). A pointer
``mlflow/runs/<run_id>.json`` names a run's experiment. See eventlog.py for the fold/compaction
protocol and runs.py for the folded state.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

from ..mlflowapi import pages
from ..mlflowapi import validation as v
from ..mlflowapi.clock import now_ms
from ..mlflowapi.errors import invalid, not_active, run_not_found
from ..store import NotFound, ObjectStore
from .entities import Run
from .eventlog import FoldedLog, append_all, background, new_entry_key
from .experiments import ExperimentStore
from .runs import effective_stage, fold_experiment, fold_run, latest_only

RUNS = "mlflow/runs/"
EXPERIMENT_RUNS = "mlflow/experiment-runs/"
_LOG_CACHE_SIZE = 4096
_RENDERED_RUNS = 20_000  # wire forms kept (~1 KB each for a typical run)
T = TypeVar("T")


class RunLogs:
    def __init__(self, store: ObjectStore, experiments: ExperimentStore) -> None:
        self.store = store
        self.experiments = experiments
        self._lock = threading.Lock()
        self._logs: OrderedDict[str, FoldedLog] = OrderedDict()
        self._run_experiment: dict[str, str] = {}  # immutable, so safe to cache
        self._render_lock = threading.Lock()
        self._rendered: dict[str, tuple[Run, str]] = {}  # run id -> (run, its wire JSON)

    def _log(self, prefix: str, fold: Callable[[Any, dict[str, Any]], None], tip: bool = False) -> FoldedLog:
        with self._lock:
            log = self._logs.get(prefix)
            if log is None:
                log = self._logs[prefix] = FoldedLog(self.store, prefix, fold, dict, tip=tip)
                if len(self._logs) > _LOG_CACHE_SIZE:
                    self._logs.popitem(last=False)
            else:
                self._logs.move_to_end(prefix)
            return log

    def run_log(self, run_id: str) -> FoldedLog:
        return self._log(f"{RUNS}{run_id}", fold_run)

    def experiment_log(self, experiment_id: str) -> FoldedLog:
        # A run's log is read mostly by its own writer, just after the append that changed it: a tip
        # would cost a PUT per write and save nothing. An experiment's log is read by every search.
        return self._log(f"{EXPERIMENT_RUNS}{experiment_id}", fold_experiment, tip=True)

    def rendered(self, run: Run) -> str:
        """``pages.dumps(run.to_wire())``, kept while the run stays equal to the one rendered: a
        search page serialises up to 1,000 runs, and repeated searches (the UI polls) mostly serve
        runs that did not change. Comparing costs a fraction of rendering, and is exact."""
        with self._render_lock:
            cached = self._rendered.get(run.info.run_id)
        if cached is not None and cached[0] == run:
            return cached[1]
        text = pages.dumps(run.to_wire())
        with self._render_lock:
            if len(self._rendered) >= _RENDERED_RUNS:
                self._rendered.clear()
            self._rendered[run.info.run_id] = (run, text)
        return text

    def pointer_key(self, run_id: str) -> str:
        return f"{RUNS}{run_id}.json"

    def remember(self, run_id: str, experiment_id: str) -> None:
        self._run_experiment[run_id] = experiment_id

    def experiment_of(self, run_id: str) -> str:
        v.run_id(run_id)
        eid = self._run_experiment.get(run_id)
        if eid is None:
            try:
                eid = self.store.get_json(self.pointer_key(run_id))["experiment_id"]
            except (NotFound, ValueError):  # ValueError: torn by a crash before its create was acknowledged
                raise run_not_found(run_id) from None
            self._run_experiment[run_id] = eid
        return eid

    def lifecycle(self, experiment_id: str) -> Future[tuple[str, str]]:
        """The experiment's lifecycle, fetched alongside the run log's refresh (one conditional GET)."""
        return background(lambda: self.experiments.lifecycle(experiment_id), self.store.side_by_side)

    def read(self, run_id: str, render: Callable[[dict[str, Any]], T]) -> T:
        """``render`` of the run's folded state (valid only during the call: copy what it keeps)."""
        self.experiment_of(run_id)
        with self.run_log(run_id).view() as runs:
            run = runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            return render(run)

    def write(self, run_id: str, entry: dict[str, Any], check: Callable[[dict[str, Any]], None] | None = None,
              require_active: bool = True) -> dict[str, Any]:
        """Validate against the run's current state, then append the entry to both logs (their PUTs and
        the experiment log's tip side by side).

        Returns the run's info as it will read after this entry."""
        eid = self.experiment_of(run_id)
        experiment = self.lifecycle(eid)
        log = self.run_log(run_id)
        with log.view() as runs:
            run = runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            exp_stage, exp_changed = experiment.result()
            stage = effective_stage(run["info"], (exp_stage, exp_changed))
            if require_active and stage != "active":
                raise not_active("run", run_id, stage)
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
        append_all([(log, key, entry), (self.experiment_log(eid), key, latest_only(entry))])
        return info

    def check(self) -> list[str]:
        """The logs (prefixes) whose snapshot differs from their entries: what ``repair`` refolds."""
        out = []
        for eid in sorted(e.experiment_id for e in self.experiments.list_all()):
            exp_log = self.experiment_log(eid)
            if exp_log.diverges():
                out.append(exp_log.prefix)
            with exp_log.view() as runs:
                run_logs = [self.run_log(rid) for rid in sorted(runs)]
            out += [log.prefix for log in run_logs if log.diverges()]
        return out

    def repair(self, run_id: str | None = None, experiment_id: str | None = None) -> dict[str, Any]:
        """Refold logs from all their entries (``stacflow repair-logs``): one run's (and its
        experiment's), one experiment's and its runs', or, with neither, every experiment's."""
        if run_id is not None:
            logs = [self.run_log(run_id), self.experiment_log(self.experiment_of(run_id))]
            return {"logs": len(logs), "repaired": [log.prefix for log in logs if log.refold()]}
        eids = [v.experiment_id(experiment_id)] if experiment_id is not None else sorted(
            e.experiment_id for e in self.experiments.list_all())
        count, repaired = 0, []
        for eid in eids:
            exp_log = self.experiment_log(eid)
            # The experiment's log first: the runs read from it then include any it recovers.
            if exp_log.refold():
                repaired.append(exp_log.prefix)
            with exp_log.view() as runs:
                run_logs = [self.run_log(rid) for rid in sorted(runs)]
            repaired += [log.prefix for log in run_logs if log.refold()]
            count += 1 + len(run_logs)
        return {"logs": count, "repaired": repaired}


def _check_record_size(run: dict[str, Any], entry: dict[str, Any]) -> None:
    """Refuse a write after which the run could not be returned: get-run (and a search page holding
    it) must fit in a Lambda response. Only writes that add to the record pay for the measure."""
    new_metrics = {m[0]: m[1:4] for m in entry.get("metrics", ()) if m[0] not in run["metrics"]}
    growth = {k: entry[k] for k in ("params", "tags", "datasets", "model_inputs", "model_outputs", "log_model")
              if entry.get(k)}
    if not (new_metrics or growth):
        return
    size = pages.envelope_size(Run.from_record(run).to_wire()) + pages.envelope_size([new_metrics, growth])
    if size > pages.RECORD_LIMIT:
        raise invalid(f"Run {run['info']['run_id']} would exceed {pages.RECORD_LIMIT} bytes (params, tags, "
                      "latest metrics and inputs together), more than a response can carry.")
