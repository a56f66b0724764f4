"""A store wrapper that runs test hooks around each primitive call, to force an interleaving.

A hook can block its call on a ``threading.Event`` (pause a compactor after its LIST, a writer
before its PUT) or raise (a crash). Conveniences (``put_json``, ``update_json``) go through the
wrapper's primitives, so they are hooked too.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterator, Sequence

from chalicelib.store import EventSource, ObjectStore
from chalicelib.store.base import CompletedPart, ObjectInfo, ObjectReader, StoredObject

Hook = Callable[[str, str, str, "bytes | None"], None]  # (when: before|after, op, key, body)


class HookedStore(ObjectStore):
    def __init__(self, inner: ObjectStore) -> None:
        super().__init__()
        self.inner = inner
        self.hooks: list[Hook] = []
        self.calls: list[tuple[str, str]] = []  # (op, key), every primitive call in order
        self._lock = threading.Lock()

    def _run(self, when: str, op: str, key: str, body: bytes | None = None) -> None:
        if when == "before":
            with self._lock:
                self.calls.append((op, key))
        for hook in list(self.hooks):
            hook(when, op, key, body)

    @property
    def uri(self) -> str:
        return self.inner.uri

    @property
    def event_source(self) -> EventSource:
        return self.inner.event_source

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        self._run("before", "get", key)
        out = self.inner.get(key, if_none_match=if_none_match)
        self._run("after", "get", key, out.body)
        return out

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        self._run("before", "get", key)
        return self.inner.open(key, start=start, length=length)

    def head(self, key: str) -> ObjectInfo:
        self._run("before", "head", key)
        return self.inner.head(key)

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        self._run("before", "put", key, body)
        out = self.inner.put(key, body, if_none_match=if_none_match, if_match=if_match,
                             content_type=content_type, notify=False)
        self._run("after", "put", key, body)
        return out

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        self._run("before", "delete", key)
        existed = self.inner.exists(key)
        self.inner.delete(key, if_match=if_match)
        self._run("after", "delete", key)
        return existed

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        self._run("before", "list", prefix)
        out = list(self.inner.list(prefix, start_after=start_after, limit=limit))
        self._run("after", "list", prefix)
        return iter(out)

    def url(self, key: str) -> str:
        return self.inner.url(key)

    def presign_get(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        return self.inner.presign_get(key, expires=expires, base_url=base_url)

    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        return self.inner.presign_put(key, expires=expires, base_url=base_url)

    def create_multipart(self, key: str) -> str:
        return self.inner.create_multipart(key)

    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str:
        return self.inner.presign_part(key, upload_id, part_number, expires=expires, base_url=base_url)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo:
        return self.inner.complete_multipart(key, upload_id, parts)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.inner.abort_multipart(key, upload_id)


def pause_when(store: HookedStore, when: str, op: str, match: Callable[[str, "bytes | None"], bool],
               thread: str | None = None) -> tuple[threading.Event, threading.Event]:
    """Block the first matching call (optionally only on the thread named ``thread``) until released.

    Returns ``(reached, release)``: ``reached`` is set when the call is blocked.
    """
    reached, release = threading.Event(), threading.Event()
    once = threading.Lock()

    def hook(w: str, o: str, key: str, body: bytes | None) -> None:
        if (w, o) != (when, op) or not match(key, body):
            return
        if thread is not None and threading.current_thread().name != thread:
            return
        if not once.acquire(blocking=False):
            return  # only the first matching call pauses
        reached.set()
        if not release.wait(10):
            raise TimeoutError("test never released a paused store call")

    store.hooks.append(hook)
    return reached, release

