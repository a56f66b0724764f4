"""The store's failures: what every adapter raises, and what retry loops (``contention``) catch."""
from __future__ import annotations


class StoreError(Exception):
    """Base class of store failures."""


class NotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the key exists (create-only) or its ETag changed."""


class NotModified(StoreError):
    """``get(if_none_match=etag)``: the object still has that ETag."""


class InvalidKey(StoreError, ValueError):
    """The key is not a clean relative path."""


class RangeNotSatisfiable(StoreError):
    """``open(start=…)`` at or past the object's end (HTTP 416); ``size`` is the object's."""

    def __init__(self, key: str, size: int) -> None:
        super().__init__(f"range not satisfiable: {key} has {size} bytes")
        self.key, self.size = key, size
