"""What the registry needs from the tracking side: runs, logged models and experiments.

The registry validates sources against them and the STAC items carry their params, metrics,
tags and inputs. Results are the tracking service's entities (``tracking.entities``), or None
for an unknown id.
"""
from __future__ import annotations

from typing import Callable, Protocol, TypeVar

from ..mlflowapi.errors import MlflowError
from ..tracking.entities import Experiment, LoggedModel, Run
from ..tracking.service import TrackingService

T = TypeVar("T")


class Tracking(Protocol):
    def get_run(self, run_id: str) -> Run | None: ...

    def get_logged_model(self, model_id: str) -> LoggedModel | None: ...

    def get_experiment(self, experiment_id: str) -> Experiment | None: ...

    def set_run_tag(self, run_id: str, key: str, value: str) -> bool: ...


class ServiceTracking:
    """``Tracking`` over the tracking service (``chalicelib.tracking.service``); unknown ids -> None."""

    def __init__(self, service: TrackingService) -> None:
        self.service = service

    @staticmethod
    def _get(call: Callable[[str], T], key: str) -> T | None:
        try:
            return call(key)
        except MlflowError:
            return None

    def get_run(self, run_id: str) -> Run | None:
        return self._get(self.service.get_run, run_id)

    def get_logged_model(self, model_id: str) -> LoggedModel | None:
        return self._get(self.service.get_logged_model, model_id)

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        return self._get(self.service.get_experiment, experiment_id)

    def set_run_tag(self, run_id: str, key: str, value: str) -> bool:
        """Whether the tag is set (False: the run is gone or deleted; tags are last-write-wins)."""
        try:
            self.service.log_batch(run_id, [], [], [{"key": key, "value": value}])
        except MlflowError:
            return False
        return True
