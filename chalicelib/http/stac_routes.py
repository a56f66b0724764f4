"""stac API blueprint (being built)."""
from __future__ import annotations

from chalice import Blueprint

stac_api = Blueprint(__name__)
