"""Assets become available when their objects land in the DVC remote (S3 ObjectCreated).

The index: ``datasets/objects/<md5>/<hash of the reference>.json``, one create-only object per
(pending asset, item) reference, written before the item (``record``). Writers never contend on
one document, so no reference is lost; a rebuilt item that no longer has the asset leaves a stale
reference that is ignored (the handler matches the item's asset by its href).

A landing (``object_landed``) HEADs the object in the remote, then rewrites each referencing item by
compare-and-swap: assets with that href become ``stacflow:available`` if the size (and the md5, when
the ETag is one) matches, else stay pending with a warning; a pending directory manifest becomes
its files (the manifest is read, the files' presence read by ``items.probe``: one LIST per object
folder holding several of them, else a HEAD; their references recorded first). Concurrent
landings on one item retry their swap, so every one of them sticks.

Who writes items must call ``record`` before and ``settle`` after writing them (``publish`` does
both): an object that lands between the build's HEAD and the item's write is then caught either by
its own event (the reference exists, the item is there) or by ``settle`` (it HEADs again after the
write), whichever runs last.
"""
from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from ..stac import catalog
from ..store import NotFound, ObjectInfo, ObjectStore, PreconditionFailed
from . import dvc, items
from .items import AVAILABLE, PENDING, WARNINGS, Build, Reference
from .snapshot import Remote

log = logging.getLogger(__name__)

INDEX_PREFIX = "datasets/objects/"
WRITE_THREADS = 8


def reference_key(ref: Reference) -> str:
    digest = hashlib.sha256(json.dumps(ref.to_json(), sort_keys=True).encode()).hexdigest()[:32]
    return f"{INDEX_PREFIX}{ref.md5}/{digest}.json"


def record(store: ObjectStore, references: Iterable[Reference]) -> None:
    """Write the references (create-only; one already there is the same reference: its key is its hash)."""
    refs = list(dict.fromkeys(references))

    def put(ref: Reference) -> None:
        try:
            store.put_json(reference_key(ref), ref.to_json(), if_none_match=True, notify=False)
        except PreconditionFailed:
            pass

    if len(refs) <= 1:
        for ref in refs:
            put(ref)
        return
    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(refs))) as pool:
        list(pool.map(put, refs))


def references(store: ObjectStore, md5: str) -> list[Reference]:
    out = []
    for info in store.list(f"{INDEX_PREFIX}{md5}/"):
        try:
            out.append(Reference.from_json(store.get_json(info.key)))
        except (NotFound, KeyError, TypeError, ValueError):
            log.warning("unreadable availability reference %s: ignored", info.key)
    return out


def publish(store: ObjectStore, remote: Remote, build: Build,
            write: Callable[[str, dict[str, Any]], Any] | None = None) -> list[str]:
    """Record ``build``'s references, write its items (``write(key, item)``; default: an unconditional
    put), then settle them. Returns the item keys."""
    record(store, build.references)
    keys = []
    for item in build.items:
        key = catalog.stored_item_key(item)
        if write is None:
            store.put_json(key, item)
        else:
            write(key, item)
        keys.append(key)
    settle(store, remote, keys)
    return keys


def settle(store: ObjectStore, remote: Remote, item_keys: Iterable[str]) -> list[str]:
    """Check the pending assets of freshly written items again; returns the keys of items updated."""
    updated: list[str] = []
    for key in item_keys:
        try:
            item = store.get_json(key)
        except NotFound:
            continue
        urls = {a.get("href") for a in (item.get("assets") or {}).values()
                if isinstance(a, dict) and a.get(AVAILABLE) is False}
        for url in sorted(u for u in urls if isinstance(u, str)):
            if key in object_landed(store, remote, url, only_item=key) and key not in updated:
                updated.append(key)
    return updated


def on_object_created(store: ObjectStore, remote: Remote, bucket: str, key: str) -> list[str]:
    """An S3 ObjectCreated of ``bucket``/``key`` (decoded) in a DVC remote; returns the item keys updated."""
    return object_landed(store, remote, f"s3://{bucket}/{key}")


def object_landed(store: ObjectStore, remote: Remote, url: str, *, only_item: str | None = None) -> list[str]:
    """Mark the assets whose href is ``url`` available in the items that reference it (or only in
    ``only_item``); returns the keys of the items rewritten."""
    parts = dvc.split_url(url)
    if parts is None:
        return []
    remote_url, key, md5, isdir, legacy = parts
    rstore = remote.store_for(remote_url)
    if rstore is None:
        return []
    try:
        info = rstore.head(key)
    except NotFound:
        return []
    by_item: dict[str, list[Reference]] = {}
    for ref in references(store, md5):
        if ref.url == url and (only_item is None or ref.item_key == only_item):
            by_item.setdefault(ref.item_key, []).append(ref)
    updated = []
    for item_key, refs in sorted(by_item.items()):
        warn = items.Warnings(item_key)
        expansion = None
        directory = next((r.directory for r in refs if r.directory), None)
        if isdir and directory is not None:
            entries, _ = items.read_manifest(rstore, md5, legacy=legacy, where=directory.path,
                                             max_files=directory.max_files, warn=warn)
            if entries is not None:
                expansion = items.directory_assets(directory.source, directory.path, entries, rstore,
                                                   legacy=legacy, warn=warn)
                record(store, filter(None, (items.reference_of(a, item_key) for a in expansion.values())))
        if _mark(store, item_key, url, info, md5=md5, legacy=legacy, expansion=expansion, warn=warn):
            updated.append(item_key)
    return updated


def _mark(store: ObjectStore, item_key: str, url: str, info: ObjectInfo, *, md5: str, legacy: bool,
          expansion: dict[str, dict[str, Any]] | None, warn: items.Warnings) -> bool:
    problems: list[str] = []
    wrote = [False]  # the last attempt's (the one that stuck) verdict

    def mutate(doc: Any) -> Any:
        problems.clear()
        wrote[0] = False
        assets = doc.get("assets") if isinstance(doc, dict) else None
        if not isinstance(assets, dict) or not isinstance(doc.get("properties"), dict):
            return None
        changed = False
        for key, asset in list(assets.items()):
            if not isinstance(asset, dict) or asset.get("href") != url or asset.get(AVAILABLE) is not False:
                continue
            if expansion is not None and "metadata" in (asset.get("roles") or []):
                del assets[key]
                for path, file_asset in expansion.items():
                    assets.setdefault(path, dict(file_asset))
                changed = True
                continue
            ok, problem = items.present(info, md5=md5, size=asset.get("file:size"), legacy=legacy)
            if not ok:
                message = f"{key}: object {problem}: not available"
                problems.append(message)
                notes = doc["properties"].setdefault(WARNINGS, [])
                if message not in notes:
                    notes.append(message)
                    changed = True
                continue
            asset[AVAILABLE] = True
            asset.setdefault("file:size", info.size)
            changed = True
        if not changed:
            return None
        doc["assets"] = {k: assets[k] for k in sorted(assets)}
        doc["properties"][PENDING] = items.pending_keys(assets)
        wrote[0] = True
        return doc

    try:
        store.update_json(item_key, mutate)
    except NotFound:  # the item was deleted (or rejected) meanwhile: nothing to mark
        return False
    for message in problems:
        warn("availability", message)
    return wrote[0]
