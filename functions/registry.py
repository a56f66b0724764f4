"""Registry function: registry records or model files written -> the versions' STAC items regenerated.

Keys: version and model records and source markers under ``mlflow/registry/``; model files
(``MLmodel``, ``*.onnx``) landing anywhere outside the catalog's own prefixes (proxied
``mlflow-artifacts/...`` or a direct artifact root inside the store).
"""
from __future__ import annotations

import os

from chalicelib.store import ObjectStore

from . import StoreEvent

RECORD_KEY = r"^mlflow/registry/(?:(?:models|versions)/.+\.json|sources/.+)$"
MODEL_FILE_KEY = r"^(?!collections/|mlflow/|stac-index/|rejected/)(?:.+/)?(?:MLmodel|[^/]+\.onnx)$"


def on_registry_events(store: ObjectStore, events: list[StoreEvent]) -> None:
    from chalicelib import services
    from chalicelib.registry.lineage import ServiceTracking
    from chalicelib.registry.publication import Context, publish_keys
    from chalicelib.tracking.service import TrackingService
    ctx = Context(store=store, tracking=ServiceTracking(TrackingService(store)),
                  public_url=services.settings().public_url,
                  gitlab_url=os.environ.get("STACFLOW_GITLAB_URL") or None)
    publish_keys(ctx, [ev.key for ev in events])


ROUTES = [(RECORD_KEY, on_registry_events), (MODEL_FILE_KEY, on_registry_events)]
