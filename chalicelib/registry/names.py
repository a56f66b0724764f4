"""Name claims: who holds a registered model's name (``records.name_key``, create-only).

A claim is live while the model it points at is active and carries that name (or is being renamed
to it); a claim that is not live (left by a crash, a finished rename or a delete) is taken over,
so a crash never locks a name.
"""
from __future__ import annotations

from ..mlflowapi.errors import model_exists, unavailable
from ..store import NotFound, ObjectStore, PreconditionFailed
from . import records as rec

_CLAIM_ATTEMPTS = 20


class NameClaims:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def claim(self, name: str, uid: str) -> None:
        """Make ``names/<name>`` point at ``uid``; RESOURCE_ALREADY_EXISTS if another model holds it."""
        key, claim = rec.name_key(name), {"uid": uid, "name": name}
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                self.store.put_json(key, claim, if_none_match=True)
                return
            except PreconditionFailed:
                pass
            try:
                current = self.store.get(key)
            except NotFound:
                continue
            held = current.json()
            holder = held.get("uid") if isinstance(held, dict) else None
            if holder != uid:
                model = rec.load_model(self.store, holder)
                if model is not None and model.holds(name):
                    raise model_exists(name)
            try:
                if holder == uid:  # ours (a retried rename): rewriting it voids a concurrent takeover
                    self.store.put_json(key, claim, if_match=current.etag)
                    return
                self.store.delete(key, if_match=current.etag)  # not live: left by a crash, rename or delete
            except (PreconditionFailed, NotFound):
                continue
        raise unavailable(f"Too many concurrent claims of the name {name!r}, retry.")

    def release(self, name: str, uid: str) -> None:
        """Drop ``uid``'s claim of ``name`` unless the model holds the name again."""
        key = rec.name_key(name)
        try:
            current = self.store.get(key)
        except NotFound:
            return
        held = current.json()
        model = rec.load_model(self.store, uid)
        if not isinstance(held, dict) or held.get("uid") != uid or (model is not None and model.holds(name)):
            return
        try:
            self.store.delete(key, if_match=current.etag)  # a concurrent re-claim changes the ETag
        except PreconditionFailed:
            pass
