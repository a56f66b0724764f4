"""STAC API errors: domain exceptions that the HTTP layer turns into OGC/STAC error JSON."""
from __future__ import annotations


class StacApiError(Exception):
    """Rendered as ``{"code": code, "description": description}`` with ``status``."""

    status = 400
    code = "BadRequest"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description}


class InvalidParameter(StacApiError):
    status = 400
    code = "InvalidParameterValue"


class NotFoundError(StacApiError):
    status = 404
    code = "NotFound"


class ConflictError(StacApiError):
    status = 409
    code = "Conflict"


class PreconditionFailedError(StacApiError):
    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(StacApiError):
    status = 413
    code = "PayloadTooLarge"
