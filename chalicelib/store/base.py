"""The object-store port: the few primitives every domain module is built on.

Semantics follow S3 so that the S3 adapter is a thin mapping: keys are
"/"-separated strings, ETags are opaque quoted strings, conditional writes are
``If-None-Match: *`` (create-only) and ``If-Match: <etag>`` (compare-and-swap).
"""
from __future__ import annotations

import io
import json
import posixpath
import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence

from .. import observability

from .errors import (InvalidKey, NotFound, NotModified, PreconditionFailed, RangeNotSatisfiable,  # noqa: F401
                     StoreError)

if TYPE_CHECKING:
    from .contention import Backoff

# Change notifications are S3 event names, so local dispatch and S3 share one path.
CREATED = "ObjectCreated:Put"
REMOVED = "ObjectRemoved:Delete"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: float  # epoch seconds


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    etag: str
    last_modified: float

    def json(self) -> Any:
        return json.loads(self.body)


CHUNK = 1 << 20  # streaming reads move 1 MiB at a time


class _Raw(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class ObjectReader(io.RawIOBase):
    """A stream of one object version's bytes ``start .. start + length - 1`` (file-like, binary).

    ``size`` is the whole object's; ``etag`` is that version's, whatever is written meanwhile.
    Memory stays at one chunk whatever the object's size; close it (or use ``with``).
    """

    def __init__(self, key: str, *, etag: str, size: int, last_modified: float, start: int, length: int,
                 raw: _Raw) -> None:
        super().__init__()
        self.key, self.etag, self.size, self.last_modified = key, etag, size, last_modified
        self.start, self.length = start, length
        self._raw, self._left = raw, length

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (all that are left if negative or None), fewer only at the end of the range."""
        want = self._left if size is None or size < 0 else min(size, self._left)
        parts: list[bytes] = []
        while want > 0:
            data = self._raw.read(want)
            if not data:  # a dropped connection must not pass for the end of the object
                raise StoreError(f"{self.key}: stream ended {self._left} bytes early")
            parts.append(data)
            self._left -= len(data)
            want -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def check_range(start: int, length: int | None) -> None:
    if length is not None and (length <= 0 or start < 0):
        raise ValueError(f"invalid range: start={start}, length={length}")


@dataclass(frozen=True)
class Change:
    """One write or delete, as an S3 notification would describe it."""

    event_name: str  # CREATED or REMOVED
    key: str
    etag: str = ""
    size: int = 0


@dataclass(frozen=True)
class EventSource:
    """How S3 notifications name a store's objects: its bucket and key prefix.

    ``bucket=None`` (the local store): a notification from any bucket names a key as it is, so events
    saved from a deployment can be replayed against a local copy (``stacflow replay-events``).
    """

    bucket: str | None
    prefix: str = ""

    def key_for(self, bucket: str, key: str) -> str | None:
        """The store key a notification's bucket and (decoded) object key name, or None: not this store's."""
        if (self.bucket is not None and bucket != self.bucket) or not key.startswith(self.prefix):
            return None
        return key[len(self.prefix):]

    def notification_for(self, key: str) -> tuple[str, str]:
        """The (bucket, object key) that an S3 notification about ``key`` carries."""
        return self.bucket or LOCAL_BUCKET, self.prefix + key


LOCAL_BUCKET = "local"  # the bucket named by the local store's notifications

# Request kinds as S3 bills them: PUT/LIST/MULTIPART (create, part upload, complete) are the $/1,000
# class, GET/HEAD the cheaper class, DELETE and abort are free. PRESIGN is local signing, not a request:
# whoever holds the URL makes the request, directly to S3.
GET, PUT, LIST, HEAD, DELETE, MULTIPART, PRESIGN = "GET", "PUT", "LIST", "HEAD", "DELETE", "MULTIPART", "PRESIGN"
KINDS = (GET, PUT, LIST, HEAD, DELETE, MULTIPART, PRESIGN)


@dataclass(frozen=True)
class Usage:
    """What a store was asked for: requests by kind, and bytes of object bodies read and written."""

    requests: Mapping[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def total(self) -> int:
        """Requests that reach the store (signing a URL is not one)."""
        return sum(n for kind, n in self.requests.items() if kind != PRESIGN)

    def __sub__(self, before: Usage) -> Usage:
        counts = Counter(self.requests)
        counts.subtract(before.requests)
        return Usage({k: n for k, n in sorted(counts.items()) if n}, self.bytes_read - before.bytes_read,
                     self.bytes_written - before.bytes_written)


class Meter:
    """Counts a store's requests by kind and the bytes it moved; every adapter reports here, thread-safe.

    Each request also counts towards the running invocation's ``StoreRequests`` metric.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._read = self._written = 0

    def request(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._requests[kind] += n
        if kind != PRESIGN:
            observability.count("StoreRequests", n)

    def moved(self, *, read: int = 0, written: int = 0) -> None:
        with self._lock:
            self._read += read
            self._written += written

    def usage(self) -> Usage:
        """A snapshot; subtract an earlier one for what happened in between."""
        with self._lock:
            return Usage(dict(sorted(self._requests.items())), self._read, self._written)


class SignedUrls(Protocol):
    """A store's own presigned URLs (``/files/{token}``, answered by the service) where S3 has none."""

    def verify(self, token: str) -> dict[str, Any]:
        """The claims (``m`` method, ``k`` key, ``u``/``p`` upload and part); PermissionError if forged or expired."""

    def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        """Store one part of a multipart upload; returns its ETag."""


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str


_BAD_SEGMENTS = {"", ".", ".."}
_CONTROL = re.compile(r"[\x00-\x1f\\]")


def check_key(key: str) -> str:
    """Reject keys that could escape a prefix or that S3 and a filesystem disagree on."""
    if not isinstance(key, str) or not key or key.startswith("/") or _CONTROL.search(key):
        raise InvalidKey(f"invalid object key: {key!r}")
    if any(seg in _BAD_SEGMENTS for seg in key.split("/")):
        raise InvalidKey(f"invalid object key: {key!r}")
    return key


def join_key(*parts: str) -> str:
    return posixpath.join(*[p.strip("/") for p in parts if p])


class ObjectStore(ABC):
    """Abstract store. Adapters implement the primitives; helpers build on them."""

    # GETs a bulk reader (``stacflow check``) should keep in flight: a network store hides its
    # latency behind parallel requests; reads that are CPU work under the GIL gain nothing from it.
    read_parallelism = 16
    # Whether a caller's independent calls (a write's PUTs, a tail's GETs) go out side by side, on
    # threads: a network store hides its round trips that way. A local directory's call is a few
    # system calls and Python work under the GIL: threads only trade the GIL, and each hand-off
    # costs more wall time than it overlaps (the calls then run one after the other, in order).
    side_by_side = True

    def __init__(self) -> None:
        self._listeners: list[Callable[[Change], None]] = []
        self.meter = Meter()

    # -- primitives -----------------------------------------------------------------
    @property
    @abstractmethod
    def uri(self) -> str:
        """``file:///abs/path`` or ``s3://bucket/prefix``."""

    @property
    @abstractmethod
    def event_source(self) -> EventSource:
        """Where notifications about this store's objects come from (S3's, or the local dispatch's)."""

    @property
    def signed_urls(self) -> SignedUrls | None:
        """What answers the URLs ``presign_*`` gives, when the service must (the local store); None: S3 does."""
        return None

    @abstractmethod
    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        """Raises NotFound, or NotModified when ``if_none_match`` equals the current ETag."""

    @abstractmethod
    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        """Stream the object, or its bytes ``start .. start + length - 1`` (clipped at its end).

        ``start < 0`` (no ``length``) means the last ``-start`` bytes, as HTTP's ``bytes=-N``.
        Only the bytes asked for are fetched (S3 ``Range``, a local seek). Raises NotFound, or
        RangeNotSatisfiable when a range starts at or past the end (on an empty object, any range
        but a suffix).
        """

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Raises NotFound."""

    @abstractmethod
    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo: ...

    @abstractmethod
    def _delete(self, key: str, *, if_match: str | None) -> bool:
        """Returns whether something was deleted."""

    @abstractmethod
    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        """Keys under ``prefix`` in lexicographic order, paginating internally."""

    @abstractmethod
    def url(self, key: str) -> str:
        """The object's native URL (``s3://…`` or ``file://…``)."""

    @abstractmethod
    def presign_get(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        """A URL anyone holding it can GET for ``expires`` seconds."""

    @abstractmethod
    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str: ...

    @abstractmethod
    def create_multipart(self, key: str) -> str:
        """Start a multipart upload; returns its id."""

    @abstractmethod
    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str: ...

    @abstractmethod
    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo: ...

    @abstractmethod
    def abort_multipart(self, key: str, upload_id: str) -> None: ...

    # -- writes notify listeners (local dispatch; S3 relies on bucket notifications) --
    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None,
            content_type: str | None = None, notify: bool = True) -> ObjectInfo:
        """Write ``body``. ``if_none_match=True``: only if absent; ``if_match``: only if the ETag matches.

        ``notify=False`` skips the local listeners (a bulk writer that applies the derived updates
        itself); S3 bucket notifications are not affected.
        """
        check_key(key)
        info = self._put(key, body, if_none_match=if_none_match, if_match=if_match,
                         content_type=content_type)
        if notify:
            self._notify(Change(CREATED, key, info.etag, info.size))
        return info

    def create_entry(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """A create-only ``put`` (PreconditionFailed if ``key`` exists) of an object never rewritten (a log
        entry, a pointer) whose readers take a body that does not parse for one never written. So an adapter may
        place the name before the data is durable and sync both at once: after a crash of the machine,
        an entry whose write was not acknowledged may read empty or cut short. S3 stores it like any
        object (the same one PUT)."""
        return self.put(key, body, if_none_match=True, content_type=content_type)

    @contextmanager
    def entries_together(self) -> Iterator[None]:
        """A block in which this thread's ``create_entry`` calls may be made durable together, as it
        ends (``LocalStore``: one commit for a write's entries). Nothing they wrote counts as
        acknowledged before the block has ended. On S3 each PUT is durable when it returns."""
        yield

    def put_hint(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """An unconditional ``put`` of an object that only spares readers work (a cache validator such
        as a log's tip): after a crash of the machine holding the store it may read as an earlier
        version or be absent, which costs a reader a slower read and nothing else. The local store
        skips its syncs for it; S3 stores it like any object (the same one PUT)."""
        return self.put(key, body, content_type=content_type)

    def for_child_process(self) -> ObjectStore | None:
        """A store over the same objects that a forked process may write through (its own connections and
        locks: nothing shared with this one's), for bulk writers that fork; None (the default, and for any
        wrapper that counts or hooks calls in this process): writes stay in this process."""
        return None

    def put_many(self, entries: Sequence[tuple[str, bytes]], *, workers: int = 16) -> Sequence[ObjectInfo | InvalidKey]:
        """Unconditional writes of many objects, without local notifications (bulk publishing applies
        the derived updates itself); per entry, in order, its info or the ``InvalidKey`` refusing it.

        Each object is written whole or not at all, as by ``put``; the default runs ``workers`` puts
        at once (S3: parallel PUTs on the client's connection pool)."""
        def one(entry: tuple[str, bytes]) -> ObjectInfo | InvalidKey:
            try:
                return self.put(entry[0], entry[1], content_type="application/json", notify=False)
            except InvalidKey as err:
                return err

        if len(entries) <= 1:
            return [one(entry) for entry in entries]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(workers, len(entries))) as pool:
            return list(pool.map(one, entries))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key``; deleting a missing key is not an error (as in S3)."""
        check_key(key)
        if self._delete(key, if_match=if_match):
            self._notify(Change(REMOVED, key))

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        """Stop notifying ``listener`` (a replaced composition root letting go of the store)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, change: Change) -> None:
        for listener in list(self._listeners):
            listener(change)

    # -- conveniences built on the primitives ----------------------------------------
    def get_json(self, key: str) -> Any:
        return self.get(key).json()

    def put_json(self, key: str, doc: Any, **conditions: Any) -> ObjectInfo:
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        return self.put(key, body, content_type="application/json", **conditions)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
            return True
        except NotFound:
            return False

    def update_json(self, key: str, mutate: Callable[[Any], Any], *, default: Callable[[], Any] | None = None,
                    backoff: Backoff | None = None) -> Any:
        """Read-modify-write with compare-and-swap, retried on conflict.

        ``mutate`` gets the current document (or ``default()`` if absent) and returns the
        new one, or ``None`` to leave the object unchanged. Lost swaps are retried after a
        jittered, growing wait (``contention.Backoff``); ``Contention`` once its budget is spent.
        """
        from .contention import DEFAULT

        def attempt() -> Any:
            try:
                current = self.get(key)
                doc, etag = current.json(), current.etag
            except NotFound:
                if default is None:
                    raise
                doc, etag = default(), None
            new = mutate(doc)
            if new is None:
                return doc
            if etag is None:
                self.put_json(key, new, if_none_match=True)
            else:
                self.put_json(key, new, if_match=etag)
            return new

        return (backoff or DEFAULT).run(attempt, f"updating {key}")
