"""The configured DVC S3 remotes (``STACFLOW_DVC_REMOTES``), read through the ObjectStore port.

A remote URL a project's ``.dvc/config`` names is read only if it lies under one of the configured
remotes: the service never reads a bucket because a repository told it to.
"""
from __future__ import annotations

import threading
from typing import Callable

from ..store import ObjectStore, open_store


def normalize(url: str) -> str:
    return url.strip().rstrip("/")


def covers(remote: str, url: str) -> bool:
    """Whether ``url`` (``s3://bucket/prefix``) lies under the configured ``remote``, segment by segment."""
    remote, url = normalize(remote), normalize(url)
    return url == remote or url.startswith(remote + "/")


class ConfiguredRemotes:
    """``store_for(url)``: a store rooted at ``url`` when a configured remote covers it, else None."""

    def __init__(self, remotes: tuple[str, ...], opener: Callable[[str], ObjectStore] = open_store) -> None:
        self.remotes = tuple(normalize(r) for r in remotes)
        self._open = opener
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    def store_for(self, url: str) -> ObjectStore | None:
        url = normalize(url)
        if not url.startswith("s3://") or not any(covers(r, url) for r in self.remotes):
            return None
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                store = self._stores[url] = self._open(url)
            return store


__all__ = ["ConfiguredRemotes", "covers", "normalize"]
