"""MLflow's error codes, the HTTP status each maps to (mlflow/protos/databricks.proto, handlers), and
the messages its stores give, each written once.

A message that more than one place raises is a function here (``not_active("run", run_id, stage)``),
so the tracking store, the registry and the artifact API word the same failure the same way.
"""
from __future__ import annotations

STATUS = {
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
    "BAD_REQUEST": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_CONFLICT": 409,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "NOT_IMPLEMENTED": 501,
}


class MlflowError(Exception):
    """A failure the client should see as ``{"error_code": ..., "message": ...}``."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    @property
    def status(self) -> int:
        return STATUS.get(self.error_code, 500)

    def to_wire(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> MlflowError:
    return MlflowError(message, "INVALID_PARAMETER_VALUE")


def not_found(message: str) -> MlflowError:
    return MlflowError(message, "RESOURCE_DOES_NOT_EXIST")


def already_exists(message: str) -> MlflowError:
    return MlflowError(message, "RESOURCE_ALREADY_EXISTS")


def unavailable(message: str) -> MlflowError:
    """Lost a race the client wins by retrying (MLflow's clients retry 503 on every method)."""
    return MlflowError(message, "TEMPORARILY_UNAVAILABLE")


# -- request fields -----------------------------------------------------------------------------
def missing(field: str) -> MlflowError:
    return invalid(f"Missing value for required parameter '{field}'. See the API docs for more information "
                   "about request parameters.")


def invalid_status(status: object) -> MlflowError:
    return invalid(f"Invalid value '{status}' for parameter 'status'")


# -- tracking -----------------------------------------------------------------------------------
def not_active(kind: str, identifier: str, stage: str) -> MlflowError:
    """A write to a deleted experiment or run (``kind``: "experiment" or "run")."""
    return invalid(f"The {kind} {identifier} must be in the 'active' state. Current state is {stage}.")


def experiment_not_found(experiment_id: str) -> MlflowError:
    return not_found(f"No Experiment with id={experiment_id} exists")


def experiment_name_not_found(name: str) -> MlflowError:
    return not_found(f"Could not find experiment with name '{name}'")


def experiment_exists(name: str, deleted: bool = False) -> MlflowError:
    return already_exists(f"Experiment '{name}' already exists{' in deleted state' if deleted else ''}.")


def run_not_found(run_id: str) -> MlflowError:
    return not_found(f"Run with id={run_id} not found")


def tag_not_found(key: str, kind: str, identifier: str) -> MlflowError:
    return not_found(f"No tag with name: {key} in {kind} with id {identifier}")


def logged_model_not_found(model_id: object) -> MlflowError:
    return not_found(f"Logged model with ID '{model_id}' not found.")


# -- model registry -----------------------------------------------------------------------------
def model_not_found(name: str) -> MlflowError:
    return not_found(f"Registered Model with name={name} not found")


def model_exists(name: str) -> MlflowError:
    return already_exists(f"Registered Model (name={name}) already exists.")


def version_not_found(name: str, version: int) -> MlflowError:
    return not_found(f"Model Version (name={name}, version={version}) not found")


def alias_not_found(alias: str) -> MlflowError:
    return invalid(f"Registered model alias {alias} not found.")


def invalid_source(source: str, reason: str) -> MlflowError:
    """A model version source MLflow's server refuses, and why."""
    return invalid(f"Invalid model version source: '{source}'. {reason}")
