"""Relative hrefs of stored items, as the STAC API serves them.

Stored items link relative to their place in the static catalog (``collections/<cid>/items/``),
so the catalog works straight from the bucket or directory and nothing request-specific is ever
stored. Served by the API, each relative href that points at something the API answers for
becomes that absolute URL, built from the request's (trusted) base:

- ``../../<cid>/items/<id>.json`` or ``./<id>.json`` -> ``<stac>/collections/<cid>/items/<id>``
- ``../collection.json`` -> ``<stac>/collections/<cid>``; ``../../../catalog.json`` -> ``<stac>``
- ``../../../mlflow-artifacts/<path>`` -> ``<root>/mlflow/api/2.0/mlflow-artifacts/artifacts/<path>``
- ``./<id>/download?asset=<key>`` (a non-public item's asset, see ``route_downloads``) ->
  ``<stac>/collections/<cid>/items/<id>/download?asset=<key>``

Anything else is served as stored.
"""
from __future__ import annotations

import json
import posixpath
import re
from typing import Any

ARTIFACTS = "mlflow-artifacts/"
ARTIFACT_ROUTE = "/mlflow/api/2.0/mlflow-artifacts/artifacts/"
_ITEM = re.compile(r"^collections/([^/]+)/items/([^/]+)\.json$")
_DOWNLOAD = re.compile(r"^collections/([^/]+)/items/([^/]+)/download$")
_COLLECTION = re.compile(r"^collections/([^/]+)/collection\.json$")
_RELATIVE = re.compile(rb'"href":"(\.\.?/[^"\\]*)"')  # compact JSON, as the index stores items


def resolve(href: str, cid: str, stac_base: str) -> str:
    """``href`` of an item of collection ``cid``, as the API at ``stac_base`` (``<root>/stac``) serves it."""
    if not href.startswith(("./", "../")):
        return href
    cut = min((i for i in (href.find("?"), href.find("#")) if i >= 0), default=len(href))
    path, tail = href[:cut], href[cut:]
    key = posixpath.normpath(posixpath.join(f"collections/{cid}/items", path))
    if key.startswith(ARTIFACTS):
        root = stac_base[:-len("/stac")] if stac_base.endswith("/stac") else stac_base
        return f"{root}{ARTIFACT_ROUTE}{key[len(ARTIFACTS):]}{tail}"
    if (match := _ITEM.match(key)) is not None:
        return f"{stac_base}/collections/{match.group(1)}/items/{match.group(2)}{tail}"
    if (match := _DOWNLOAD.match(key)) is not None:
        return f"{stac_base}/collections/{match.group(1)}/items/{match.group(2)}/{DOWNLOAD}{tail}"
    if (match := _COLLECTION.match(key)) is not None:
        return f"{stac_base}/collections/{match.group(1)}{tail}"
    return stac_base + tail if key == "catalog.json" else href


def resolve_item(item: dict[str, Any], stac_base: str) -> None:
    """Resolve, in place, the hrefs of an item's links and assets."""
    cid = item.get("collection")
    if not isinstance(cid, str):
        return
    holders = list(item.get("links") or []) + list((item.get("assets") or {}).values())
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("href"), str):
            holder["href"] = resolve(holder["href"], cid, stac_base)


def resolve_bytes(raw: bytes, cid: str, stac_base: str) -> bytes:
    """``resolve`` over every relative ``"href"`` of an item's compact JSON (the index's bytes)."""
    if b'"href":".' not in raw:  # nothing relative (a substring test: ~10x cheaper than the pattern)
        return raw
    return _RELATIVE.sub(
        lambda m: b'"href":' + json.dumps(resolve(m.group(1).decode(), cid, stac_base),
                                          ensure_ascii=False).encode(), raw)


DOWNLOAD = "download"  # <stac>/collections/<cid>/items/<id>/download?asset=<key>


def stored_object(href: str, cid: str) -> str | None:
    """The store key an item's relative href names (relative to ``collections/<cid>/items/``, wherever
    the item itself is stored), or None when it names no object of the store."""
    if not href.startswith(("./", "../")):
        return None
    cut = min((i for i in (href.find("?"), href.find("#")) if i >= 0), default=len(href))
    key = posixpath.normpath(posixpath.join(f"collections/{cid}/items", href[:cut]))
    return None if key.startswith(("../", "/")) or key in (".", "..") else key


def download_href(item_id: str, asset: str) -> str:
    """The download route of an item's asset, relative to the item (``resolve`` makes it absolute)."""
    from urllib.parse import quote
    return f"./{item_id}/{DOWNLOAD}?asset={quote(asset, safe='')}"


def route_downloads(item: dict[str, Any]) -> None:
    """Point, in place, the assets of a non-public item that the service can presign (objects of the
    store, ``s3://`` URLs) at its download route, which checks access before redirecting. The search
    index stores items so rewritten (``table.split_links``): pages are spliced from its bytes."""
    cid, item_id, assets = item.get("collection"), item.get("id"), item.get("assets")
    if not isinstance(cid, str) or not isinstance(item_id, str) or not isinstance(assets, dict):
        return
    for key, asset in assets.items():
        href = asset.get("href") if isinstance(asset, dict) else None
        if isinstance(href, str) and (href.startswith("s3://") or stored_object(href, cid) is not None):
            asset["href"] = download_href(item_id, key)
