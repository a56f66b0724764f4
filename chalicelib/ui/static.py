"""Static web UIs (STAC Browser, MLflow's UI): one server for a built single-page app under a URL prefix.

A site's files come from a ``Source``: a local directory (``build/ui/<name>/`` under ``stacflow
serve``) or the store's ``ui/<name>/`` prefix (AWS: ``stacflow publish-ui`` uploads the build
there, so the Lambda package carries none of it). ``serve`` answers GET/HEAD with the file's media
type, an ETag (304 on ``If-None-Match``), ``immutable`` caching for content-hashed file names and
``no-cache`` for everything else (``index.html``), and, for history-mode apps, ``index.html`` for
a missing path that a browser navigates to. Paths are decoded once and checked segment by segment:
no ``..``, ``.``, empty segments, backslashes or control characters ever reach a source.
"""
from __future__ import annotations

import hashlib
import mimetypes
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from ..bounds import RESPONSE_BUDGET, payload_size
from ..store import NotFound, NotModified, ObjectStore, join_key

INDEX = "index.html"
STORE_PREFIX = "ui"  # the store's ``ui/<name>/`` holds a published site
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MAX_SEGMENTS = 16
MAX_PATH = 1024

# A content hash in the file name (webpack/vite: ``main.c2f5f8d4.js``, ``7720.1cbd9501.chunk.js``,
# ``pdf.worker.min.16b289c2599c81a29db9.mjs``, ``app-3f9a1c2e.css``): 8+ hex digits between separators.
_HASHED = re.compile(r"[.-][0-9a-f]{8,}(?:\.[A-Za-z0-9]+)*\.[A-Za-z0-9]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Types the web needs, whatever the host's mime.types says (Debian maps .js oddly on some hosts).
_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".ico": "image/x-icon", ".webp": "image/webp", ".woff": "font/woff",
    ".woff2": "font/woff2", ".ttf": "font/ttf", ".eot": "application/vnd.ms-fontobject",
    ".txt": "text/plain; charset=utf-8", ".wasm": "application/wasm", ".xml": "application/xml",
}
_TEXT = ("text/", "application/json", "application/manifest+json", "image/svg+xml", "application/xml")


def media_type(name: str) -> str:
    """The web's type for ``name``; an unknown binary type is ``application/octet-stream`` (a type
    API Gateway always passes as binary)."""
    known = _TYPES.get(Path(name).suffix.lower())
    if known:
        return known
    guessed = mimetypes.guess_type(name)[0] or ""
    return guessed if is_text(guessed) else "application/octet-stream"


def binary_types() -> list[str]:
    """The non-text types ``media_type`` answers: the API must declare them binary (base64 bodies)."""
    return sorted({t for t in _TYPES.values() if not is_text(t)} | {"application/octet-stream"})


def is_text(content_type: str) -> bool:
    return content_type.startswith(_TEXT)


def is_hashed(name: str) -> bool:
    return bool(_HASHED.search(name.rsplit("/", 1)[-1]))


class BadPath(ValueError):
    """A request path that could leave the site (``..``, encoded separators, control characters)."""


def clean_path(raw: str) -> str:
    """The site-relative file path of ``raw`` (percent-encoded, as sent): ``""`` for the site's root."""
    if len(raw) > MAX_PATH:
        raise BadPath("path too long")
    segments = raw.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash: the folder itself
    if segments and segments[0] == "":
        segments.pop(0)
    if len(segments) > MAX_SEGMENTS:
        raise BadPath("path too deep")
    out = []
    for segment in segments:
        name = unquote(segment)  # once: "%252e%252e" stays the harmless name "%2e%2e"
        if name in ("", ".", "..") or "/" in name or "\\" in name or _CONTROL.search(name):
            raise BadPath(f"invalid path segment {segment!r}")
        out.append(name)
    return "/".join(out)


@dataclass(frozen=True)
class File:
    """One file of a site: its bytes, or (too big for one Lambda response) a URL to fetch them from."""
    etag: str
    body: bytes | None = None
    location: str | None = None


class Source(Protocol):
    def read(self, path: str, if_none_match: str | None, base_url: str | None = None) -> File | None:
        """The file at ``path`` (clean, site-relative); None if absent. Raises NotModified on a match.

        ``base_url``: the service's, for redirects to the local store's signed ``/files`` URLs."""


