"""Registry function: registry records or model files written -> the versions' STAC items regenerated.

Keys: version and model records (``models/<uid>.json``, ``versions/<uid>/<n>.json``) and source
markers under ``mlflow/registry/``; model files
(``MLmodel``, ``*.onnx``, weights such as ``*.pt2``) landing anywhere outside the service's own
prefixes (proxied ``mlflow-artifacts/...`` or a direct artifact root inside the store), so a
version registered before its files were uploaded is published, and completed, as they land.
"""
from __future__ import annotations

import os
from typing import Any

from chalicelib.store import ObjectStore

from . import StoreEvent

RECORD_KEY = r"^mlflow/registry/(?:(?:models|versions)/.+\.json|sources/.+)$"
MODEL_FILE_KEY = (r"^(?!collections/|mlflow/|stac-index/|rejected/)(?:.+/)?"
                  r"(?:MLmodel|[^/]+\.(?:onnx|pt2|pt|pth|pkl|pickle|joblib|safetensors|keras|h5))$")


def context_for(store: ObjectStore) -> Any:
    """The publication context (``registry.publication.Context``) of this process's settings."""
    from chalicelib import services
    from chalicelib.registry.lineage import ServiceTracking
    from chalicelib.registry.publication import Context
    from chalicelib.tracking.service import TrackingService
    return Context(store=store, tracking=ServiceTracking(TrackingService(store)),
                   public_url=services.settings().public_url,
                   gitlab_url=os.environ.get("STACFLOW_GITLAB_URL") or None,
                   onnx_inspect_limit=services.settings().onnx_inspect_limit)


def on_registry_events(store: ObjectStore, events: list[StoreEvent]) -> None:
    from chalicelib.registry.publication import publish_keys
    publish_keys(context_for(store), [ev.key for ev in events])


ROUTES = [(RECORD_KEY, on_registry_events), (MODEL_FILE_KEY, on_registry_events)]
