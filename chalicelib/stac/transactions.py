"""STAC API Transaction extension: create, replace, merge-patch and delete one item of a collection.

A transaction writes the item JSON where a publisher would (``catalog.stored_item_key``), so its
end state is that of publishing into the bucket: the item's store event updates the static catalog
and the search index. Every write is conditional (create-only, or compare-and-swap on the ETag the
caller's ``If-Match`` names or the one just read), so concurrent writers never lose an update.

Access: a caller must be able to read an existing item (else it is "not found", as for a GET),
needs ``Action.WRITE`` (Developer) on the item's ``stacflow:project`` before and after a change (an
item cannot be moved into a project its writer cannot write) and ``Action.DELETE`` (Maintainer) to
delete. ``stacflow:visibility`` is never the caller's word: it is the project's, asked of GitLab.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

from ..auth.access import EVERYTHING, Action, ReadScope
from ..store import NotFound, ObjectStore, PreconditionFailed
from . import catalog
from .access import VISIBILITY, allows, project_of
from .errors import ConflictError, InvalidParameter, NotFoundError, PreconditionFailedError
from .items import InvalidItem, normalize
from .model_items import OWNER

CONFORMANCE = ["https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction",
               "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/simpletx"]
MAX_BODY_BYTES = 1 << 20  # an item with its assets; larger bodies answer 413
MAX_BODY_DEPTH = 32


@dataclass(frozen=True)
class Caller:
    """What a transaction needs of the access service, for one caller."""

    scope: ReadScope = EVERYTHING
    require: Callable[[str | None, Action], None] = lambda project, action: None
    # The project's visibility (GitLab's word); None: keep what the item says (access control off).
    visibility: Callable[[str], str | None] = lambda project: None


@dataclass(frozen=True)
class Written:
    item: dict[str, Any]
    etag: str


def _quoted(etag: str) -> str:
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


def etag_header(etag: str) -> str:
    return _quoted(etag)


def _matches(if_match: str | None, etag: str) -> bool:
    if if_match is None:
        return True
    wanted = [tag.strip() for tag in if_match.split(",")]
    return "*" in wanted or _quoted(etag) in wanted or etag in wanted


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class Transactions:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- reads --------------------------------------------------------------------------
    def _current(self, cid: str, iid: str) -> tuple[dict[str, Any], str, str] | None:
        """(item, etag, key) of the copy that wins (the private one while both exist), or None."""
        for private in (True, False):
            key = catalog.item_key(cid, iid, private=private)
            try:
                obj = self.store.get(key)
                doc = obj.json()
            except (NotFound, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("type") == "Feature":
                return doc, obj.etag, key
        return None

    def _existing(self, cid: str, iid: str, caller: Caller, if_match: str | None) -> tuple[dict[str, Any], str, str]:
        _known(cid)
        found = self._current(cid, iid)
        if found is None or not allows(caller.scope, found[0]):
            raise NotFoundError(f"item {iid!r} not found in collection {cid!r}")
        if not _matches(if_match, found[1]):
            raise PreconditionFailedError(f"item {iid!r} has changed (its ETag is no longer {if_match})")
        if OWNER in (found[0].get("properties") or {}):  # the registry rewrites its items from its records
            raise ConflictError(f"item {iid!r} is published by the model registry: change the model version instead")
        return found

    # -- writes -------------------------------------------------------------------------
    def create(self, cid: str, body: Any, caller: Caller) -> Written:
        _known(cid)
        if isinstance(body, dict) and body.get("type") == "FeatureCollection":
            raise InvalidParameter("post one item per request")
        item = self._prepared(cid, body, None, caller)
        iid = item["id"]
        found = self._current(cid, iid)
        if found is not None:
            # The id is the caller's own: saying it is taken reveals nothing they did not send.
            raise ConflictError(f"item {iid!r} already exists in collection {cid!r}")
        try:
            info = self.store.put_json(catalog.stored_item_key(item), item, if_none_match=True)
        except PreconditionFailed:
            raise ConflictError(f"item {iid!r} already exists in collection {cid!r}") from None
        return Written(item, info.etag)

    def replace(self, cid: str, iid: str, body: Any, caller: Caller, if_match: str | None = None) -> Written:
        old, etag, key = self._existing(cid, iid, caller, if_match)
        caller.require(project_of(old), Action.WRITE)
        return self._write(cid, iid, self._prepared(cid, body, iid, caller), etag, key)

    def patch(self, cid: str, iid: str, patch: Any, caller: Caller, if_match: str | None = None) -> Written:
        if not isinstance(patch, dict):
            raise InvalidParameter("a merge patch must be a JSON object")
        old, etag, key = self._existing(cid, iid, caller, if_match)
        caller.require(project_of(old), Action.WRITE)
        merged = merge_patch({k: v for k, v in old.items() if k != "links"} | {"links": _own_links(old)}, patch)
        return self._write(cid, iid, self._prepared(cid, merged, iid, caller), etag, key)

    def delete(self, cid: str, iid: str, caller: Caller, if_match: str | None = None) -> None:
        old, etag, key = self._existing(cid, iid, caller, if_match)
        caller.require(project_of(old), Action.DELETE)
        try:
            self.store.delete(key, if_match=etag)
        except PreconditionFailed:
            raise PreconditionFailedError(f"item {iid!r} changed while being deleted: read it again") from None
        other = catalog.item_key(cid, iid, private=not catalog.is_private_key(key))
        self.store.delete(other)  # a copy left behind by a move in progress

    def _prepared(self, cid: str, body: Any, iid: str | None, caller: Caller) -> dict[str, Any]:
        """The item as it will be stored, after the write check on its (new) project."""
        if not isinstance(body, dict):
            raise InvalidParameter("the body must be a STAC item (a JSON object)")
        if iid is not None and body.get("id", iid) != iid:
            raise InvalidParameter(f"the body's id {body.get('id')!r} differs from the path's ({iid!r})")
        if body.get("collection", cid) != cid:
            raise InvalidParameter(f"the body's collection {body.get('collection')!r} differs from the path's ({cid!r})")
        body = dict(body, id=body.get("id", iid), collection=cid)
        if isinstance(body.get("properties"), dict) and OWNER in body["properties"]:
            raise InvalidParameter(f"{OWNER} is set by the model registry only")
        project = project_of(body)
        caller.require(project, Action.WRITE)
        props = body.get("properties")
        if project is not None and isinstance(props, dict):
            visibility = caller.visibility(project)
            if visibility is not None:
                body["properties"] = dict(props, **{VISIBILITY: visibility})
        try:
            return normalize(body, cid)[0]
        except InvalidItem as err:
            raise InvalidParameter(f"invalid item: {err}") from None

    def _write(self, cid: str, iid: str, item: dict[str, Any], etag: str, key: str) -> Written:
        """Replace the copy at ``key`` (read at ``etag``) by ``item``, moving it when its visibility's
        place changed: the new copy is written before the old one goes."""
        new_key = catalog.stored_item_key(item)
        changed = PreconditionFailedError(f"item {iid!r} changed meanwhile: read it again")
        try:
            if new_key == key:
                return Written(item, self.store.put_json(key, item, if_match=etag).etag)
            info = self.store.put_json(new_key, item)
        except (PreconditionFailed, NotFound):
            raise changed from None
        try:
            self.store.delete(key, if_match=etag)
        except PreconditionFailed:
            self.store.delete(new_key, if_match=info.etag)  # the other writer's version stands
            raise changed from None
        return Written(item, info.etag)


def _own_links(item: dict[str, Any]) -> list[Any]:
    return [link for link in item.get("links", []) if not (isinstance(link, dict) and
                                                           link.get("rel") in catalog.STRUCTURAL_RELS)]


def _known(cid: str) -> None:
    if catalog.config().category(cid) is None:
        raise NotFoundError(f"collection {cid!r} not found")
