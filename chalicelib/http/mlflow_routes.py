"""mlflow API blueprint (being built)."""
from __future__ import annotations

from chalice import Blueprint

mlflow_api = Blueprint(__name__)
