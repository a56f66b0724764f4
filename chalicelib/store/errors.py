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


class Unavailable(StoreError):
    """The store failed for now (503 SlowDown, a timeout, a dropped connection): the call may be retried."""


_TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException",
                              "RequestTimeout", "RequestTimeoutException", "InternalError", "503", "500"})


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is a failure a client should retry: the store's or its transport's, not the request's.

    botocore's errors are recognised by shape (a ClientError's status or code, its connection and
    timeout classes), so no domain module needs botocore to classify them."""
    # A lost condition that reaches the edge (``contention.Contention``: a hot document whose retries
    # ran out) is a race, never the request's fault: trying again is the answer.
    if isinstance(err, (Unavailable, PreconditionFailed, TimeoutError, ConnectionError)):
        return True
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        code = (response.get("Error") or {}).get("Code") or ""
        return int(status) >= 500 or code in _TRANSIENT_CODES
    module = type(err).__module__ or ""
    if module.startswith(("botocore", "urllib3")):
        # EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError, …
        return any(word in klass.__name__ for klass in type(err).__mro__ for word in ("Connection", "Timeout"))
    return False
