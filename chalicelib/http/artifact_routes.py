"""MLflow artifacts proxy blueprint (being built)."""
from __future__ import annotations

from chalice import Blueprint

artifact_api = Blueprint(__name__)
