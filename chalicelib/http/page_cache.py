"""A response cache for the pages whose answer never changes while a server runs: the landing pages,
STAC conformance, the OpenAPI document, ``/health``. ``stacflow serve`` answers them from here
without running the app (no Chalice dispatch, no middleware chain): precomputed bytes, an ``ETag``
and ``304 Not Modified`` for a matching ``If-None-Match``.

What may be cached, and under which key, is decided so that a cached answer is always the one the
app would give to that very request:

- A route opts in with ``@shared_page``: its answer depends on the request and the process's
  configuration only (the catalog configuration is packaged code), never on the caller or the store.
- That promise is checked on every fill: an answer whose request authenticated a caller
  (``auth.caller``) or made a store request is not kept, nor is anything but a 200 without
  ``Set-Cookie``. So a page that reads the store (``/stac/collections``, whose answer changes on a
  publication) is never served from here even if marked by mistake.
- The key is the whole request: method, target (path and query), the peer's address and every
  header but the few no page reads (``IGNORED``). Credentials are part of it, so one caller's answer
  is never another's; keys are SHA-256 digests, so no token stays in memory.
- It is bound to one ``Settings`` object (the CLI reconfigures once, before serving): new settings,
  new cache.

Bounded: ``STACFLOW_PAGE_CACHE`` entries (default 256; 0 turns it off) of at most ``MAX_BODY``
bytes each, least recently used evicted first.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_stacflow_shared_page"
MAX_BODY = 64 * 1024  # bytes: the OpenAPI document (the largest shared page) is ~17 KB
# Headers that no page's answer reads: the correlation id (echoed per request, never cached), the
# cache validators handled here, and transport or browser hints.
IGNORED = frozenset({
    "x-request-id", "if-none-match", "if-modified-since", "cache-control", "pragma", "connection",
    "keep-alive", "te", "user-agent", "accept-encoding", "dnt", "upgrade-insecure-requests", "priority",
    "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user", "sec-ch-ua", "sec-ch-ua-mobile",
    "sec-ch-ua-platform", "content-length"})
# Response headers never stored: the per-request ones are written afresh on every answer.
_PER_REQUEST = frozenset({"x-request-id", "content-length", "date", "server", "etag"})


def shared_page(view: F) -> F:
    """Mark a view whose answer depends on the request and the configuration only (see module doc)."""
    setattr(view, _MARK, True)
    return view


def is_shared(view: Any) -> bool:
    return bool(getattr(view, _MARK, False))


@dataclass(frozen=True)
class CachedPage:
    """A cached answer: the status line's code, its headers (those that do not change per request)
    and body, and the body's strong ETag."""

    route: str  # the route template, for the access line
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str
    # The header lines that are the same on every answer, as ``send_header`` would write them: the
    # page's own, its ETag and length; and of a 304, which has no body: all but its type, its ETag.
    head: bytes = field(init=False, repr=False)
    not_modified_head: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        etag = ("ETag", self.etag)
        object.__setattr__(self, "head", _lines([*self.headers, etag, ("Content-Length", str(len(self.body)))]))
        object.__setattr__(self, "not_modified_head",
                           _lines([*(h for h in self.headers if h[0].lower() != "content-type"), etag]))


def _lines(headers: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1", "strict")


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (RFC 9110: weak comparison, ``*`` matches any)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def request_key(method: str, target: str, peer: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The digest of everything a shared page's answer may depend on in the request."""
    text = [f"{method} {target}\n{peer}\n"]
    for name, value in headers:
        lower = name.lower()
        if lower not in IGNORED:
            text.append(f"{lower}:{value}\n")
    return hashlib.sha256("".join(text).encode("utf-8", "surrogateescape")).digest()


def cacheable(status: int, headers: dict[str, Any], body: bytes | None, request: Any) -> bool:
    """Whether an answer the app just gave may be shared (see module doc): a 200 without cookies, of
    bounded size, whose request asked neither who the caller is nor anything of the store."""
    from . import auth
    from .observe import STORE_REQUESTS
    return (status == 200 and body is not None and len(body) <= MAX_BODY
            and not any(name.lower() == "set-cookie" for name in headers)
            and getattr(request, auth.PRINCIPAL, None) is None
            and getattr(request, STORE_REQUESTS, None) == 0)


def page(route: str, status: int, headers: dict[str, Any], body: bytes) -> CachedPage:
    kept = tuple((name, one) for name, value in headers.items() if name.lower() not in _PER_REQUEST
                 for one in (value if isinstance(value, list) else (value,)))
    return CachedPage(route, status, kept, body, etag_of(body))


class PageCache:
    """The bounded LRU map from request keys to pages, tied to one settings object."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._pages: OrderedDict[bytes, CachedPage] = OrderedDict()
        self._lock = threading.Lock()
        self._bound_to: object = None

    def _check(self, settings: object) -> None:
        if settings is not self._bound_to:
            self._pages.clear()
            self._bound_to = settings

    def get(self, key: bytes, settings: object) -> CachedPage | None:
        with self._lock:
            self._check(settings)
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def put(self, key: bytes, settings: object, found: CachedPage) -> None:
        if self.entries <= 0:
            return
        with self._lock:
            self._check(settings)
            self._pages[key] = found
            self._pages.move_to_end(key)
            while len(self._pages) > self.entries:
                self._pages.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pages)
