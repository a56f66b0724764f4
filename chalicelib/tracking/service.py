"""The tracking service: MLflow's tracking-store methods over the object store, no database.

A thin facade with MLflow's method names (``AbstractStore``), so each REST route makes one call;
the work is done by ``experiment_service``, ``run_service`` and ``logged_model_service``, over
``run_logs`` (the logs every run change is one entry of) and ``experiments`` (experiment records).

Methods return MLflow's entities (``entities``: ``Experiment``, ``Run``, ``RunInfo``, ``Metric``,
``LoggedModel``, and ``pages.Page`` of them); their REST form is ``to_wire()``, at the HTTP edge.
Failures are ``MlflowError``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..mlflowapi.fields import Fields, Objects
from ..mlflowapi.pages import Page
from ..store import ObjectStore
from .entities import Experiment, LoggedModel, Metric, Run, RunInfo
from .experiment_service import ExperimentService
from .experiments import ExperimentStore
from .logged_model_service import LoggedModelService
from .run_logs import RunLogs
from .run_service import RunService


class TrackingService:
    def __init__(self, store: ObjectStore, *, artifact_root: str | None = None) -> None:
        self.store = store
        records = ExperimentStore(store, artifact_root=artifact_root)
        self.logs = RunLogs(store, records)
        self.experiments = ExperimentService(records)
        self.logged_models = LoggedModelService(store, self.experiments, self.logs)
        self.runs = RunService(self.logs, self.experiments, self.logged_models)

    # -- experiments ----------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None, tags: Objects) -> str:
        return self.experiments.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.experiments.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment:
        return self.experiments.get_experiment_by_name(name)

    def search_experiments(self, view_type: str | None, max_results: int | None, filter_string: str | None,
                           order_by: list[str], page_token: str | None,
                           visible: Callable[[Mapping[str, str]], bool] | None = None) -> Page[Experiment]:
        return self.experiments.search_experiments(view_type, max_results, filter_string, order_by, page_token,
                                                   visible)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.experiments.rename_experiment(experiment_id, new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self.experiments.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self.experiments.restore_experiment(experiment_id)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.experiments.set_experiment_tag(experiment_id, key, value)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self.experiments.delete_experiment_tag(experiment_id, key)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, request: Fields | dict[str, Any]) -> Run:
        return self.runs.create_run(request)

    def get_run(self, run_id: str) -> Run:
        return self.runs.get_run(run_id)

    def update_run_info(self, run_id: str, status: str | None, end_time: int | None, run_name: str | None) -> RunInfo:
        return self.runs.update_run_info(run_id, status, end_time, run_name)

    def delete_run(self, run_id: str) -> None:
        self.runs.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.runs.restore_run(run_id)

    def log_batch(self, run_id: str, metrics: Objects, params: Objects, tags: Objects) -> None:
        self.runs.log_batch(run_id, metrics, params, tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.runs.delete_tag(run_id, key)

    def log_inputs(self, run_id: str, datasets: Objects, models: Objects) -> None:
        self.runs.log_inputs(run_id, datasets, models)

    def log_outputs(self, run_id: str, models: Objects) -> None:
        self.runs.log_outputs(run_id, models)

    def record_logged_model(self, run_id: str, model_json: str) -> None:
        self.runs.record_logged_model(run_id, model_json)

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None,
                           page_token: str | None) -> Page[Metric]:
        return self.runs.get_metric_history(run_id, metric_key, max_results, page_token)

    def get_metric_history_bulk_interval(self, run_ids: list[str], metric_key: str, start_step: int | None,
                                         end_step: int | None, max_results: int | None) -> list[Metric]:
        return self.runs.get_metric_history_bulk_interval(run_ids, metric_key, start_step, end_step, max_results)

    def search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: str | None,
                    max_results: int | None, order_by: list[str], page_token: str | None) -> Page[Run]:
        return self.runs.search_runs(experiment_ids, filter_string, run_view_type, max_results, order_by, page_token)

    def run_wire_text(self, run: Run) -> str:
        """A search's run in MLflow's wire form, serialised (cached while the run is unchanged)."""
        return self.runs.logs.rendered(run)

    def search_datasets(self, experiment_ids: list[str]) -> list[dict[str, Any]]:
        return self.runs.search_datasets(experiment_ids)

    def repair_logs(self, run_id: str | None = None, experiment_id: str | None = None) -> dict[str, Any]:
        return self.logs.repair(run_id, experiment_id)

    def check_logs(self) -> list[str]:
        """Logs whose snapshot differs from their entries (read-only; ``repair_logs`` fixes them)."""
        return self.logs.check()

    # -- logged models ----------------------------------------------------------------------
    def create_logged_model(self, request: Fields | dict[str, Any]) -> LoggedModel:
        return self.logged_models.create_logged_model(request)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self.logged_models.get_logged_model(model_id, allow_deleted)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        return self.logged_models.finalize_logged_model(model_id, status)

    def delete_logged_model(self, model_id: str) -> None:
        self.logged_models.delete_logged_model(model_id)

    def set_logged_model_tags(self, model_id: str, tags: Objects) -> None:
        self.logged_models.set_logged_model_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self.logged_models.delete_logged_model_tag(model_id, key)

    def log_logged_model_params(self, model_id: str, params: Objects) -> None:
        self.logged_models.log_logged_model_params(model_id, params)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None,
                             datasets: list[dict[str, Any]], max_results: int | None,
                             order_by: list[dict[str, Any]], page_token: str | None) -> Page[LoggedModel]:
        return self.logged_models.search_logged_models(experiment_ids, filter_string, datasets, max_results,
                                                       order_by, page_token)

