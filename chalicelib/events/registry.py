"""Registry function: registry records or model files written -> the versions' STAC items regenerated.

Keys: version and model records (``models/<uid>.json``, ``versions/<uid>/<n>.json``) and source
markers under ``mlflow/registry/``; model files
(``MLmodel``, ``*.onnx``, weights such as ``*.pt2``) landing anywhere outside the service's own
prefixes (proxied ``mlflow-artifacts/...`` or a direct artifact root inside the store), so a
version registered before its files were uploaded is published, and completed, as they land.
"""
from __future__ import annotations

from .. import observability
from .base import EventServices, Route, StoreEvent

RECORD_KEY = r"^mlflow/registry/(?:(?:models|versions)/.+\.json|sources/.+)$"
MODEL_FILE_KEY = (r"^(?!collections/|mlflow/|stac-index/|rejected/)(?:.+/)?"
                  r"(?:MLmodel|[^/]+\.(?:onnx|pt2|pt|pth|pkl|pickle|joblib|safetensors|keras|h5))$")


def on_registry_events(services: EventServices, events: list[StoreEvent]) -> None:
    from ..registry.publication import publish_keys
    outcomes = publish_keys(services.publication_context(), [ev.key for ev in events])
    if outcomes:  # a stand-in publisher (tests) may report nothing
        observability.count("ModelPublications", len(outcomes))


ROUTES: list[Route] = [(RECORD_KEY, on_registry_events), (MODEL_FILE_KEY, on_registry_events)]
