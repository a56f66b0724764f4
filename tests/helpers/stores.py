"""One test double over the object-store port: it counts requests by S3 verb, records them in order,
and runs hooks around each, so that a test can hold a call on an Event (a forced interleaving) or
make it fail (a crash).

Every primitive of the port goes through ``_call``; the port's conveniences (``put_json``,
``update_json``, ``exists``) are built on the primitives, so they are counted and hooked too.
Changes are announced by the wrapped store's listeners: subscribing here or there is the same, and
a write through the wrapper reaches whoever listens to the wrapped store.
"""
from __future__ import annotations

import builtins
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Sequence, TypeVar

from chalicelib.store.base import EventSource, SignedUrls
from chalicelib.store import (Change, CompletedPart, ObjectInfo, ObjectReader, ObjectStore, PreconditionFailed,
                              StoredObject)

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One request: its S3 verb (an ``open`` is a GET; multipart create/complete are POSTs, abort a
    DELETE), its key (a LIST's prefix), and the body a PUT sends or, after it, the body a GET read."""

    verb: str
    key: str
    body: bytes | None = None


Hook = Callable[[str, Call], None]  # (when: "before" | "after", call); may block or raise


class Crash(RuntimeError):
    """The process dies here (as far as the caller can tell)."""


class Pause(NamedTuple):
    reached: threading.Event  # set while the call is held
    release: threading.Event  # set by the test to let the call go on


def _verbs(verbs: str | tuple[str, ...]) -> tuple[str, ...]:
    return (verbs,) if isinstance(verbs, str) else verbs


def _any(call: Call) -> bool:
    return True


class InstrumentedStore(ObjectStore):
    """Wraps ``inner``: ``calls`` counts requests by verb, ``log`` lists them in order, ``written`` and
    ``lost`` count PUTs per key that succeeded or lost their condition, ``hooks`` run around each."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__()
        self.inner = inner
        self.meter = inner.meter  # the wrapped adapter meters what reaches it
        self.read_parallelism = inner.read_parallelism
        self.calls: Counter[str] = Counter()
        self.log: builtins.list[Call] = []
        self.written: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.hooks: builtins.list[Hook] = []
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    # -- holding and failing calls ------------------------------------------------------
    def pause(self, when: str, verbs: str | tuple[str, ...], match: Callable[[Call], bool] = _any, *,
              thread: str | None = None, nth: int = 1, timeout: float = 20) -> Pause:
        """Hold the ``nth`` matching call (counting only those of the thread named ``thread``, if
        given) ``when`` ("before" or "after") it reaches the store, until the test sets ``release``."""
        pause, seen, lock = Pause(threading.Event(), threading.Event()), [0], threading.Lock()
        wanted = _verbs(verbs)

        def hook(at: str, call: Call) -> None:
            if at != when or call.verb not in wanted:
                return
            if thread is not None and threading.current_thread().name != thread:
                return
            with lock:
                if pause.reached.is_set() or not match(call):
                    return
                seen[0] += 1
                if seen[0] != nth:
                    return
                pause.reached.set()
            if not pause.release.wait(timeout):
                raise TimeoutError(f"the test never released {call.verb} {call.key}")

        self.hooks.append(hook)
        return pause

    def fail(self, when: str, verbs: str | tuple[str, ...], match: Callable[[Call], bool] = _any) -> None:
        """The first matching call raises ``Crash`` ``when`` ("before" or "after") it reaches the store."""
        wanted, done, lock = _verbs(verbs), threading.Event(), threading.Lock()

        def hook(at: str, call: Call) -> None:
            if at != when or call.verb not in wanted:
                return
            with lock:
                if done.is_set() or not match(call):
                    return
                done.set()
            raise Crash(f"crash {when} {call.verb} {call.key}")

        self.hooks.append(hook)

    # -- every request goes through here ------------------------------------------------
    def _call(self, call: Call, send: Callable[[], T], read: Callable[[T], bytes | None] | None = None) -> T:
        with self._lock:
            self.calls[call.verb] += 1
            self.log.append(call)
        self._run_hooks("before", call)
        try:
            out = send()
        except PreconditionFailed:
            if call.verb == "PUT":
                with self._lock:
                    self.lost[call.key] += 1
            raise
        if call.verb == "PUT":
            with self._lock:
                self.written[call.key] += 1
        self._run_hooks("after", Call(call.verb, call.key, read(out)) if read else call)
        return out

    def _run_hooks(self, when: str, call: Call) -> None:
        for hook in builtins.list(self.hooks):
            hook(when, call)

    # -- the port ------------------------------------------------------------------------
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
        return self._call(Call("GET", key), lambda: self.inner.get(key, if_none_match=if_none_match),
                          lambda out: out.body)

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        return self._call(Call("GET", key), lambda: self.inner.open(key, start=start, length=length))

    def head(self, key: str) -> ObjectInfo:
        return self._call(Call("HEAD", key), lambda: self.inner.head(key))

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        return self._call(Call("PUT", key, body), lambda: self.inner._put(
            key, body, if_none_match=if_none_match, if_match=if_match, content_type=content_type))

    def create_entry(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        return self._call(Call("PUT", key, body), lambda: self.inner.create_entry(key, body, content_type=content_type))

    def put_hint(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        return self._call(Call("PUT", key, body), lambda: self.inner.put_hint(key, body, content_type=content_type))

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        return self._call(Call("DELETE", key), lambda: self.inner._delete(key, if_match=if_match))

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        # Read to the end before "after" hooks run: a LIST has answered once its keys are known.
        listed = self._call(Call("LIST", prefix), lambda: builtins.list(
            self.inner.list(prefix, start_after=start_after, limit=limit)))
        return iter(listed)

    def url(self, key: str) -> str:
        return self.inner.url(key)

    def presign_get(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        return self.inner.presign_get(key, expires=expires, base_url=base_url)

    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        return self.inner.presign_put(key, expires=expires, base_url=base_url)

    def create_multipart(self, key: str) -> str:
        return self._call(Call("POST", key), lambda: self.inner.create_multipart(key))

    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str:
        return self.inner.presign_part(key, upload_id, part_number, expires=expires, base_url=base_url)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo:
        return self._call(Call("POST", key), lambda: self.inner.complete_multipart(key, upload_id, parts))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._call(Call("DELETE", key), lambda: self.inner.abort_multipart(key, upload_id))

    # -- one set of listeners: the wrapped store's ---------------------------------------
    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self.inner.subscribe(listener)

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        self.inner.unsubscribe(listener)

    def _notify(self, change: Change) -> None:
        self.inner._notify(change)

    def __getattr__(self, name: str) -> Any:
        """What the adapter offers beyond the port (a local store's signing, an S3 store's bucket)."""
        if name == "inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def etags(store: ObjectStore, prefix: str = "") -> dict[str, str]:
    """Every object's ETag by key: the same before and after a call means it wrote nothing."""
    return {info.key: info.etag for info in store.list(prefix)}
