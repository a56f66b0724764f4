"""Model version sources: which URIs a version may come from, and where in the store their files live."""
from __future__ import annotations

import posixpath
from urllib.parse import unquote, unquote_plus, urlsplit

from ..mlflowapi.errors import invalid_source, missing
from ..mlflowapi.validation import fully_decoded
from ..store import ObjectStore, PreconditionFailed
from . import records as rec
from .records import ModelVersion

ARTIFACTS_PREFIX = "mlflow-artifacts/"
# The service's own records: never read as a model's files, whatever a source URI says.
RESERVED_PREFIXES = ("mlflow/", "collections/", "stac-index/", "rejected/", "catalog.json")
_PROXY_ROUTE = "/api/2.0/mlflow-artifacts/artifacts/"
SCHEMES = ("runs", "models", "mlflow-artifacts", "s3", "http", "https")


def check_source(source: str | None) -> str:
    """``source`` if it is acceptable; raises INVALID_PARAMETER_VALUE otherwise.

    Like MLflow's server: no relative segments (even percent-encoded), no local paths.
    """
    if not isinstance(source, str) or not source.strip():
        raise missing("source")
    scheme = urlsplit(source).scheme.lower()
    if scheme not in SCHEMES:
        raise invalid_source(source, "Supported sources are runs:/, models:/, mlflow-artifacts:/ and s3:// URIs.")
    decoded = fully_decoded(source, unquote_plus)
    path = urlsplit(decoded).path
    if "\x00" in decoded or any(seg in (".", "..") for seg in path.split("/")):
        raise invalid_source(source, "An absolute path without relative path references must be provided.")
    if scheme in ("http", "https") and _PROXY_ROUTE not in path:
        raise invalid_source(source, "HTTP sources must be artifact proxy URLs.")
    return source


def parse_runs_uri(source: str) -> tuple[str, str]:
    """``runs:/<run id>/<path>`` -> (run id, path)."""
    parts = urlsplit(source)
    if parts.netloc:
        raise invalid_source(source, "runs:/ URIs take no authority.")
    run_id, _, path = parts.path.lstrip("/").partition("/")
    if not run_id:
        raise invalid_source(source, "Expected runs:/<run_id>/<path>.")
    return run_id, path.strip("/")


def join_uri(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path if path else base


def artifact_prefix(store: ObjectStore, uri: str) -> str | None:
    """The store key prefix holding the files under ``uri`` (no trailing slash), or None when outside it."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "mlflow-artifacts":
        rel = unquote(parts.path).strip("/")
    elif scheme in ("http", "https") and _PROXY_ROUTE in parts.path:
        rel = unquote(parts.path.split(_PROXY_ROUTE, 1)[1]).strip("/")
    else:
        root = store.uri.rstrip("/") + "/"
        if not uri.startswith(root):
            return None
        key = posixpath.normpath(unquote(uri[len(root):]).strip("/") or ".")
        return None if key == "." or (key + "/").startswith(RESERVED_PREFIXES) else key
    return ARTIFACTS_PREFIX + posixpath.normpath(rel) if rel else None


def within(uri: str, root: str) -> bool:
    """Whether ``uri`` is ``root`` or below it (same scheme and authority, path-prefix by segments)."""
    a, b = urlsplit(uri), urlsplit(root)
    if a.scheme.lower() != b.scheme.lower() or a.netloc.lower() != b.netloc.lower():
        return False
    pa = [p for p in unquote(a.path).split("/") if p]
    pb = [p for p in unquote(b.path).split("/") if p]
    return pa[: len(pb)] == pb


def mark_source(store: ObjectStore, uid: str, mv: ModelVersion, *, only_if_missing: bool = False) -> bool:
    """Index the version by where its files live, so that files landing later republish it; whether
    a marker was written."""
    prefix = artifact_prefix(store, mv.storage_location)
    if not prefix:
        return False
    try:
        store.put(rec.source_marker_key(prefix, uid, mv.version), b"", if_none_match=only_if_missing)
    except PreconditionFailed:
        return False
    return True


def unmark_source(store: ObjectStore, uid: str, mv: ModelVersion) -> None:
    prefix = artifact_prefix(store, mv.storage_location)
    if prefix:
        store.delete(rec.source_marker_key(prefix, uid, mv.version))
