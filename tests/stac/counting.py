"""An ObjectStore wrapper that counts requests by kind (tests and the benchmark)."""
from __future__ import annotations

import builtins
from collections import Counter
from typing import Any, Iterator

from chalicelib.store import EventSource, ObjectInfo, ObjectReader, ObjectStore, SignedUrls, StoredObject
from chalicelib.store.base import CompletedPart


class CountingStore(ObjectStore):
    def __init__(self, inner: ObjectStore) -> None:
        super().__init__()
        self.inner = inner
        self.calls: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def uri(self) -> str:
        return self.inner.uri

    @property
    def event_source(self) -> EventSource:
        return self.inner.event_source

    @property
    def signed_urls(self) -> SignedUrls | None:
        return self.inner.signed_urls

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        self.calls["GET"] += 1
        return self.inner.get(key, if_none_match=if_none_match)

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        self.calls["GET"] += 1
        return self.inner.open(key, start=start, length=length)

    def head(self, key: str) -> ObjectInfo:
        self.calls["HEAD"] += 1
        return self.inner.head(key)

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        self.calls["PUT"] += 1
        return self.inner.put(key, body, if_none_match=if_none_match, if_match=if_match,
                              content_type=content_type)

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        self.calls["DELETE"] += 1
        self.inner.delete(key, if_match=if_match)
        return True

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        self.calls["LIST"] += 1  # one LIST call (the S3 adapter pages by 1000 inside it)
        return self.inner.list(prefix, start_after=start_after, limit=limit)

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

    def complete_multipart(self, key: str, upload_id: str, parts: builtins.list[CompletedPart]) -> ObjectInfo:
        return self.inner.complete_multipart(key, upload_id, parts)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.inner.abort_multipart(key, upload_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
