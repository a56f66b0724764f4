"""GitLab webhooks -> change records: ``datasets/changes/<project_id>/<ns-time>-<rand>.json``.

The webhook does no GitLab reads and builds nothing: it checks the secret, reads which project
changed, and writes one small create-only record, so it answers in milliseconds (GitLab gives up
after 10 s). Writing the record is the trigger: its store event reaches
``chalicelib/events/datasets.py``, which reads the project's *current* state from GitLab, so
redelivered, duplicated and out-of-order webhooks all converge on what GitLab holds now. A record
holds the project id, the event kind and the ref/commit information of the payload, nothing from the
request's headers.

Accepted payloads (GitLab's documented formats): project and group webhooks (``object_kind``
``push``, ``tag_push``) and system hooks (``event_name`` ``push``, ``tag_push``,
``repository_update``, ``project_create``, ``project_destroy``, ``project_rename``,
``project_transfer``, ``project_update``; topics and visibility changes arrive as
``project_update``). Any other kind is acknowledged and ignored.

The secret (``X-Gitlab-Token``) is compared in constant time before the body is read; a missing or
wrong token, or no configured secret at all, is refused (fail closed) and nothing is written.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..bounds import MAX_BODY_BYTES, InputBoundError, load_json
from ..store import ObjectStore

log = logging.getLogger(__name__)

CHANGES_PREFIX = "datasets/changes/"
MAX_PAYLOAD_BYTES = MAX_BODY_BYTES  # GitLab caps commits at 20 per push; file lists still make MBs
MAX_PAYLOAD_DEPTH = 32  # GitLab's payloads nest 4 levels
MAX_FIELD = 1024  # refs and paths (git refs are far shorter in practice)
KINDS = frozenset({"push", "tag_push", "repository_update", "project_create", "project_destroy", "project_rename",
                   "project_transfer", "project_update"})


class BadPayload(ValueError):
    """The payload is not one of GitLab's; ``str(err)`` says why, for the sender."""


@dataclass(frozen=True)
class Change:
    """What a webhook says changed: which project, and the ref/commit information it carried."""

    project_id: int
    kind: str
    ref: str | None = None
    before: str | None = None
    after: str | None = None
    checkout_sha: str | None = None
    path: str | None = None  # path_with_namespace, as the payload named it (informational)
    old_path: str | None = None  # project_rename / project_transfer
    received_at: float = field(default=0.0)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


UNAUTHORIZED = Answer(401, {"message": "401 Unauthorized"})


def _text(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise BadPayload(f"{name} must be a string of at most {MAX_FIELD} characters")
    return value


def _project_id(doc: Mapping[str, Any]) -> int:
    value = doc.get("project_id")
    if value is None and isinstance(doc.get("project"), dict):
        value = doc["project"].get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadPayload("project_id must be a positive integer")
    return value


def parse_payload(doc: Any, *, now: float | None = None) -> Change | None:
    """The change a GitLab payload describes; None for kinds that change no dataset."""
    if not isinstance(doc, dict):
        raise BadPayload("the payload must be a JSON object")
    kind = doc.get("object_kind") or doc.get("event_name")
    if not isinstance(kind, str):
        raise BadPayload("the payload has no object_kind or event_name")
    if kind not in KINDS:
        return None
    project: dict[str, Any] = doc["project"] if isinstance(doc.get("project"), dict) else {}
    return Change(project_id=_project_id(doc), kind=kind, ref=_text(doc, "ref"), before=_text(doc, "before"),
                  after=_text(doc, "after"), checkout_sha=_text(doc, "checkout_sha"),
                  path=_text(doc, "path_with_namespace") or _text(project, "path_with_namespace"),
                  old_path=_text(doc, "old_path_with_namespace"),
                  received_at=time.time() if now is None else now)


def change_key(project_id: int) -> str:
    """A fresh key: nanosecond time (records list in arrival order) and randomness (never two alike)."""
    return f"{CHANGES_PREFIX}{project_id}/{time.time_ns():020d}-{secrets.token_hex(8)}.json"


class Webhooks:
    """Receives GitLab webhooks for one store, with the configured secret (None: refuse everything)."""

    def __init__(self, store: ObjectStore, secret: str | None) -> None:
        self.store = store
        self._secret = secret.encode() if secret else None

    def __repr__(self) -> str:  # never the secret
        return f"Webhooks({self.store.uri!r})"

    def authorized(self, token: str | None) -> bool:
        if self._secret is None or token is None:
            return False
        return hmac.compare_digest(self._secret, token.encode("utf-8", "surrogateescape"))

    def receive(self, token: str | None, body: bytes | str) -> Answer:
        """Check the secret, parse the payload, write the change record."""
        if not self.authorized(token):
            return UNAUTHORIZED
        try:
            change = parse_payload(load_json(body, what="the webhook payload", max_bytes=MAX_PAYLOAD_BYTES,
                                             max_depth=MAX_PAYLOAD_DEPTH))
        except (InputBoundError, BadPayload) as err:
            return Answer(400, {"message": f"400 Bad request - {err}"})
        if change is None:
            return Answer(200, {"status": "ignored"})
        key = change_key(change.project_id)
        try:
            self.store.put_json(key, change.as_json(), if_none_match=True)
        except Exception:
            # The local store runs the event function inside put(): a failure there is logged by it
            # and must not turn a recorded change into an error (GitLab would disable the hook).
            # The key is fresh, so if it exists the record is ours.
            if not self.store.exists(key):
                raise
            log.exception("change %s recorded; processing it in-process failed", key)
        return Answer(200, {"status": "recorded", "project_id": change.project_id, "kind": change.kind})


__all__ = ["CHANGES_PREFIX", "Answer", "BadPayload", "Change", "KINDS", "Webhooks", "change_key", "parse_payload"]
