"""MLflow 3's logged-model calls: one record each, ``mlflow/logged-models/<id>.json`` (compare-and-swap)."""
from __future__ import annotations

import uuid
from typing import Any, Callable

from ..mlflowapi import pages, search
from ..mlflowapi import validation as v
from ..mlflowapi.clock import now_ms
from ..mlflowapi.errors import invalid_status, logged_model_not_found, not_found
from ..mlflowapi.fields import Fields, Objects, fields_of
from ..store import NotFound, ObjectStore
from .doccache import DocCache
from .entities import LoggedModel, Metric
from .experiment_service import ExperimentService
from .run_logs import RunLogs
from .runs import random_name

LOGGED_MODELS = "mlflow/logged-models/"
MODEL_STATUSES = set(v.MODEL_STATUS) - {"LOGGED_MODEL_STATUS_UNSPECIFIED"}


def _subject(model: LoggedModel) -> search.Subject:
    # The stored record's fields, plus the timestamps under the names MLflow's filters use (stored as *_ms).
    attributes = {**model.to_record(), "creation_timestamp": model.creation_timestamp_ms,
                  "last_updated_timestamp": model.last_updated_timestamp_ms}
    return search.Subject(model, attributes, tags=model.tags, params=model.params, model_metrics=[
        search.ModelMetric(m.key, m.value, m.timestamp, m.dataset_name, m.dataset_digest) for m in model.metrics])


class LoggedModelService:
    def __init__(self, store: ObjectStore, experiments: ExperimentService, logs: RunLogs) -> None:
        self.store = store
        self.experiments = experiments
        self.logs = logs
        self._listing: DocCache[LoggedModel] = DocCache(store, LoggedModel.from_record)

    def _key(self, model_id: str) -> str:
        return f"{LOGGED_MODELS}{v.model_id(model_id)}.json"

    def load(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        try:
            model = LoggedModel.from_record(self.store.get_json(self._key(model_id)))
        except NotFound:
            raise logged_model_not_found(model_id) from None
        if model.lifecycle_stage == "deleted" and not allow_deleted:
            raise logged_model_not_found(model_id)
        return model

    def _update(self, model_id: str, change: Callable[[LoggedModel], None]) -> LoggedModel:
        self.load(model_id)

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            model = LoggedModel.from_record(doc)
            change(model)
            model.last_updated_timestamp_ms = now_ms()
            return model.to_record()
        return LoggedModel.from_record(self.store.update_json(self._key(model_id), mutate))

    def add_metrics(self, run_id: str, metrics: list[list[Any]]) -> None:
        """Metrics logged with a model_id also belong to that logged model (MLflow 3), one CAS per model."""
        by_model: dict[str, list[Metric]] = {}
        for key, value, ts, step, model_id, dataset_name, dataset_digest in metrics:
            if model_id:
                by_model.setdefault(model_id, []).append(
                    Metric(key, value, ts, step, run_id, model_id, dataset_name, dataset_digest))
        for model_id, logged in by_model.items():
            def add(model: LoggedModel, logged: list[Metric] = logged) -> None:
                model.metrics.extend(m for m in logged if m not in model.metrics)
            self._update(model_id, add)

    def create_logged_model(self, request: Fields | dict[str, Any]) -> LoggedModel:
        msg = Fields(request)
        eid = v.experiment_id(msg.string("experiment_id"))
        exp = self.experiments.active(eid)
        source_run_id = msg.string("source_run_id")
        if source_run_id:
            self.logs.experiment_of(source_run_id)
        model_id = f"m-{uuid.uuid4().hex}"
        t = now_ms()
        model = LoggedModel(model_id=model_id, experiment_id=eid, name=msg.string("name") or random_name(),
                            creation_timestamp_ms=t, last_updated_timestamp_ms=t,
                            artifact_uri=f"{exp.artifact_location}/models/{model_id}/artifacts",
                            status="LOGGED_MODEL_PENDING", model_type=msg.string("model_type"),
                            source_run_id=source_run_id or None,
                            tags=dict(v.tag(t_) for t_ in msg.objects("tags")),
                            params=dict(v.param(p) for p in msg.objects("params")))
        self.store.put_json(self._key(model_id), model.to_record(), if_none_match=True)
        return model

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self.load(model_id, allow_deleted)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        if str(status) not in MODEL_STATUSES:
            raise invalid_status(status)

        def set_status(model: LoggedModel) -> None:
            model.status = str(status)
        return self._update(model_id, set_status)

    def delete_logged_model(self, model_id: str) -> None:
        def delete(model: LoggedModel) -> None:
            model.lifecycle_stage = "deleted"
        self._update(model_id, delete)

    def set_logged_model_tags(self, model_id: str, tags: Objects) -> None:
        clean = dict(v.tag(t) for t in fields_of(tags, "tags"))

        def set_tags(model: LoggedModel) -> None:
            model.tags.update(clean)
        self._update(model_id, set_tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        if key not in self.load(model_id).tags:
            raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")

        def drop(model: LoggedModel) -> None:
            model.tags.pop(key, None)
        self._update(model_id, drop)

    def log_logged_model_params(self, model_id: str, params: Objects) -> None:
        clean = dict(v.param(p) for p in fields_of(params, "params"))

        def add(model: LoggedModel) -> None:
            for key, value in clean.items():
                model.params.setdefault(key, value)
        self._update(model_id, add)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None,
                             datasets: list[dict[str, Any]], max_results: int | None,
                             order_by: list[dict[str, Any]], page_token: str | None) -> pages.Page[LoggedModel]:
        limit = v.max_results(max_results, 100)
        wanted = {v.experiment_id(e) for e in experiment_ids}
        models = [m for m in self._listing.listing(LOGGED_MODELS)
                  if m.experiment_id in wanted and m.lifecycle_stage == "active"]
        found = search.LOGGED_MODELS.filter_models([_subject(m) for m in models], filter_string, datasets)
        return pages.page(search.LOGGED_MODELS.sort(found, order_by), page_token, limit, wire=LoggedModel.to_wire,
                          load=lambda window: [s.record for s in window])
