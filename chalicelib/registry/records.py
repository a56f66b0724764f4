"""Registry records: their keys in the store (``mlflow/registry/...``), and the registry's entities
(``RegisteredModel``, ``ModelVersion``) with their stored form (``to_record``/``from_record``) and
MLflow's REST form (``to_wire``, proto JSON, used at the HTTP edge).

A registered model has an immutable id (``uid``, 32 hex digits) given at creation; everything of
the model is keyed by it, and its name is a separate, create-only claim. So a rename changes two
small records and never moves versions, and every key has a bounded length whatever the name.

- ``names/<name segment>.json``: ``{"uid", "name"}``, who holds a name (create-only). A claim is
  live while the model it points at is active and carries that name (or is being renamed to it);
  a claim that is not live (left by a crash, a finished rename or a delete) may be taken over.
- ``models/<uid>.json``: the model record (compare-and-swap). A deleted model stays as a tombstone
  (``state: DELETED``) so that late version creations fail cleanly and the publication function
  still knows which items to remove.
- ``versions/<uid>/<n>.json``: one version (``n`` zero-padded so that listing order is numeric
  order); a deleted version stays as a tombstone so that its number is never handed out again.
- ``aliases/<uid>.json``: ``{alias: version}`` (compare-and-swap).
- ``index/<shard>.json``: search summaries (``registry.index``).
- ``sources/<artifact key prefix>/@versions/<uid>@<n>``: which versions an artifact location
  backs, so that an artifact landing there finds them.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from ..mlflowapi.validation import MAX_MODEL_VERSION, MODEL_STAGES
from ..store import NotFound, ObjectStore

PREFIX = "mlflow/registry/"
NAMES = PREFIX + "names/"
MODELS = PREFIX + "models/"
VERSIONS = PREFIX + "versions/"
ALIASES = PREFIX + "aliases/"
HINTS = PREFIX + "next-version/"  # not authoritative: where to start probing for a free number
SOURCES = PREFIX + "sources/"
SOURCE_MARK = "@versions/"
VERSION_DIGITS = len(str(MAX_MODEL_VERSION))  # zero-padded: listing order is numeric order

STAGE_NONE = MODEL_STAGES[0]
READY = "READY"
ACTIVE = "ACTIVE"
DELETED = "DELETED"

_UID = re.compile(r"^[0-9a-f]{32}$")
_MAX_SEGMENT = 120  # a name's key segment; longer ones become a prefix plus a hash (S3: 1,024-byte keys)


def new_uid() -> str:
    return uuid.uuid4().hex


def is_uid(text: Any) -> bool:
    return isinstance(text, str) and _UID.match(text) is not None


def name_segment(name: str) -> str:
    """A model name as one bounded key segment: percent-encoded (dots too), or a prefix and a hash.

    Hashed segments (``<80 chars>~<sha256>``, 145 characters) are longer than any plain one, so
    the two forms never collide.
    """
    segment = quote(name, safe="-_").replace(".", "%2E")
    if len(segment) <= _MAX_SEGMENT:
        return segment
    return segment[:80] + "~" + hashlib.sha256(name.encode()).hexdigest()


def name_key(name: str) -> str:
    return f"{NAMES}{name_segment(name)}.json"


def model_key(uid: str) -> str:
    return f"{MODELS}{uid}.json"


def versions_prefix(uid: str) -> str:
    return f"{VERSIONS}{uid}/"


def version_key(uid: str, version: int) -> str:
    return f"{versions_prefix(uid)}{version:0{VERSION_DIGITS}d}.json"


def version_number(key: str) -> int:
    return int(key.rsplit("/", 1)[1][:-len(".json")])


def aliases_key(uid: str) -> str:
    return f"{ALIASES}{uid}.json"


def hint_key(uid: str) -> str:
    return f"{HINTS}{uid}"


def source_marker_prefix(artifact_prefix: str) -> str:
    return f"{SOURCES}{artifact_prefix.strip('/')}/{SOURCE_MARK}"


def source_marker_key(artifact_prefix: str, uid: str, version: int) -> str:
    return f"{source_marker_prefix(artifact_prefix)}{uid}@{version}"


def parse_source_marker(key: str) -> tuple[str, int] | None:
    """``(uid, version)`` of a source marker key."""
    tail = key.rsplit("/", 1)[-1]
    uid, sep, num = tail.rpartition("@")
    return (uid, int(num)) if sep and is_uid(uid) and num.isdigit() else None


def parse_registry_key(key: str) -> tuple[str, str, int | None] | None:
    """``("models", uid, None)`` or ``("versions", uid, n)`` for a model or version record key."""
    if not key.startswith(PREFIX) or not key.endswith(".json"):
        return None
    parts = key[len(PREFIX):-len(".json")].split("/")
    if len(parts) == 2 and parts[0] == "models" and is_uid(parts[1]):
        return "models", parts[1], None
    if len(parts) == 3 and parts[0] == "versions" and is_uid(parts[1]) and parts[2].isdigit():
        return "versions", parts[1], int(parts[2])
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
    uid: str = ""
    state: str = ACTIVE  # or DELETED: a tombstone
    pending_name: str = ""  # a rename in progress claims this name
    former_names: list[str] = field(default_factory=list)  # their items are removed on publication
    # Read with the model (``RegistryService``'s views), not stored:
    latest_versions: list[ModelVersion] = field(default_factory=list)  # the newest live version per stage
    aliases: dict[str, int] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        doc = asdict(self)
        for view in _MODEL_VIEW:
            doc.pop(view)
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> RegisteredModel:
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k not in _MODEL_VIEW})

    def to_wire(self) -> dict[str, Any]:
        """``RegisteredModel`` as MLflow's REST API returns it (proto JSON, empty fields omitted)."""
        doc: dict[str, Any] = {"name": self.name, "creation_timestamp": self.creation_timestamp,
                               "last_updated_timestamp": self.last_updated_timestamp}
        for key in ("user_id", "description", "deployment_job_id"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        if self.latest_versions:
            doc["latest_versions"] = [mv.to_wire() for mv in self.latest_versions]
        if self.tags:
            doc["tags"] = _tag_list(self.tags)
        if self.aliases:
            doc["aliases"] = [{"alias": a, "version": str(v)} for a, v in sorted(self.aliases.items())]
        return doc

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def holds(self, name: str) -> bool:
        """Whether a claim of ``name`` pointing at this model is live."""
        return self.active and name in (self.name, self.pending_name)


@dataclass
class ModelVersion:
    name: str  # the model's current name: filled in on read, not stored (renames never touch versions)
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
    aliases: list[str] = field(default_factory=list)  # from the aliases record on read, not stored

    def to_record(self) -> dict[str, Any]:
        doc = asdict(self)
        for view in _VERSION_VIEW:
            doc.pop(view)
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any], name: str) -> ModelVersion:
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k not in _VERSION_VIEW}
        return cls(name=name, **fields)

    def to_wire(self) -> dict[str, Any]:
        """``ModelVersion`` as MLflow's REST API returns it (proto JSON, empty fields omitted)."""
        doc: dict[str, Any] = {
            "name": self.name, "version": str(self.version), "creation_timestamp": self.creation_timestamp,
            "last_updated_timestamp": self.last_updated_timestamp, "current_stage": self.current_stage,
            "source": self.source, "status": self.status,
        }
        for key in ("user_id", "description", "run_id", "status_message", "run_link", "model_id"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        if self.tags:
            doc["tags"] = _tag_list(self.tags)
        if self.aliases:
            doc["aliases"] = sorted(self.aliases)
        return doc


_MODEL_VIEW = ("latest_versions", "aliases")
_VERSION_VIEW = ("aliases", "name")


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


# -- reads shared by the service, the index, the publication function and the repair -------------
def load_model(store: ObjectStore, uid: Any) -> RegisteredModel | None:
    """The model record (a tombstone included), or None."""
    if not is_uid(uid):
        return None
    try:
        return RegisteredModel.from_record(store.get_json(model_key(uid)))
    except NotFound:
        return None


def resolve(store: ObjectStore, name: str) -> RegisteredModel | None:
    """The active model called ``name`` (2 GETs: its name claim and its record), or None."""
    try:
        claim = store.get_json(name_key(name))
    except NotFound:
        return None
    rm = load_model(store, claim.get("uid") if isinstance(claim, dict) else None)
    return rm if rm is not None and rm.active and rm.name == name else None


def load_version(store: ObjectStore, uid: str, name: str, number: int) -> ModelVersion | None:
    """Version ``number`` of model ``uid`` (named ``name``: the model's current name), a tombstone included."""
    try:
        return ModelVersion.from_record(store.get_json(version_key(uid, number)), name)
    except NotFound:
        return None


def load_aliases(store: ObjectStore, uid: str) -> dict[str, int]:
    """``{alias: version}`` of a model (one GET)."""
    try:
        doc = store.get_json(aliases_key(uid))
    except NotFound:
        return {}
    return {str(a): int(v) for a, v in doc.items()} if isinstance(doc, dict) else {}
