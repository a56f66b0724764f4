"""The configured DVC remotes (``STACFLOW_DVC_REMOTES``): which URLs the service may read and hears about."""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from ..store import ObjectStore, open_store


def normalize(url: str) -> str:
    return url.strip().rstrip("/")


class ConfiguredRemotes:
    """``Remote`` over a fixed list of ``s3://bucket[/prefix]`` URLs: a project's remote is served when
    it is one of them or lies under one (``s3://bucket`` covers ``s3://bucket/team/x``)."""

    def __init__(self, urls: Iterable[str], opener: Callable[[str], ObjectStore] = open_store) -> None:
        self.urls = tuple(normalize(u) for u in urls if u.strip())
        self._opener = opener
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    def covers(self, url: str) -> bool:
        url = normalize(url)
        return any(url == u or url.startswith(u + "/") for u in self.urls)

    def store_for(self, url: str) -> ObjectStore | None:
        url = normalize(url)
        if not self.covers(url):
            return None
        with self._lock:
            if url not in self._stores:
                self._stores[url] = self._opener(url)
            return self._stores[url]
