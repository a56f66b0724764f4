"""What the tracking service returns: MLflow's entities (mlflow/entities/), and their two forms.

``to_record()``/``from_record()`` are the stored form (one object in the store, for experiments
and logged models; a run is the fold of its log, ``runs.py``); ``to_wire()`` is MLflow's REST
form (proto JSON), produced only at the HTTP edge and at the registry's port. Entities hold no
reference into a log's shared fold, so they stay valid after the log's view is released.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional


def json_float(value: float) -> float | str:
    """Proto JSON spells non-finite doubles as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _key_values(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


@dataclass
class Experiment:
    experiment_id: str
    name: str  # "" while a create has not finished claiming its name
    artifact_location: str
    lifecycle_stage: str = "active"
    creation_time: int = 0
    last_update_time: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    pending_name: Optional[str] = None  # a name being claimed (see experiments.py)
    pending_since: int = 0
    lifecycle_key: str = ""  # log-key time of the last delete/restore (runs.effective_stage)

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Experiment:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__, tags=dict(self.tags))

    def to_wire(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "name": self.name,
                "artifact_location": self.artifact_location, "lifecycle_stage": self.lifecycle_stage,
                "creation_time": self.creation_time, "last_update_time": self.last_update_time,
                "tags": _key_values(self.tags)}


@dataclass(frozen=True, slots=True)
class Metric:
    """One logged value. ``run_id`` is set where MLflow's message has it (bulk histories, logged
    models), ``model_id`` and the dataset on a logged model's metrics."""
    key: str
    value: float
    timestamp: int
    step: int
    run_id: Optional[str] = None
    model_id: Optional[str] = None
    dataset_name: Optional[str] = None
    dataset_digest: Optional[str] = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "value": json_float(self.value), "timestamp": self.timestamp,
                               "step": self.step}
        for name in ("run_id", "model_id", "dataset_name", "dataset_digest"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: Optional[str] = ""
    user_id: Optional[str] = ""
    status: Optional[str] = "RUNNING"
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    artifact_uri: Optional[str] = ""
    lifecycle_stage: Optional[str] = "active"

    @classmethod
    def from_record(cls, info: dict[str, Any], stage: str | None = None) -> RunInfo:
        """From a run's folded ``info``; ``stage``: its effective lifecycle stage (``runs.effective_stage``)."""
        return cls(run_id=info["run_id"], experiment_id=info["experiment_id"], run_name=info.get("run_name", ""),
                   user_id=info.get("user_id", ""), status=info.get("status", "RUNNING"),
                   start_time=info.get("start_time"), end_time=info.get("end_time"),
                   artifact_uri=info.get("artifact_uri", ""),
                   lifecycle_stage=stage or info.get("lifecycle_stage", "active"))

    def to_wire(self) -> dict[str, Any]:
        out = {"run_id": self.run_id, "run_uuid": self.run_id, "run_name": self.run_name,
               "experiment_id": self.experiment_id, "user_id": self.user_id, "status": self.status,
               "start_time": self.start_time, "end_time": self.end_time, "artifact_uri": self.artifact_uri,
               "lifecycle_stage": self.lifecycle_stage}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Run:
    info: RunInfo
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[Metric]  # the latest value per key
    datasets: list[dict[str, Any]]  # DatasetInput, kept in its proto-JSON form (validation.dataset_input)
    model_inputs: list[str]
    model_outputs: list[tuple[str, int]]  # (model id, step)

    @classmethod
    def from_record(cls, run: dict[str, Any], stage: str | None = None) -> Run:
        """A copy of a run's folded state (``runs.py``): the fold goes on changing the original."""
        return cls(info=RunInfo.from_record(run["info"], stage), params=dict(run["params"]), tags=dict(run["tags"]),
                   metrics=[Metric(k, v[0], v[1], v[2]) for k, v in run["metrics"].items()],
                   datasets=list(run["datasets"]), model_inputs=list(run["model_inputs"]),
                   model_outputs=[(m, s) for m, s in run["model_outputs"]])

    def to_wire(self) -> dict[str, Any]:
        return {
            "info": self.info.to_wire(),
            "data": {"metrics": [m.to_wire() for m in self.metrics], "params": _key_values(self.params),
                     "tags": _key_values(self.tags)},
            "inputs": {"dataset_inputs": self.datasets, "model_inputs": [{"model_id": m} for m in self.model_inputs]},
            "outputs": {"model_outputs": [{"model_id": m, "step": s} for m, s in self.model_outputs]},
        }


@dataclass
class LoggedModel:
    model_id: str
    experiment_id: str
    name: str
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    artifact_uri: str
    status: str
    model_type: Optional[str] = None
    source_run_id: Optional[str] = None
    status_message: Optional[str] = None
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)  # every value logged with this model, in order

    _INFO = ("model_id", "experiment_id", "name", "creation_timestamp_ms", "last_updated_timestamp_ms",
             "artifact_uri", "status", "model_type", "source_run_id", "status_message")

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> LoggedModel:
        metrics = [Metric(key, value, ts, step, run_id, doc["model_id"], ds_name, ds_digest)
                   for key, value, ts, step, run_id, ds_name, ds_digest in doc.get("metrics", [])]
        info: dict[str, Any] = {k: doc.get(k) for k in cls._INFO}
        return cls(**info, lifecycle_stage=doc["lifecycle_stage"], tags=doc["tags"], params=doc["params"],
                   metrics=metrics)

    def to_record(self) -> dict[str, Any]:
        doc: dict[str, Any] = {k: getattr(self, k) for k in self._INFO}
        doc.update(lifecycle_stage=self.lifecycle_stage, tags=self.tags, params=self.params)
        if self.metrics:
            doc["metrics"] = [[m.key, m.value, m.timestamp, m.step, m.run_id, m.dataset_name, m.dataset_digest]
                              for m in self.metrics]
        return doc

    def to_wire(self) -> dict[str, Any]:
        info: dict[str, Any] = {k: getattr(self, k) for k in self._INFO if getattr(self, k) is not None}
        info["tags"] = _key_values(self.tags)
        return {"info": info, "data": {"params": _key_values(self.params),
                                       "metrics": [m.to_wire() for m in self.metrics]}}
