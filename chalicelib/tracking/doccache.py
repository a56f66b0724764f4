"""Warm copies of small JSON records (experiments, logged models, registry index shards), revalidated by ETag.

``listing`` costs one LIST plus GETs only for records whose ETag changed since the last call;
``load`` is a conditional GET (``If-None-Match``), so a record read again costs a 304, not a body.
Records are parsed once per version and shared: callers must not mutate them.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Generic, TypeVar

from ..store import NotFound, NotModified, ObjectStore
from .eventlog import parallel

T = TypeVar("T")


class DocCache(Generic[T]):
    def __init__(self, store: ObjectStore, parse: Callable[[Any], T]) -> None:
        self.store = store
        self._parse = parse
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[str, T]] = {}  # key -> (etag, parsed record)

    def load(self, key: str) -> tuple[str, T] | None:
        """The record at ``key`` and its ETag, or None if absent."""
        with self._lock:
            cached = self._docs.get(key)
        try:
            obj = self.store.get(key, if_none_match=cached[0] if cached else None)
        except NotModified:
            return cached
        except NotFound:
            with self._lock:
                self._docs.pop(key, None)
            return None
        loaded = (obj.etag, self._parse(obj.json()))
        with self._lock:
            self._docs[key] = loaded
        return loaded

    def listing(self, prefix: str) -> list[T]:
        """Every record under ``prefix``, in key order."""
        infos = [i for i in self.store.list(prefix) if i.key.endswith(".json")]
        listed = {i.key for i in infos}
        with self._lock:
            stale = [i.key for i in infos if i.key not in self._docs or self._docs[i.key][0] != i.etag]
            for gone in [k for k in self._docs if k.startswith(prefix) and k not in listed]:
                del self._docs[gone]

        def fetch(key: str) -> tuple[str, tuple[str, T]] | None:
            try:
                obj = self.store.get(key)
            except NotFound:
                return None
            return key, (obj.etag, self._parse(obj.json()))
        fetched = [f for f in parallel([lambda k=k: fetch(k) for k in stale], self.store.side_by_side)  # type: ignore[misc]
                   if f is not None]
        with self._lock:
            self._docs.update(fetched)
            return [self._docs[i.key][1] for i in infos if i.key in self._docs]
