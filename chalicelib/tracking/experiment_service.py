"""MLflow's experiment calls (create, get, search, rename, delete, restore, tags) over ``ExperimentStore``."""
from __future__ import annotations

from typing import Callable, Mapping

from ..mlflowapi import pages, search
from ..mlflowapi import validation as v
from ..mlflowapi.errors import invalid, not_active, tag_not_found
from ..mlflowapi.fields import Fields, Objects, fields_of
from .entities import Experiment
from .experiments import ExperimentStore

VIEW_TYPES = {"ACTIVE_ONLY": ("active",), "DELETED_ONLY": ("deleted",), "ALL": ("active", "deleted")}


def stages_of(view_type: str | None, field: str) -> tuple[str, ...]:
    """The lifecycle stages a search's ``view_type`` shows."""
    stages = VIEW_TYPES.get(str(view_type or "ACTIVE_ONLY"))
    if stages is None:
        raise invalid(f"Invalid {field} '{view_type}'")
    return stages


class ExperimentService:
    def __init__(self, records: ExperimentStore) -> None:
        self.records = records

    def active(self, experiment_id: str) -> Experiment:
        """The experiment, which a write must find active."""
        exp = self.records.get(experiment_id)
        if exp.lifecycle_stage != "active":
            raise not_active("experiment", experiment_id, exp.lifecycle_stage)
        return exp

    def create_experiment(self, name: str, artifact_location: str | None, tags: Objects) -> str:
        v.experiment_name(name)
        if artifact_location is not None and not isinstance(artifact_location, str):
            raise invalid("artifact_location must be a string")
        clean = dict(v.tag(t, v.MAX_EXPERIMENT_TAG_VAL_LENGTH) for t in fields_of(tags, "tags"))
        return self.records.create(name, artifact_location or None, clean).experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.records.get(v.experiment_id(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment:
        return self.records.get_by_name(v.experiment_name(name))

    def search_experiments(self, view_type: str | None, max_results: int | None, filter_string: str | None,
                           order_by: list[str], page_token: str | None,
                           visible: Callable[[Mapping[str, str]], bool] | None = None) -> pages.Page[Experiment]:
        """``visible``: a predicate on an experiment's tags (the caller's read access), applied before
        filtering and paging, so pages and tokens hold only experiments the caller may read."""
        stages = stages_of(view_type, "view_type")
        limit = v.max_results(max_results, 1000)
        exps = [search.Subject(e, vars(e), tags=e.tags) for e in self.records.list_all()
                if e.lifecycle_stage in stages and (visible is None or visible(e.tags))]
        exps = search.EXPERIMENTS.sort(search.EXPERIMENTS.filter(exps, filter_string), order_by or ["creation_time DESC"])
        return pages.page(exps, page_token, limit, wire=Experiment.to_wire,
                          load=lambda window: [s.record for s in window])

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.records.rename(v.experiment_id(experiment_id), v.experiment_name(new_name))

    def delete_experiment(self, experiment_id: str) -> None:
        """One write, whatever the number of runs: their lifecycles derive from the experiment's."""
        self.records.set_lifecycle(v.experiment_id(experiment_id), "deleted")

    def restore_experiment(self, experiment_id: str) -> None:
        self.records.set_lifecycle(v.experiment_id(experiment_id), "active")

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        k, val = v.tag(Fields({"key": key, "value": value}), v.MAX_EXPERIMENT_TAG_VAL_LENGTH)
        eid = v.experiment_id(experiment_id)
        self.active(eid)

        def set_tag(e: Experiment) -> None:
            e.tags[k] = val
        self.records.update(eid, set_tag)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        eid = v.experiment_id(experiment_id)
        if key not in self.records.get(eid).tags:
            raise tag_not_found(key, "experiment", eid)

        def drop(e: Experiment) -> None:
            e.tags.pop(key, None)
        self.records.update(eid, drop)
