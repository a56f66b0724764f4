"""Registry function: registry records or model files written -> the versions' STAC items regenerated.

Keys: version and model records and source markers under ``mlflow/registry/``; model files
(``MLmodel``, ``*.onnx``, weights such as ``*.pt2``) landing anywhere outside the service's own
prefixes (proxied ``mlflow-artifacts/...`` or a direct artifact root inside the store), so a
version registered before its files were uploaded is published, and completed, as they land.
"""
from __future__ import annotations

import os

from chalicelib.store import ObjectStore

from . import StoreEvent

RECORD_KEY = r"^mlflow/registry/(?:(?:models|versions)/.+\.json|sources/.+)$"
MODEL_FILE_KEY = (r"^(?!collections/|mlflow/|stac-index/|rejected/)(?:.+/)?"
                  r"(?:MLmodel|[^/]+\.(?:onnx|pt2|pt|pth|pkl|pickle|joblib|safetensors|keras|h5))$")


def on_registry_events(store: ObjectStore, events: list[StoreEvent]) -> None:
    from chalicelib import services
    from chalicelib.registry.lineage import ServiceTracking
    from chalicelib.registry.publication import Context, publish_keys
    from chalicelib.tracking.service import TrackingService
    ctx = Context(store=store, tracking=ServiceTracking(TrackingService(store)),
                  public_url=services.settings().public_url,
                  gitlab_url=os.environ.get("STACFLOW_GITLAB_URL") or None,
                  onnx_inspect_limit=services.settings().onnx_inspect_limit)
    publish_keys(ctx, [ev.key for ev in events])


ROUTES = [(RECORD_KEY, on_registry_events), (MODEL_FILE_KEY, on_registry_events)]
