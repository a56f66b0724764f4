"""Items of GitLab projects of each visibility, for the STAC access-control tests."""
from __future__ import annotations

from typing import Any

from chalicelib.stac import catalog
from chalicelib.store import ObjectStore

from .stac_items import make_item

# (path, id, visibility); visibility None: unknown (treated as private)
PROJECTS = {
    "public": ("grp/open", 101, "public"),
    "internal": ("grp/inside", 102, "internal"),
    "private": ("grp/secret", 103, "private"),
    "unknown": ("grp/mystery", 104, None),
}
SECRET_TITLE = "classified flood footprint"


def owned(item_id: str, kind: str | None, **kw: Any) -> dict[str, Any]:
    """An item of the project of ``kind`` (None: of no project)."""
    props: dict[str, Any] = {"title": f"{kind or 'orphan'} scene {item_id}"}
    if kind is not None:
        path, pid, visibility = PROJECTS[kind]
        props.update({"stacflow:project": path, "stacflow:project_id": pid})
        if visibility is not None:
            props["stacflow:visibility"] = visibility
    props.update(kw.pop("props", {}))
    href = kw.pop("href", f"../../../data/{item_id}.tif")  # an object of the store
    item = make_item(item_id, kw.pop("collection", "dataset"), **kw, **props)
    item["assets"]["data"]["href"] = href
    return item


def world() -> list[dict[str, Any]]:
    """One or two items per project kind; the private ones far from the others (extents tell)."""
    return [
        owned("pub-a", "public", lon=10, lat=50), owned("pub-b", "public", lon=11, lat=51),
        owned("orphan-a", None, lon=12, lat=52),
        owned("int-a", "internal", lon=13, lat=53),
        owned("priv-a", "private", lon=150, lat=-40, dt="2030-01-01T00:00:00Z",
              props={"title": SECRET_TITLE, "secret:depth": 12}),
        owned("unk-a", "unknown", lon=-150, lat=-60, dt="2031-01-01T00:00:00Z"),
    ]


def linked(store: ObjectStore, cid: str = "dataset") -> set[str]:
    """Item ids the static catalog's shards link."""
    out: set[str] = set()
    for info in store.list(f"collections/{cid}/shards/"):
        out |= set(store.get_json(info.key)[catalog.ITEMS_FIELD])
    return out


def stored_keys(store: ObjectStore, cid: str = "dataset") -> set[str]:
    return {info.key for private in (False, True) for info in store.list(catalog.items_prefix(cid, private=private))}
