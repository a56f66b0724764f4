"""What the registry needs from the tracking side: runs, logged models and experiments.

The registry validates sources against them and the STAC items carry their params, metrics,
tags and inputs. Results are MLflow REST (proto-JSON) dicts: the one shape the tracking API
already commits to, so this port does not depend on the tracking store's record classes.
"""
from __future__ import annotations

from typing import Any, Protocol


class Tracking(Protocol):
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """``Run`` (``{"info", "data", "inputs", "outputs"}``), or None if unknown."""

    def get_logged_model(self, model_id: str) -> dict[str, Any] | None:
        """``LoggedModel`` (``{"info", "data"}``), or None if unknown."""

    def get_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        """``Experiment``, or None if unknown."""


def tags_of(entity: dict[str, Any] | None, section: str = "data") -> dict[str, str]:
    """``{"key": value}`` of a REST entity's tags (runs keep them in ``data``, others at the top or in ``info``)."""
    if not entity:
        return {}
    for holder in (entity.get(section) or {}, entity.get("info") or {}, entity):
        tags = holder.get("tags")
        if isinstance(tags, list):
            return {t["key"]: t.get("value", "") for t in tags if isinstance(t, dict) and "key" in t}
        if isinstance(tags, dict):
            return {str(k): str(v) for k, v in tags.items()}
    return {}


def key_values(items: Any) -> dict[str, Any]:
    """``[{"key", "value"}...]`` -> dict (metrics: the last value listed wins)."""
    if isinstance(items, dict):
        return dict(items)
    return {i["key"]: i.get("value") for i in items or [] if isinstance(i, dict) and "key" in i}


class ServiceTracking:
    """``Tracking`` over the tracking service (``chalicelib.tracking.service``); unknown ids -> None."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def _get(self, call: Any, *args: Any) -> dict[str, Any] | None:
        from ..tracking.errors import MlflowError
        try:
            return call(*args)  # type: ignore[no-any-return]
        except MlflowError:
            return None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._get(self.service.get_run, run_id)

    def get_logged_model(self, model_id: str) -> dict[str, Any] | None:
        found = self._get(self.service.get_logged_model, model_id)
        return found.get("model", found) if found else None

    def get_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        return self._get(self.service.get_experiment, experiment_id)
