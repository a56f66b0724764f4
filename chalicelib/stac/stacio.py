"""A pystac ``StacIO`` that reads and writes through the object-store port.

``StoreStacIO(store)`` maps the store's own URLs (``s3://bucket/prefix/...`` or ``file://...``)
to keys, so ``pystac.Catalog.from_file(store.url("catalog.json"), stac_io=StoreStacIO(store))``
walks the static catalog with the store's credentials and endpoint (``stac.check``); other hrefs
fall back to pystac's default reader.
"""
from __future__ import annotations

from typing import Any

from pystac.stac_io import DefaultStacIO

from ..store import ObjectStore

_PROBE = "catalog.json"


class StoreStacIO(DefaultStacIO):
    def __init__(self, store: ObjectStore, headers: dict[str, str] | None = None) -> None:
        super().__init__(headers=headers)
        self.store = store
        self.base = store.url(_PROBE)[: -len(_PROBE)]

    def key_of(self, href: str) -> str | None:
        """The store key ``href`` names, or None: not in the store."""
        href = str(href)
        if href.startswith("/") and self.base.startswith("file://"):
            href = "file://" + href  # pystac turns file URLs into plain paths
        return href[len(self.base):] if href.startswith(self.base) else None

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        key = self.key_of(source)
        if key is None:
            return super().read_text(source, *args, **kwargs)
        return self.store.get(key).body.decode("utf-8")

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        key = self.key_of(dest)
        if key is None:
            super().write_text(dest, txt, *args, **kwargs)
            return
        self.store.put(key, txt.encode("utf-8"), content_type="application/json")
