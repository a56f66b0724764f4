"""MLflow's ``artifacts/list`` for a run, shared by the REST route and the GraphQL resolver."""
from __future__ import annotations

from typing import Any

from .. import services
from ..mlflowapi import validation as v
from . import mlflow_access as acl


def list_run_artifacts(run_id: Any, path: Any) -> dict[str, Any]:
    """Entries of directory ``path`` under the run's artifact root, named by their path from that root."""
    rid = v.run_id(run_id)
    acl.run(rid, acl.READ)
    root = services.tracking().get_run(rid).info.artifact_uri or ""
    files = services.artifacts().list_under(root, path if isinstance(path, str) else "")
    return {"root_uri": root, **({"files": [f.to_wire() for f in files]} if files else {})}