@dataclass
class DirectorySource:
    """A site built on this machine (``build/ui/<name>/``). ETags are the content MD5, cached by stat."""
    root: Path
    _etags: dict[str, tuple[int, int, str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self, path: str, if_none_match: str | None, base_url: str | None = None) -> File | None:
        target = self.root / path
        try:
            # The root itself may be a symlink (a build elsewhere); nothing inside it may lead out.
            if target.is_symlink() or not target.resolve().is_relative_to(self.root.resolve()):
                return None
            stat = target.stat()
        except (OSError, ValueError):
            return None
        if not target.is_file():
            return None
        cached = self._etags.get(path)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            if if_none_match == cached[2]:
                raise NotModified(path)
        body = target.read_bytes()
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        with self._lock:
            self._etags[path] = (stat.st_mtime_ns, stat.st_size, etag)
        if if_none_match == etag:
            raise NotModified(path)
        return File(etag, body)


@dataclass
class StoreSource:
    """A site published into the store under ``ui/<name>/`` (AWS). A file whose answer would not fit
    in one Lambda response is redirected to a presigned URL of its object instead."""
    store: ObjectStore
    prefix: str

    def read(self, path: str, if_none_match: str | None, base_url: str | None = None) -> File | None:
        key = join_key(self.prefix, path)
        try:
            info = self.store.head(key)
            if if_none_match == info.etag:
                raise NotModified(key)
            if info.size * 2 > RESPONSE_BUDGET:  # worst case of the escaped or base64 body: read only if it may fit
                return File(info.etag, location=self.store.presign_get(key, base_url=base_url))
            got = self.store.get(key)
        except NotFound:
            return None
        if _envelope_size(got.body, media_type(path)) > RESPONSE_BUDGET:
            return File(got.etag, location=self.store.presign_get(key, base_url=base_url))
        return File(got.etag, got.body)


def _envelope_size(body: bytes, content_type: str) -> int:
    return payload_size(body) if is_text(content_type) else (len(body) + 2) // 3 * 4


@dataclass(frozen=True)
class Site:
    """A built single-page app: its name (``browser``, ``mlflow``), files, and whether it routes in
    history mode (a missing path a browser navigates to gets ``index.html``)."""
    name: str
    source: Source
    history: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    message: str | None = None  # for errors: rendered in the API's error shape at the HTTP edge


def serve(site: Site, method: str, raw_path: str, headers: dict[str, str], base_url: str | None = None) -> Answer:
    """Answer ``method`` (GET or HEAD) for ``raw_path`` (below the site's prefix, percent-encoded).

    ``headers``: the request's, lower-cased names (``if-none-match``, ``accept``).
    """
    try:
        path = clean_path(raw_path)
    except BadPath as err:
        return Answer(400, {}, message=str(err))
    condition = headers.get("if-none-match")
    try:
        served = path or INDEX
        found = site.source.read(served, condition, base_url)
        if found is None and site.history and _navigation(headers):
            served = INDEX
            found = site.source.read(served, condition, base_url)
    except NotModified:
        return Answer(304, {"ETag": condition or "", "Cache-Control": _cache(served)})
    if found is None:
        return Answer(404, {}, message=f"no file {path or INDEX!r} in the {site.name} UI"
                                       + ("" if path else " (not built or not published: see README 'Web UI')"))
    cache = _cache(served)
    if found.location is not None:
        # The redirect is per request (a presigned URL expires); the target carries its own caching.
        return Answer(307, {"Location": found.location, "Cache-Control": "no-store"})
    out = {"Content-Type": media_type(served), "ETag": found.etag, "Cache-Control": cache,
           "X-Content-Type-Options": "nosniff"}
    if served == INDEX:
        out["X-Frame-Options"] = "DENY"
    body = found.body or b""
    return Answer(200, out, b"" if method == "HEAD" else body)


def _cache(served: str) -> str:
    return IMMUTABLE if is_hashed(served) and served != INDEX else REVALIDATE


def _navigation(headers: dict[str, str]) -> bool:
    """A browser loading a page (it asks for HTML), not a script or image whose file is missing:
    those get a 404, not a 200 of HTML that would fail obscurely."""
    return "text/html" in headers.get("accept", "")


def site_source(name: str, ui_dir: Path | None, store: ObjectStore) -> Source:
    """``<ui_dir>/<name>/`` when serving from a directory (``build/ui``), else the store's ``ui/<name>/``."""
    if ui_dir is not None:
        return DirectorySource(ui_dir / name)
    return StoreSource(store, f"{STORE_PREFIX}/{name}")
