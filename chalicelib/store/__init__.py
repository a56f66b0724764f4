"""Object-store port and its adapters, chosen by URI scheme (``file://PATH`` or ``s3://BUCKET[/PREFIX]``)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import (CREATED, REMOVED, Change, CompletedPart, EventSource, InvalidKey, NotFound, NotModified,
                   ObjectInfo, ObjectReader, ObjectStore, PreconditionFailed, RangeNotSatisfiable, SignedUrls,
                   StoredObject, StoreError, check_key, join_key)

__all__ = ["CREATED", "REMOVED", "Change", "CompletedPart", "EventSource", "InvalidKey", "NotFound", "NotModified",
           "ObjectInfo", "ObjectReader", "ObjectStore", "PreconditionFailed", "RangeNotSatisfiable",
           "SignedUrls", "StoredObject", "StoreError", "check_key", "join_key", "open_store"]


def open_store(uri: str, *, emit_events: bool = False, signing_key: bytes | None = None) -> ObjectStore:
    """``file://PATH`` (relative paths allowed: ``file://data``), a bare path, or ``s3://bucket/prefix``.

    ``signing_key`` signs the local store's URLs (S3 presigns with its credentials instead).
    """
    if uri.startswith("s3://"):
        from .s3 import S3Store
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise ValueError(f"s3 store URI needs a bucket: {uri!r}")
        return S3Store(parsed.netloc, parsed.path, emit_events=emit_events)
    from .local import LocalStore
    if uri.startswith("file://"):
        path = unquote(uri[len("file://"):])
    elif "://" in uri:
        raise ValueError(f"unsupported store URI: {uri!r} (use file://PATH or s3://BUCKET[/PREFIX])")
    else:
        path = uri
    return LocalStore(Path(path or "."), signing_key=signing_key)
