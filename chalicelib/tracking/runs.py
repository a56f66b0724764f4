"""Run records: how one log entry changes a run's folded state (``entities.Run`` is read from it).

A run's state is a JSON-able dict (it lives in snapshots):
``{"info": {...RunInfo fields}, "params": {k: v}, "tags": {k: v},
"metrics": {k: [value, timestamp, step]}  (the latest, as MLflow defines it),
"history": {k: [[value, timestamp, step, model_id, dataset_name, dataset_digest], ...]}  (per-run log only),
"datasets": [DatasetInput JSON], "model_inputs": [ids], "model_outputs": [[id, step]]}``.

Every operation is idempotent (a replayed entry changes nothing), so client retries are harmless.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any

RUN_NAME_TAG = "mlflow.runName"
LOGGED_MODELS_TAG = "mlflow.log-model.history"

_ADJECTIVES = ("able", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "grand", "happy",
               "keen", "lively", "merry", "nimble", "proud", "quick", "quiet", "sharp", "swift", "wise")
_NOUNS = ("ant", "bass", "bear", "crab", "deer", "dove", "eel", "finch", "fox", "goat", "hawk", "lark",
          "mole", "owl", "ram", "seal", "shrew", "snail", "toad", "wolf")


def random_name() -> str:
    """A name for a run or logged model created without one, as MLflow gives."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"


def new_run(create: dict[str, Any]) -> dict[str, Any]:
    return {"info": dict(create), "params": {}, "tags": {}, "metrics": {}, "history": {},
            "datasets": [], "model_inputs": [], "model_outputs": []}


def _newer(metric: list[Any], latest: list[Any] | None, at: int = 0, latest_at: int = 0) -> bool:
    """Whether ``metric`` (``[value, timestamp, step]`` from index ``at``) is at least as late as
    ``latest`` (the same from ``latest_at``): MLflow's latest value is the greatest (step, timestamp,
    value); NaN counts as the largest value. Compared field by field, as those tuples would be (a
    batch folds up to 1,000 metrics)."""
    if latest is None:
        return True
    step, latest_step = metric[at + 2], latest[latest_at + 2]
    if step != latest_step:
        return step > latest_step  # type: ignore[no-any-return]
    timestamp, latest_timestamp = metric[at + 1], latest[latest_at + 1]
    if timestamp != latest_timestamp:
        return timestamp > latest_timestamp  # type: ignore[no-any-return]
    return _sortable(metric[at]) >= _sortable(latest[latest_at])


def _sortable(value: float) -> float:
    return math.inf if math.isnan(value) else value


def apply_entry(runs: dict[str, Any], entry: dict[str, Any], history: bool) -> None:
    """Fold one log entry into ``runs`` (run id -> state)."""
    run_id = entry["run"]
    if isinstance(run_id, list):  # one experiment-log entry for many runs (experiment delete/restore)
        for one in run_id:
            apply_entry(runs, dict(entry, run=one), history)
        return
    run = runs.get(run_id)
    if "create" in entry and run is None:
        run = runs[run_id] = new_run(entry["create"])
    if run is None:
        return
    info, tags = run["info"], run["tags"]
    for key, value in entry.get("params", {}).items():
        run["params"].setdefault(key, value)  # params are immutable: the first write wins
    for key, value in entry.get("tags", {}).items():
        tags[key] = value
        if key == RUN_NAME_TAG:
            info["run_name"] = value
    for key in entry.get("del_tags", []):
        tags.pop(key, None)
    latest, kept = run["metrics"], run["history"]
    for m in entry.get("metrics", ()):
        key = m[0]
        if _newer(m, latest.get(key), at=1):
            latest[key] = m[1:4]
        if history:
            records = kept.get(key)
            if records is None:
                records = kept[key] = []
            records.append(m[1:])
    if "update" in entry:
        info.update(entry["update"])
        if entry["update"].get("run_name"):
            tags[RUN_NAME_TAG] = entry["update"]["run_name"]
    if "lifecycle" in entry:
        info["lifecycle_stage"] = entry["lifecycle"]
        info["deleted_time"] = entry.get("deleted_time")
        info["lifecycle_key"] = entry.get("key", "")
    for dataset_input in entry.get("datasets", []):
        if dataset_input not in run["datasets"]:
            run["datasets"].append(dataset_input)
    for model_id in entry.get("model_inputs", []):
        if model_id not in run["model_inputs"]:
            run["model_inputs"].append(model_id)
    for output in entry.get("model_outputs", []):
        if output not in run["model_outputs"]:
            run["model_outputs"].append(output)
    for model in entry.get("log_model", []):
        logged = json.loads(tags.get(LOGGED_MODELS_TAG, "[]"))
        if model not in logged:
            tags[LOGGED_MODELS_TAG] = json.dumps(logged + [model])


def effective_stage(info: dict[str, Any], experiment: tuple[str, str]) -> str:
    """A run's lifecycle stage given its experiment's ``(stage, key of its last delete/restore)``.

    Deleting an experiment deletes its runs, restoring it restores them all (as MLflow's SQL store
    does), with one write to the experiment's record: a run's own delete counts only if it is
    keyed after the experiment's last change.
    """
    stage, changed = experiment
    if stage == "deleted":
        return "deleted"
    own = str(info.get("lifecycle_stage", "active"))
    return "active" if own == "deleted" and info.get("lifecycle_key", "") < changed else own


def latest_only(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as the experiment log stores it: one metric per key, the latest (history is per run)."""
    if len(entry.get("metrics", ())) < 2:
        return entry
    latest: dict[str, list[Any]] = {}
    for m in entry["metrics"]:
        if _newer(m, latest.get(m[0]), at=1, latest_at=1):
            latest[m[0]] = m
    return dict(entry, metrics=list(latest.values()))


def fold_experiment(state: dict[str, Any], entry: dict[str, Any]) -> None:
    apply_entry(state, entry, history=False)


def fold_run(state: dict[str, Any], entry: dict[str, Any]) -> None:
    apply_entry(state, entry, history=True)


def history(run: dict[str, Any], key: str) -> list[list[Any]]:
    """A metric's distinct records, in (timestamp, step) order as MLflow's stores return them."""
    seen: dict[tuple[Any, ...], list[Any]] = {}
    for rec in run["history"].get(key, []):
        ident = (repr(rec[0]), rec[1], rec[2])
        seen.setdefault(ident, rec)
    return sorted(seen.values(), key=lambda r: (r[1], r[2]))
