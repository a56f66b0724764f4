"""MLflow model-registry API blueprint (being built)."""
from __future__ import annotations

from chalice import Blueprint

registry_api = Blueprint(__name__)
