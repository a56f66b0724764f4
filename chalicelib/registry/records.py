"""Registry records as stored (``mlflow/registry/...``) and their MLflow REST (proto-JSON) shapes.

Layout, one object per record so that every change is one conditional write and one event:

- ``mlflow/registry/models/<name>.json``: the registered model (description, tags)
- ``mlflow/registry/versions/<name>/<n>.json``: one version (``n`` zero-padded so that listing
  order is numeric order); a deleted version stays as a tombstone so its number is never handed
  out again (as in MLflow's file store)
- ``mlflow/registry/aliases/<name>/<alias>.json``: ``{"version": n}``
- ``mlflow/registry/sources/<artifact key prefix>/@versions/<name>@<n>``: which versions an
  artifact location backs, so that an artifact landing there finds them

``<name>`` is percent-encoded into one key segment.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ..store import NotFound, ObjectStore

PREFIX = "mlflow/registry/"
MODELS = PREFIX + "models/"
VERSIONS = PREFIX + "versions/"
ALIASES = PREFIX + "aliases/"
SOURCES = PREFIX + "sources/"
SOURCE_MARK = "@versions/"
VERSION_DIGITS = 10

STAGE_NONE = "None"
STAGES = ("None", "Staging", "Production", "Archived")
ACTIVE_STAGES = ("Staging", "Production")
READY = "READY"


def encode_name(name: str) -> str:
    """A model name as one key segment: percent-encoded, dots too (no ``.``/``..``/hidden segments)."""
    return quote(name, safe="-_").replace(".", "%2E")


def decode_name(segment: str) -> str:
    return unquote(segment)


def model_key(name: str) -> str:
    return f"{MODELS}{encode_name(name)}.json"


def versions_prefix(name: str) -> str:
    return f"{VERSIONS}{encode_name(name)}/"


def version_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:0{VERSION_DIGITS}d}.json"


def aliases_prefix(name: str) -> str:
    return f"{ALIASES}{encode_name(name)}/"


def alias_key(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{alias}.json"


def source_marker_prefix(artifact_prefix: str) -> str:
    return f"{SOURCES}{artifact_prefix.strip('/')}/{SOURCE_MARK}"


def source_marker_key(artifact_prefix: str, name: str, version: int) -> str:
    return f"{source_marker_prefix(artifact_prefix)}{encode_name(name)}@{version}"


def parse_source_marker(key: str) -> tuple[str, int] | None:
    tail = key.rsplit("/", 1)[-1]
    name, sep, num = tail.rpartition("@")
    return (decode_name(name), int(num)) if sep and num.isdigit() else None


def parse_registry_key(key: str) -> tuple[str, str, str] | None:
    """``(kind, model name, rest)`` for a model, version or alias key; kind is models, versions or aliases."""
    if not key.startswith(PREFIX) or not key.endswith(".json"):
        return None
    parts = key[len(PREFIX):-len(".json")].split("/")
    if len(parts) == 2 and parts[0] == "models":
        return "models", decode_name(parts[1]), ""
    if len(parts) == 3 and parts[0] in ("versions", "aliases"):
        return parts[0], decode_name(parts[1]), parts[2]
    return None


@dataclass
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str = ""
    user_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    deployment_job_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "RegisteredModel":
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass
class ModelVersion:
    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    source: str
    storage_location: str  # what downloads resolve to (a logged model's or run's artifact location)
    run_id: str = ""
    run_link: str = ""
    model_id: str = ""
    description: str = ""
    user_id: str = ""
    current_stage: str = STAGE_NONE
    status: str = READY
    status_message: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    aliases: list[str] = field(default_factory=list)  # derived from the alias records on read, not stored

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("aliases")
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ModelVersion":
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "aliases"})


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def version_message(mv: ModelVersion) -> dict[str, Any]:
    """``ModelVersion`` as MLflow's REST API returns it (proto-JSON, empty fields omitted)."""
    doc: dict[str, Any] = {
        "name": mv.name, "version": str(mv.version), "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp, "current_stage": mv.current_stage,
        "source": mv.source, "status": mv.status,
    }
    for key in ("user_id", "description", "run_id", "status_message", "run_link", "model_id"):
        if getattr(mv, key):
            doc[key] = getattr(mv, key)
    if mv.tags:
        doc["tags"] = _tag_list(mv.tags)
    if mv.aliases:
        doc["aliases"] = sorted(mv.aliases)
    return doc


def model_message(rm: RegisteredModel, latest: list[ModelVersion], aliases: dict[str, int]) -> dict[str, Any]:
    """``RegisteredModel`` as MLflow's REST API returns it."""
    doc: dict[str, Any] = {"name": rm.name, "creation_timestamp": rm.creation_timestamp,
                           "last_updated_timestamp": rm.last_updated_timestamp}
    for key in ("user_id", "description", "deployment_job_id"):
        if getattr(rm, key):
            doc[key] = getattr(rm, key)
    if latest:
        doc["latest_versions"] = [version_message(mv) for mv in latest]
    if rm.tags:
        doc["tags"] = _tag_list(rm.tags)
    if aliases:
        doc["aliases"] = [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())]
    return doc


# -- reads shared by the service and the publication function ---------------------------
def load_model(store: ObjectStore, name: str) -> RegisteredModel | None:
    try:
        return RegisteredModel.from_json(store.get_json(model_key(name)))
    except NotFound:
        return None


def load_version(store: ObjectStore, name: str, number: int) -> ModelVersion | None:
    try:
        return ModelVersion.from_json(store.get_json(version_key(name, number)))
    except NotFound:
        return None


def load_aliases(store: ObjectStore, name: str) -> dict[str, int]:
    """``{alias: version}`` of a model (one LIST and one GET per alias; models have few)."""
    prefix = aliases_prefix(name)
    out: dict[str, int] = {}
    for info in store.list(prefix):
        try:
            out[info.key[len(prefix):-len(".json")]] = int(store.get_json(info.key)["version"])
        except (NotFound, KeyError, TypeError, ValueError):
            continue  # deleted while listing
    return out
