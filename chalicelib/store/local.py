"""Local-directory adapter: the embedded default.

Writes go to a temporary file and are renamed into place, so readers never see a
partial object and a crash leaves the old version. Create-only writes use
``os.link`` (atomic, fails if the target exists); compare-and-swap writes and
deletes hold an ``flock`` on one of a fixed set of lock files, so they are safe
across threads *and* processes sharing the directory.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import quote

from .base import (CREATED, Change, CompletedPart, InvalidKey, NotFound, NotModified, ObjectInfo, ObjectStore,
                   PreconditionFailed, StoredObject, check_key)

_INTERNAL = ".stacflow"  # locks, signing secret, multipart parts: never listed
_TMP = ".tmp-"
_LOCK_STRIPES = 64


def _etag(st: os.stat_result) -> str:
    # Every write is a rename of a fresh file, so (inode, mtime, size) changes with each version.
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key=key, etag=_etag(st), size=st.st_size, last_modified=st.st_mtime)


class LocalStore(ObjectStore):
    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        self.fsync = fsync
        (self.root / _INTERNAL / "locks").mkdir(parents=True, exist_ok=True)
        self._thread_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._secret: bytes | None = None

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == _INTERNAL or key.rsplit("/", 1)[-1].startswith(_TMP):
            raise InvalidKey(f"reserved object key: {key!r}")
        return self.root / key

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        with self._thread_locks[stripe]:  # flock is per open file, not per thread
            with open(self.root / _INTERNAL / "locks" / str(stripe), "a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if if_none_match is not None and if_none_match == _etag(st):
                    raise NotModified(key)
                body = fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None
        return StoredObject(key=key, body=body, etag=_etag(st), last_modified=st.st_mtime)

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        if not path.is_file():
            raise NotFound(key)
        return _info(key, st)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        # Walk only the deepest directory that can hold the prefix, then sort as S3 does.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base_dir if base_dir else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            if not rel:
                dirnames[:] = [d for d in dirnames if d != _INTERNAL]
            for name in filenames:
                if name.startswith(_TMP):
                    continue
                key = rel + name
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        keys.sort()
        count = 0
        for key in keys:
            if limit is not None and count >= limit:
                return
            try:
                st = (self.root / key).stat()
            except FileNotFoundError:
                continue  # deleted while listing
            count += 1
            yield _info(key, st)

    # -- writes ----------------------------------------------------------------------
    def _mkdir_parent(self, path: Path) -> None:
        # S3 lets "a" be an object and a prefix at once; a directory tree cannot.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKey(f"a parent of {path.relative_to(self.root).as_posix()!r} is an object, "
                             "not a folder") from None

    def _write_tmp(self, path: Path, body: bytes) -> Path:
        self._mkdir_parent(path)
        tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(body)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        return tmp

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        path = self._path(key)
        tmp = self._write_tmp(path, body)
        try:
            if if_none_match:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(key) from None
                return _info(key, path.stat())
            with self._locked(key):
                if if_match is not None:
                    try:
                        current = _etag(path.stat())
                    except FileNotFoundError:
                        raise PreconditionFailed(key) from None
                    if current != if_match:
                        raise PreconditionFailed(key)
                os.replace(tmp, path)
                return _info(key, path.stat())
        except IsADirectoryError:
            raise InvalidKey(f"{key!r} is a folder of other objects") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        path = self._path(key)
        with self._locked(key):
            try:
                if if_match is not None and _etag(path.stat()) != if_match:
                    raise PreconditionFailed(key)
                path.unlink()
            except FileNotFoundError:
                if if_match is not None:
                    raise PreconditionFailed(key) from None
                return False
        return True

    # -- signed URLs: the local stand-in for S3 presigning, served by the /files route --
    def _signing_key(self) -> bytes:
        if self._secret is None:
            path = self.root / _INTERNAL / "secret"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
            except FileExistsError:
                pass
            for _ in range(100):  # another process may be mid-write
                data = path.read_bytes()
                if len(data) == 32:
                    self._secret = data
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"unreadable signing secret at {path}")
        return self._secret

    def sign(self, claims: dict[str, object], expires: int) -> str:
        payload = dict(claims, exp=int(time.time()) + expires)
        raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        mac = hmac.new(self._signing_key(), raw, hashlib.sha256).digest()[:20]
        return raw.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def verify(self, token: str) -> dict[str, object]:
        """Claims of a token made by ``sign``; raises PermissionError if forged or expired."""
        try:
            raw, mac = token.split(".", 1)
            expected = hmac.new(self._signing_key(), raw.encode(), hashlib.sha256).digest()[:20]
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
            claims = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (ValueError, TypeError):
            raise PermissionError("malformed signature") from None
        if not hmac.compare_digest(expected, given):
            raise PermissionError("bad signature")
        if claims.get("exp", 0) < time.time():
            raise PermissionError("signature expired")
        return claims

    def _signed_url(self, claims: dict[str, object], expires: int, base_url: str | None) -> str:
        if not base_url:
            raise ValueError("the local store needs the service's base URL to sign a URL")
        return f"{base_url.rstrip('/')}/files/{quote(self.sign(claims, expires))}"

    def presign_get(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        check_key(key)
        return self._signed_url({"m": "GET", "k": key}, expires, base_url)

    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        check_key(key)
        return self._signed_url({"m": "PUT", "k": key}, expires, base_url)

    # -- multipart: parts are files under .stacflow/multipart/<upload id>/ ----------------
    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise InvalidKey(f"invalid upload id: {upload_id!r}")
        return self.root / _INTERNAL / "multipart" / upload_id

    def create_multipart(self, key: str) -> str:
        check_key(key)
        upload_id = uuid.uuid4().hex
        updir = self._upload_dir(upload_id)
        updir.mkdir(parents=True)
        (updir / "key").write_text(key)
        return upload_id

    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str:
        check_key(key)
        return self._signed_url({"m": "PUT", "k": key, "u": upload_id, "p": int(part_number)},
                                expires, base_url)

    def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        updir = self._upload_dir(upload_id)
        if not (updir / "key").is_file() or (updir / "key").read_text() != key:
            raise NotFound(f"no such upload {upload_id} for {key}")
        tmp = updir / f"{_TMP}{uuid.uuid4().hex}"
        tmp.write_bytes(body)
        os.replace(tmp, updir / f"{int(part_number):05d}")
        return f'"{hashlib.md5(body).hexdigest()}"'

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo:
        updir = self._upload_dir(upload_id)
        if not (updir / "key").is_file() or (updir / "key").read_text() != key:
            raise NotFound(f"no such upload {upload_id} for {key}")
        path = self._path(key)
        self._mkdir_parent(path)
        tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                for part in sorted(parts, key=lambda p: p.part_number):
                    data = (updir / f"{part.part_number:05d}").read_bytes()
                    if part.etag.strip('"') != hashlib.md5(data).hexdigest():
                        raise PreconditionFailed(f"part {part.part_number} does not match its ETag")
                    out.write(data)
            with self._locked(key):
                os.replace(tmp, path)
                info = _info(key, path.stat())
        except FileNotFoundError:
            raise NotFound(f"missing part for upload {upload_id}") from None
        except IsADirectoryError:
            raise InvalidKey(f"{key!r} is a folder of other objects") from None
        finally:
            tmp.unlink(missing_ok=True)
        self.abort_multipart(key, upload_id)
        self._notify(Change(CREATED, info.key, info.etag, info.size))
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        updir = self._upload_dir(upload_id)
        if updir.is_dir():
            for child in updir.iterdir():
                child.unlink(missing_ok=True)
            updir.rmdir()
