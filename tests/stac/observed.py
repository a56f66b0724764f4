"""A store wrapper for forced interleavings and contention counts (tests and the benchmark).

``pause_at(op, predicate)`` makes the next matching call (``"GET"``, ``"PUT"`` or ``"LIST"`` on a
key or prefix) wait until ``resume()``; ``paused`` is set once a caller is held there, so a test
can run another writer in between. Every conditional PUT that loses (``PreconditionFailed``) is
counted per key in ``lost``, every successful PUT in ``written``.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Callable, Iterator

from chalicelib.store import ObjectInfo, ObjectStore, PreconditionFailed, StoredObject

from .counting import CountingStore


class ObservedStore(CountingStore):
    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.written: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.paused = threading.Event()
        self._resume = threading.Event()
        self._gate: tuple[str, Callable[[str], bool]] | None = None
        self._lock = threading.Lock()

    def pause_at(self, op: str, predicate: Callable[[str], bool]) -> None:
        self.paused.clear()
        self._resume.clear()
        self._gate = (op, predicate)

    def resume(self) -> None:
        self._resume.set()

    def _maybe_pause(self, op: str, key: str) -> None:
        with self._lock:
            hit = self._gate is not None and self._gate[0] == op and self._gate[1](key)
            if hit:
                self._gate = None  # only the first matching call waits
        if hit:
            self.paused.set()
            if not self._resume.wait(20):
                raise TimeoutError(f"paused {op} {key} was never resumed")

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        self._maybe_pause("GET", key)
        return super().get(key, if_none_match=if_none_match)

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        self._maybe_pause("PUT", key)
        try:
            info = super()._put(key, body, if_none_match=if_none_match, if_match=if_match,
                                content_type=content_type)
        except PreconditionFailed:
            with self._lock:
                self.lost[key] += 1
            raise
        with self._lock:
            self.written[key] += 1
        return info

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        self._maybe_pause("LIST", prefix)
        return super().list(prefix, start_after=start_after, limit=limit)
