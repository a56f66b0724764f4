"""A short-lived cache of GitLab's answers, keyed by a hash of the caller's token (never the token)."""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


def token_key(token: str | None) -> str:
    """What caches and logs may hold instead of a token."""
    return "anonymous" if not token else hashlib.sha256(token.encode()).hexdigest()


class TTLCache(Generic[T]):
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self._clock = ttl, max_entries, clock
        self._data: dict[Any, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, T | None]:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return False, None
            if hit[0] <= self._clock():
                del self._data[key]
                return False, None
            return True, hit[1]

    def put(self, key: Any, value: T) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._data) >= self.max_entries:
                now = self._clock()
                for k in [k for k, (exp, _) in self._data.items() if exp <= now] or list(self._data)[: len(self._data) // 2]:
                    self._data.pop(k, None)
            self._data[key] = (self._clock() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
