"""Local-directory adapter: the embedded default.

Writes go to a temporary file and are renamed into place, so readers never see a
partial object and a crash leaves the old version. Create-only writes use
``os.link`` (atomic, fails if the target exists); compare-and-swap writes and
deletes hold an ``flock`` on one of a fixed set of lock files, so they are safe
across threads *and* processes sharing the directory.

A write is acknowledged once it would survive a crash of the machine: the temporary file's data
is synced (``fdatasync``) before its name is placed, and the folder holding the name is synced
after (folders the write had to create, in their parents too). Writers into one folder share its
syncs (``_FolderSyncs``). ``create_entry`` (a log entry, whose readers take a body that does not
parse for one never written) places the name first and then syncs data and folder: one journal
commit where metadata is committed in order (ext4 ``data=ordered``, xfs: a crash exposes no stale
blocks, only an empty or shortened file); inside ``entries_together`` (a tracking write's entries)
every entry's name is placed first, then all their data and folders are synced side by side as the
block ends, before the write returns. ``put_hint`` (a log's tip: a validator readers confirm, and
they die with the machine) skips the syncs. A file a hint renamed over keeps a temporary name until a
thread of the store frees it, after the write has returned (freeing unsynced data waits for the disk).

ETags are the MD5 of the content, as S3's (single-part) are, so they change whenever the
content does, on any filesystem: inode numbers are reused and timestamps can be coarser than
the time between two writes. The digest is computed while writing and kept in an extended
attribute of the file itself (``user.stacflow.md5``), so it is renamed into place with the
content and a read costs one extra syscall. A file without it (written by another tool or an
older version, or copied without xattrs) is hashed once on first read and stamped; on a
filesystem without user xattrs every read hashes the content.
"""
from __future__ import annotations

import base64
import copy
import errno
import fcntl
import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
import uuid
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator, MutableSequence, Sequence
from urllib.parse import quote

from .base import (CHUNK, CREATED, DELETE, GET, HEAD, LIST, MULTIPART, PRESIGN, PUT, Change, CompletedPart,
                   EventSource, InvalidKey, Meter, NotFound, NotModified, ObjectInfo, ObjectReader, ObjectStore,
                   PreconditionFailed, RangeNotSatisfiable, StoredObject, check_key, check_range)

_PAGE = 1000  # keys per LIST page, as S3's ListObjectsV2

_INTERNAL = ".stacflow"  # locks, signing secret, multipart parts: never listed
_TMP = ".tmp-"
_LOCK_STRIPES = 64
_FREE_AFTER_S = 0.05  # the reaper's wait before a round (a tip is replaced ~4 times in a tracked run's ~50 ms)
_ROUND = 8192  # files put_many holds open before syncing and linking them (at most half of RLIMIT_NOFILE)
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_MD5_XATTR = "user.stacflow.md5"
_SECRET_BYTES = 32
MIN_SIGNING_KEY = 16  # bytes of a configured signing key (HMAC-SHA256)
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP}
_FOLDER = (IsADirectoryError, NotADirectoryError)


def _md5_stamp(digest: str, st: os.stat_result) -> bytes:
    # Size and mtime tie the digest to this content should another tool rewrite the file in place.
    return f"{digest} {st.st_size} {st.st_mtime_ns}".encode()


def _md5_of_fd(fd: int) -> str:
    md5, offset = hashlib.md5(), 0
    while chunk := os.pread(fd, CHUNK, offset):
        md5.update(chunk)
        offset += len(chunk)
    return md5.hexdigest()


class LocalStore(ObjectStore):
    read_parallelism = 1  # a read is mostly Python work: threads would only trade the GIL
    side_by_side = False  # likewise a write's calls (the syncs they wait for go side by side: ``_at_once``)

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True,
                 signing_key: bytes | None = None) -> None:
        """``signing_key``: the HMAC key of signed URLs (else one generated in the store, shared by
        every process that opens it)."""
        super().__init__()
        self.root = Path(root).resolve()
        self._root = str(self.root)  # single objects' paths are strings: a Path costs ~2 µs each step
        self.fsync = fsync
        (self.root / _INTERNAL / "locks").mkdir(parents=True, exist_ok=True)
        self._thread_state()
        if signing_key is not None and len(signing_key) < MIN_SIGNING_KEY:
            raise ValueError(f"the signing key must be at least {MIN_SIGNING_KEY} bytes")
        self._secret: bytes | None = signing_key
        self._xattrs = hasattr(os, "getxattr")  # false on macOS and on filesystems without user xattrs
        self._unnamed: bool | None = None  # O_TMPFILE files work here (probed on the first put_many)

    def _thread_state(self) -> None:
        """The locks and what they guard, this process's own (``for_child_process`` makes them anew)."""
        self._thread_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._lock_files = _LockFiles(f"{self.root}/{_INTERNAL}/locks")
        self._folder_syncs = _FolderSyncs()
        self._lock = threading.Lock()
        self._new_folders: set[str] = set()  # made by a write whose parent sync has not ended yet
        self._together = threading.local()  # ``pending``: this thread's entries to sync as its block ends
        self._sync_pool: ThreadPoolExecutor | None = None  # made on first use (``_at_once``)
        self._reaper: ThreadPoolExecutor | None = None  # frees replaced files (``_replace``)
        self._to_free: list[str] = []  # replaced files awaiting the reaper's next round
        self._freeing = False  # a round is scheduled: later files join it (no hand-off each)

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def for_child_process(self) -> LocalStore:
        """Files need no connection: a copy (a subclass's own state included) with its own locks
        (``_thread_state``), meter and no listeners, none of which another thread can hold when the process
        forks (the folder's lock files still serialise conditional writes across processes)."""
        child = copy.copy(self)
        child._thread_state()
        child.meter = Meter()
        child._listeners = []
        return child

    @property
    def event_source(self) -> EventSource:
        return EventSource(None)

    @property
    def signed_urls(self) -> LocalStore:
        return self

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The file of ``key`` (checked) as a string."""
        return f"{self._root}/{self._checked(key)}"

    def _checked(self, key: str) -> str:
        check_key(key)
        if key.split("/", 1)[0] == _INTERNAL or key.rsplit("/", 1)[-1].startswith(_TMP):
            raise InvalidKey(f"reserved object key: {key!r}")
        return key

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        with self._thread_locks[stripe]:  # flock is per open file, not per thread
            fd = self._lock_files.fd(stripe)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    # -- ETags: content MD5 kept in an xattr -------------------------------------------
    def _stamped(self, target: int | str | Path, st: os.stat_result) -> str | None:
        """The ETag stamped on the file (fd or path) if it belongs to the content ``st`` describes."""
        if not self._xattrs:
            return None
        try:
            stamp = os.getxattr(target, _MD5_XATTR)
        except OSError as err:
            if err.errno in _NO_XATTR:
                self._xattrs = False
            return None
        digest = stamp.split(b" ", 1)[0].decode("ascii", "replace")
        return f'"{digest}"' if stamp == _md5_stamp(digest, st) else None

    def _stamp(self, fd: int, digest: str, st: os.stat_result) -> None:
        if self._xattrs:
            try:
                os.setxattr(fd, _MD5_XATTR, _md5_stamp(digest, st))
            except OSError as err:  # read-only, someone else's file: it is hashed again next time
                if err.errno in _NO_XATTR:
                    self._xattrs = False

    def _etag_of_fd(self, fd: int, st: os.stat_result, body: bytes | None = None) -> str:
        """ETag of the open file: its stamp, else the MD5 of ``body`` (its content) or of the file."""
        etag = self._stamped(fd, st)
        if etag is None:
            digest = hashlib.md5(body).hexdigest() if body is not None else _md5_of_fd(fd)
            # Files are never rewritten in place, so the inode behind ``fd`` keeps this content.
            self._stamp(fd, digest, st)
            etag = f'"{digest}"'
        return etag

    def _current(self, path: str | Path) -> tuple[str, os.stat_result]:
        """(ETag, stat) of the file at ``path``; cheap when it is stamped. Raises FileNotFoundError."""
        st = os.stat(path)
        etag = self._stamped(path, st) if not _is_dir(st) else None
        if etag is not None:
            return etag, st
        # Unstamped, or replaced between the two calls: read through one descriptor.
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if _is_dir(st):
                raise IsADirectoryError(path)
            return self._etag_of_fd(fh.fileno(), st), st

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        path = self._file(key)  # an invalid key never reaches S3 either
        self.meter.request(GET)  # what the same call costs on S3
        # A bare descriptor: a file object would add an ioctl, a seek and a stat to every read.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, *_FOLDER):
            raise NotFound(key) from None
        try:
            st = os.fstat(fd)
            if _is_dir(st):
                raise NotFound(key)
            etag = self._stamped(fd, st)
            if etag is not None and if_none_match == etag:
                raise NotModified(key)
            body = _read_to_end(fd, st.st_size)
            if etag is None:
                etag = self._etag_of_fd(fd, st, body)
                if if_none_match == etag:
                    raise NotModified(key)
        finally:
            os.close(fd)
        self.meter.moved(read=len(body))
        return StoredObject(key=key, body=body, etag=etag, last_modified=st.st_mtime)

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        check_range(start, length)
        path = self._path(key)
        self.meter.request(GET)  # what the same call costs on S3
        try:
            fh: IO[bytes] = open(path, "rb")
        except (FileNotFoundError, *_FOLDER):
            raise NotFound(key) from None
        try:
            st = os.fstat(fh.fileno())
            if _is_dir(st):
                raise NotFound(key)
            size = st.st_size
            if start < 0:  # suffix: the last -start bytes (all of them, if fewer)
                first = max(0, size + start)
            elif start >= size and (start or length is not None):
                raise RangeNotSatisfiable(key, size)
            else:
                first = start
            count = size - first if length is None else min(length, size - first)
            etag = self._etag_of_fd(fh.fileno(), st)
            fh.seek(first)
            self.meter.moved(read=count)  # what S3 sends for the range, read or not
            return ObjectReader(key, etag=etag, size=size, last_modified=st.st_mtime, start=first,
                                length=count, raw=fh)
        except BaseException:
            fh.close()
            raise

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)  # an invalid key never reaches S3 either
        self.meter.request(HEAD)  # what the same call costs on S3
        try:
            etag, st = self._current(path)
        except (FileNotFoundError, *_FOLDER):
            raise NotFound(key) from None
        return ObjectInfo(key=key, etag=etag, size=st.st_size, last_modified=st.st_mtime)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        self.meter.request(LIST)  # what the same call costs on S3
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
            if count and count % _PAGE == 0:
                self.meter.request(LIST)  # the next page
            try:
                etag, st = self._current(f"{self._root}/{key}")
            except (FileNotFoundError, *_FOLDER):
                continue  # deleted while listing
            count += 1
            yield ObjectInfo(key=key, etag=etag, size=st.st_size, last_modified=st.st_mtime)

    # -- writes ----------------------------------------------------------------------
    def _mkdir_parent(self, path: Path) -> None:
        # S3 lets "a" be an object and a prefix at once; a directory tree cannot.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKey(f"a parent of {path.relative_to(self.root).as_posix()!r} is an object, "
                             "not a folder") from None

    def _write_tmp(self, path: str, chunks: Iterator[bytes] | Sequence[bytes], durable: bool = True,
                   allocate: int = 0) -> tuple[str, ObjectInfo, Sequence[str]]:
        """A stamped temporary file beside ``path`` holding ``chunks``, its data durable (``fsync`` on,
        ``durable``), and ``path``'s folder made; its info under ``path``'s key, and the folders to sync
        once the name is placed (``_sync_folders``): its own, and the parents of those it made.

        ``allocate``: the body's size, for a file renamed over another with its data not synced (a
        hint): its blocks are allocated first, since ext4 (``auto_da_alloc``) writes out a file renamed
        over another while its blocks are still to be allocated, in the rename (0.3-1.5 ms here)."""
        folder = os.path.dirname(path)
        made: Sequence[str] = ()
        tmp = f"{folder}/{_TMP}{uuid.uuid4().hex}"
        md5 = hashlib.md5()
        # A bare descriptor, as ``open(tmp, "wb")`` opens it, without a file object's stat, ioctl and seek.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o666)
        except (FileNotFoundError, NotADirectoryError):  # the folder is new (no stat on the common path)
            made = self._make_folders(path)
            fd = os.open(tmp, flags, 0o666)
        try:
            try:
                if allocate:
                    _allocate(fd, allocate)
                for chunk in chunks:
                    _write_all(fd, chunk)
                    md5.update(chunk)
                st = os.fstat(fd)
                self._stamp(fd, md5.hexdigest(), st)
                if self.fsync and durable:
                    # The data (and the size that finds it) before the name: a crash after the link
                    # must not leave the key naming a short file. The stamp needs no sync: a file
                    # without it is hashed again on its first read.
                    _sync_data(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink(tmp)
            raise
        key = path[len(self._root) + 1:]  # made by ``_file``
        folders = [folder] + [os.path.dirname(m) for m in made or self._unsynced(folder)] if self.fsync else []
        return (tmp, ObjectInfo(key=key, etag=f'"{md5.hexdigest()}"', size=st.st_size, last_modified=st.st_mtime),
                folders)

    def _make_folders(self, path: str) -> Sequence[str]:
        """Make ``path``'s folder and any missing above it; the folders made (until their entries are
        synced, another writer into them syncs those too: ``_unsynced``)."""
        missing = []
        folder = os.path.dirname(path)
        while folder != self._root and not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        if missing and self.fsync:
            with self._lock:
                self._new_folders.update(missing)
        self._mkdir_parent(Path(path))
        return missing

    def _unsynced(self, folder: str) -> Sequence[str]:
        """``folder`` and its ancestors whose entries another writer of this process made and has not
        synced yet: a write into them syncs those entries too rather than acknowledge before it."""
        if not self._new_folders:
            return ()
        with self._lock:
            found = []
            while folder != self._root and folder in self._new_folders:
                found.append(folder)
                folder = os.path.dirname(folder)
            return found

    def _sync_folders(self, *chains: Sequence[str], data: Sequence[str] = ()) -> None:
        """Make placed names durable: for each name, its folder and each folder made for it in its
        parent (a chain, from ``_write_tmp``), each folder once, and the data of the files ``data``
        (entries named before their data was synced). All after the names were placed and all at once,
        so that one journal commit (and one device flush) can cover them together."""
        # The files are opened here: a thread that syncs one makes one system call and holds the
        # interpreter lock once (an open and a close each taken it back, against the other syncs').
        fds: list[int] = []
        try:
            for path in data:
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            syncs = [*(functools.partial(_sync_data, fd) for fd in fds),
                     *(functools.partial(self._folder_syncs.sync, folder)
                       for folder in dict.fromkeys(folder for chain in chains for folder in chain))]
            if data:
                self._at_once(syncs)
            else:  # a put's name: its folder (rarely more), on this thread
                for sync in syncs:
                    sync()
        finally:
            for fd in fds:
                os.close(fd)
        if self._new_folders and any(len(chain) > 1 for chain in chains):
            with self._lock:  # each folder after the first is the parent of the one before it: all synced
                for chain in chains:
                    self._new_folders.difference_update(chain[:-1])

    @contextmanager
    def entries_together(self) -> Iterator[None]:
        """This thread's ``create_entry`` calls inside the block place their names at once; as the block
        ends, before it returns, their data and each of their folders (once) are synced side by side: a
        write of several entries costs one journal commit (and one sync of a folder they share), not one
        each. Their change events follow. If the block raises, nothing in it was acknowledged: nothing
        more is synced. A nested block is part of the outer one."""
        if not self.fsync or getattr(self._together, "pending", None) is not None:
            yield
            return
        pending: list[tuple[str, Sequence[str], Change]] = []
        self._together.pending = pending
        try:
            yield
        finally:
            self._together.pending = None
        self._entries_durable(pending)

    def _entries_durable(self, placed: Sequence[tuple[str, Sequence[str], Change]]) -> None:
        """Sync placed entries (path, folder chain, event): their data and their folders; then tell."""
        self._sync_folders(*(folders for _, folders, _ in placed), data=[path for path, _, _ in placed])
        for _, _, change in placed:
            self._notify(change)

    def _at_once(self, syncs: Sequence[Callable[[], object]]) -> None:
        """Run sync calls side by side (each is one system call that waits for the disk: threads cost a
        hand-off each, but concurrent syncs share one commit where one after the other would each wait
        for their own); the first error is raised once every call has ended."""
        if len(syncs) < 2:
            for call in syncs:
                call()
            return
        with self._lock:
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync")
            pool = self._sync_pool
        futures = [pool.submit(call) for call in syncs[1:]]
        try:
            syncs[0]()
        finally:
            wait(futures)
        for future in futures:
            future.result()

    def create_entry(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Linked in place, then its data and its folder synced together: one journal commit where the
        filesystem commits metadata in order (ext4, xfs), instead of one for the data and one for the name."""
        path = self._file(key)
        self.meter.request(PUT)  # what the same call costs on S3
        self.meter.moved(written=len(body))
        tmp, info, folders = self._write_tmp(path, [body], durable=False)
        try:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PreconditionFailed(key) from None
            except IsADirectoryError:
                raise InvalidKey(f"{key!r} is a folder of other objects") from None
        finally:
            _unlink(tmp)
        placed = (path, folders, Change(CREATED, key, info.etag, info.size))
        if not self.fsync:
            self._notify(placed[2])
            return info
        pending = getattr(self._together, "pending", None)
        if pending is not None:
            pending.append(placed)  # synced as the block ends (``entries_together``)
        else:
            self._entries_durable([placed])
        return info

    def put_hint(self, key: str, body: bytes, *, content_type: str | None = None) -> ObjectInfo:
        check_key(key)
        info = self._put(key, body, if_none_match=False, if_match=None, content_type=content_type, durable=False)
        self._notify(Change(CREATED, key, info.etag, info.size))
        return info

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None, durable: bool = True) -> ObjectInfo:
        path = self._file(key)  # an invalid key never reaches S3 either
        self.meter.request(PUT)  # what the same call costs on S3
        self.meter.moved(written=len(body))
        replaces_unsynced = not if_none_match and not (self.fsync and durable)
        tmp, info, folders = self._write_tmp(path, [body], durable, allocate=len(body) if replaces_unsynced else 0)
        renamed = False
        try:
            if if_none_match:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(key) from None
            else:
                self._replace(key, tmp, path, if_match, defer_free=replaces_unsynced)
                renamed = True  # the temporary name is gone: no unlink to fail
        except IsADirectoryError:
            raise InvalidKey(f"{key!r} is a folder of other objects") from None
        finally:
            if not renamed:
                _unlink(tmp)
        if durable:
            self._sync_folders(folders)  # the new name, before the write is acknowledged
        return info

    def _replace(self, key: str, tmp: str, path: str, if_match: str | None, *, defer_free: bool = True) -> None:
        """Rename ``tmp`` over ``path`` (``if_match``: only over that ETag). ``defer_free``: the replaced
        file may have unsynced data (a hint's): it is freed on another thread, since freeing it waits for
        its write-out and the journal (0.1-2 ms, a tip's every write); a durable write's predecessor was
        synced when written, and the rename frees it at once (the hand-off to a thread cost more, ~0.1 ms
        of CPU, than that: a bulk load's shard pages are thousands of such writes)."""
        kept = False
        with self._locked(key):
            if if_match is not None:
                try:
                    current, _ = self._current(path)
                except FileNotFoundError:
                    raise PreconditionFailed(key) from None
                if current != if_match:
                    raise PreconditionFailed(key)
            if defer_free:
                old = f"{os.path.dirname(path)}/{_TMP}{uuid.uuid4().hex}"
                try:
                    os.link(path, old)  # the replaced file keeps a name: the rename does not free it
                    kept = True
                except OSError:  # no such file (the rename refuses a folder, as before)
                    pass
            os.replace(tmp, path)
        if kept:
            self._free_later(old)

    def _free_later(self, path: str) -> None:
        """Free ``path`` on the reaper thread in its next round. Handing work to a thread costs the
        writer a wake-up (a scheduling delay on a loaded machine): one round frees the files of
        the writes that land while it waits, with one hand-off."""
        with self._lock:
            self._to_free.append(path)
            if self._freeing:
                return
            self._freeing = True
        self._later().submit(self._free_round)

    def _free_round(self) -> None:
        time.sleep(_FREE_AFTER_S)  # the next writes' files join this round
        while True:
            with self._lock:
                batch, self._to_free = self._to_free, []
                if not batch:
                    self._freeing = False
                    return
            for path in batch:
                try:
                    _unlink(path)
                except OSError:  # disk space only: the file is never listed or read
                    pass

    def _later(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._reaper is None:
                self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-later")
            return self._reaper

    def put_many(self, entries: Sequence[tuple[str, bytes]], *, workers: int = 4) -> Sequence[ObjectInfo | InvalidKey]:
        """Bulk form of unconditional puts, in rounds of as many files as may be open at once: each body
        goes to an unnamed file in its folder (``O_TMPFILE``; else a named temporary file), one ``syncfs``
        makes the round's data durable (instead of one ``fsync`` each), then each file is linked under its
        key (one directory operation: about half the cost of create + rename), or, where the key exists,
        renamed over it under its lock stripe, and a second ``syncfs`` makes the names durable before the
        round is acknowledged. A crash leaves each key at its old or its new content. The files' ETags are
        not stamped here (two system calls a file, most bulk-loaded items are never read as files): the
        first read of each hashes it and stamps it, as for a file written by another tool."""
        out: list[ObjectInfo | InvalidKey | None] = [None] * len(entries)
        made: set[str] = set()
        todo: list[tuple[int, str, bytes]] = []
        root = str(self.root)
        for n, (key, body) in enumerate(entries):
            try:
                path = f"{root}/{self._checked(key)}"  # ``_path`` as a string: pathlib costs ~10 µs a key
                parent = path.rpartition("/")[0]
                if parent not in made:
                    self._mkdir_parent(Path(path))
                    made.add(parent)
            except InvalidKey as err:
                out[n] = err
                continue
            todo.append((n, path, body))
        if self._unnamed is None:
            self._unnamed = self._unnamed_files_work()
        import resource
        from concurrent.futures import ThreadPoolExecutor
        per_round = max(1, min(_ROUND, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2))
        folders: dict[str, int] = {}
        try:
            with ThreadPoolExecutor(workers) as pool:
                for start in range(0, len(todo), per_round):
                    self._put_round(entries, todo[start:start + per_round], folders, out, pool, workers)
        finally:
            for dfd in folders.values():
                os.close(dfd)
        return out  # type: ignore[return-value]

    def _put_round(self, entries: Sequence[tuple[str, bytes]], chunk: Sequence[tuple[int, str, bytes]],
                   folders: dict[str, int], out: MutableSequence[ObjectInfo | InvalidKey | None],
                   pool: Executor, workers: int) -> None:
        """Write, sync, then place one round of ``put_many``, ``workers`` threads at a time (each on a
        slice: no future per object); ``folders``: open folder descriptors."""
        # n, folder fd, file fd, temporary name (None: unnamed), info; appended as opened: all closed at the end
        opened: list[tuple[int, int, int, str | None, ObjectInfo]] = []
        existing: list[tuple[int, int, str, str, ObjectInfo]] = []

        def folder_fd(folder: str) -> int:
            dfd = folders.get(folder)
            if dfd is None:
                dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                if folders.setdefault(folder, dfd) != dfd:  # another thread opened it first
                    os.close(dfd)
            return folders[folder]

        now = time.time()  # as S3 reports a PUT's (the files' own mtimes are within the round)

        def write(part: Sequence[tuple[int, str, bytes]]) -> None:
            for n, path, body in part:
                dfd = folder_fd(path.rpartition("/")[0])
                tmp = None if self._unnamed else f"{_TMP}{uuid.uuid4().hex}"
                fd = os.open(tmp or ".", (os.O_CREAT | os.O_EXCL if tmp else _O_TMPFILE) | os.O_WRONLY | os.O_CLOEXEC,
                             0o644, dir_fd=dfd)
                try:
                    done = os.write(fd, body)
                    if done < len(body):
                        view = memoryview(body)[done:]
                        while view:
                            view = view[os.write(fd, view):]
                except BaseException:
                    os.close(fd)
                    if tmp is not None:
                        os.unlink(tmp, dir_fd=dfd)
                    raise
                # Not stamped (no fstat, no xattr): its first reader hashes it and stamps it (``_etag_of_fd``).
                opened.append((n, dfd, fd, tmp, ObjectInfo(key=entries[n][0], etag=f'"{hashlib.md5(body).hexdigest()}"',
                                                           size=len(body), last_modified=now)))

        def link(part: Sequence[tuple[int, int, int, str | None, ObjectInfo]]) -> None:
            self.meter.request(PUT, len(part))  # one PUT each on S3
            self.meter.moved(written=sum(entry[4].size for entry in part))
            for n, dfd, fd, tmp, info in part:
                name = info.key.rsplit("/", 1)[-1]
                try:  # a new key: linked in place (fails if the key exists, as a create-only put)
                    os.link(tmp or f"/proc/self/fd/{fd}", name, src_dir_fd=dfd if tmp else None, dst_dir_fd=dfd,
                            follow_symlinks=tmp is None)
                    out[n] = info
                    continue
                except FileExistsError:
                    pass
                named = tmp or f"{_TMP}{uuid.uuid4().hex}"
                if tmp is None:  # the unnamed file gets a name to be renamed over the key
                    os.link(f"/proc/self/fd/{fd}", named, dst_dir_fd=dfd, follow_symlinks=True)
                existing.append((n, dfd, named, name, info))

        def replace(group: Sequence[tuple[int, int, str, str, ObjectInfo]]) -> None:
            with self._locked(group[0][4].key):
                for n, dfd, tmp, name, info in group:
                    try:
                        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                        out[n] = info
                    except IsADirectoryError:
                        out[n] = InvalidKey(f"{info.key!r} is a folder of other objects")

        def slices(seq: Sequence[Any]) -> list[Sequence[Any]]:
            step = max(1, -(-len(seq) // workers))
            return [seq[i:i + step] for i in range(0, len(seq), step)]

        try:
            list(pool.map(write, slices(chunk)))
            if self.fsync and opened:
                _syncfs(self.root)
            list(pool.map(link, slices(opened)))
            stripes: dict[int, list[tuple[int, int, str, str, ObjectInfo]]] = {}
            for entry in existing:
                stripes.setdefault(zlib.crc32(entry[4].key.encode()) % _LOCK_STRIPES, []).append(entry)
            list(pool.map(replace, stripes.values()))
            if self.fsync and opened:
                _syncfs(self.root)  # and the names, before the round is acknowledged
        finally:
            for _, dfd, fd, _, _ in opened:
                os.close(fd)
            for _, dfd, tmp, _, _ in existing + [(0, e[1], e[3], "", e[4]) for e in opened if e[3] is not None]:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except FileNotFoundError:
                    pass  # placed

    def _unnamed_files_work(self) -> bool:
        """Whether this filesystem makes unnamed files that ``/proc`` can link (Linux, ext4/xfs/tmpfs...)."""
        if _O_TMPFILE == 0:
            return False
        folder = self.root / _INTERNAL
        try:
            fd = os.open(folder, _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except OSError:
            return False
        probe = folder / f"{_TMP}{uuid.uuid4().hex}"
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{fd}", probe.name, dst_dir_fd=dfd, follow_symlinks=True)
        except OSError:
            return False
        finally:
            os.close(fd)
            os.close(dfd)
        probe.unlink()
        return True

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        path = self._path(key)  # an invalid key never reaches S3 either
        self.meter.request(DELETE)  # what the same call costs on S3
        with self._locked(key):
            try:
                if if_match is not None and self._current(path)[0] != if_match:
                    raise PreconditionFailed(key)
                path.unlink()
            except FileNotFoundError:
                if if_match is not None:
                    raise PreconditionFailed(key) from None
                return False
            except IsADirectoryError:
                if if_match is not None:
                    raise PreconditionFailed(key) from None
                return False
        return True

    # -- signed URLs: the local stand-in for S3 presigning, served by the /files route --
    def _signing_key(self) -> bytes:
        if self._secret is None:
            self._secret = self._shared_secret()
        return self._secret

    def _shared_secret(self) -> bytes:
        """The store's generated signing key; every process opening the store reads the same one.

        It is published complete or not at all (written to a temporary file, then ``link``ed to its
        name, which fails if another process got there first), so a crash cannot leave it empty.
        An empty or short file left by an older version is replaced, under a lock, by one process.
        """
        path = self.root / _INTERNAL / "secret"
        for _ in range(3):
            try:
                data: bytes | None = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data is not None and len(data) == _SECRET_BYTES:
                return data
            if data is None:
                self._publish_secret(path, replace=False)
                continue
            with self._locked(_INTERNAL + "/secret"):
                try:
                    if len(path.read_bytes()) != _SECRET_BYTES:
                        self._publish_secret(path, replace=True)
                except FileNotFoundError:
                    pass
        raise RuntimeError(f"unreadable signing secret at {path}")

    def _publish_secret(self, path: Path, *, replace: bool) -> None:
        tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(_SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            if replace:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # another process published first: everyone uses theirs
            _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def sign(self, claims: dict[str, object], expires: int) -> str:
        payload = dict(claims, exp=int(time.time()) + expires)
        raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        mac = hmac.new(self._signing_key(), raw, hashlib.sha256).digest()[:20]
        return raw.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def verify(self, token: str) -> dict[str, Any]:
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
        self.meter.request(PRESIGN)
        return self._signed_url({"m": "GET", "k": key}, expires, base_url)

    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        check_key(key)
        self.meter.request(PRESIGN)
        return self._signed_url({"m": "PUT", "k": key}, expires, base_url)

    # -- multipart: parts are files under .stacflow/multipart/<upload id>/ ----------------
    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise InvalidKey(f"invalid upload id: {upload_id!r}")
        return self.root / _INTERNAL / "multipart" / upload_id

    def create_multipart(self, key: str) -> str:
        check_key(key)
        self.meter.request(MULTIPART)
        upload_id = uuid.uuid4().hex
        updir = self._upload_dir(upload_id)
        updir.mkdir(parents=True)
        (updir / "key").write_text(key)
        return upload_id

    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str:
        check_key(key)
        self.meter.request(PRESIGN)
        return self._signed_url({"m": "PUT", "k": key, "u": upload_id, "p": int(part_number)},
                                expires, base_url)

    def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        # The request a presigned part URL makes; on S3 it goes to S3, past the adapter.
        self.meter.request(MULTIPART)
        updir = self._upload_dir(upload_id)
        if not (updir / "key").is_file() or (updir / "key").read_text() != key:
            raise NotFound(f"no such upload {upload_id} for {key}")
        tmp = updir / f"{_TMP}{uuid.uuid4().hex}"
        tmp.write_bytes(body)
        self.meter.moved(written=len(body))
        os.replace(tmp, updir / f"{int(part_number):05d}")
        return f'"{hashlib.md5(body).hexdigest()}"'

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo:
        self.meter.request(MULTIPART)
        updir = self._upload_dir(upload_id)
        if not (updir / "key").is_file() or (updir / "key").read_text() != key:
            raise NotFound(f"no such upload {upload_id} for {key}")
        path = self._file(key)
        try:
            tmp, info, folders = self._write_tmp(path, _checked_parts(updir, parts))
            try:
                with self._locked(key):
                    os.replace(tmp, path)
            finally:
                _unlink(tmp)
            self._sync_folders(folders)
        except FileNotFoundError:
            raise NotFound(f"missing part for upload {upload_id}") from None
        except IsADirectoryError:
            raise InvalidKey(f"{key!r} is a folder of other objects") from None
        self._drop_upload(updir)
        self._notify(Change(CREATED, info.key, info.etag, info.size))
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.meter.request(MULTIPART)
        self._drop_upload(self._upload_dir(upload_id))

    @staticmethod
    def _drop_upload(updir: Path) -> None:
        if updir.is_dir():
            for child in updir.iterdir():
                child.unlink(missing_ok=True)
            updir.rmdir()


class _LockFiles:
    """A store's lock files, each opened once (an open per conditional write was ~10 % of its CPU) by the
    process using it: an ``flock`` belongs to the open file, which a forked process shares with its
    parent, so a process other than the one that opened them opens its own. Closed with the store."""

    __slots__ = ("folder", "pid", "fds")

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.fds: dict[int, int] = {}

    def fd(self, stripe: int) -> int:
        """The stripe's lock file (called under the stripe's thread lock: one opener per stripe)."""
        if self.pid != os.getpid():  # forked: the parent's files stay the parent's
            self.fds = {}  # first: a thread that still sees the old pid only empties it again
            self.pid = os.getpid()
        fd = self.fds.get(stripe)
        if fd is None:
            fd = self.fds[stripe] = os.open(f"{self.folder}/{stripe}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return fd

    def __del__(self, _getpid: Callable[[], int] = os.getpid, _close: Callable[[int], None] = os.close) -> None:
        # (``os`` bound early: a store may be freed while the interpreter shuts down)
        if self.pid == _getpid():
            for fd in self.fds.values():
                _close(fd)


class _FolderSyncs:
    """``fsync`` of folders, shared by the writers into one folder (group commit).

    A writer asks after its link or rename; it is covered by an ``fsync`` of the folder that *starts*
    after it asked (one already running may have read the folder before its entry). So a writer
    arriving while a sync runs waits for it to end and then either finds itself covered by the next
    one another waiter started, or starts it: N writers landing together cost two syncs, not N.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, _FolderSync] = {}

    def sync(self, folder: str) -> None:
        with self._lock:
            state = self._folders.get(folder)
            if state is None:
                state = self._folders[folder] = _FolderSync()
            state.users += 1
        try:
            state.sync(folder)
        finally:
            with self._lock:
                state.users -= 1
                if not state.users:  # only folders being written keep a state
                    del self._folders[folder]


class _FolderSync:
    __slots__ = ("users", "_cond", "_asked", "_synced", "_running")

    def __init__(self) -> None:
        self.users = 0
        self._cond = threading.Condition()
        self._asked = 0  # tickets handed out (one per writer, taken after its entry changed)
        self._synced = 0  # every ticket up to this one is covered by a finished sync
        self._running = False

    def sync(self, folder: str) -> None:
        with self._cond:
            self._asked += 1
            ticket = self._asked
            while self._running:
                self._cond.wait()
            if self._synced >= ticket:
                return  # a sync that started after this writer asked has finished
            self._running = True
            covers = self._asked  # every writer that asked before this sync starts
        synced = False
        try:
            _fsync_dir(folder)
            synced = True
        finally:
            with self._cond:  # a failed sync covers no one: the next waiter tries again
                self._running = False
                if synced:
                    self._synced = max(self._synced, covers)
                self._cond.notify_all()


def _checked_parts(updir: Path, parts: Sequence[CompletedPart]) -> Iterator[bytes]:
    """The parts' bytes in order, a chunk at a time; PreconditionFailed if one does not match its ETag."""
    for part in sorted(parts, key=lambda p: p.part_number):
        md5 = hashlib.md5()
        with open(updir / f"{part.part_number:05d}", "rb") as fh:
            while chunk := fh.read(CHUNK):
                md5.update(chunk)
                yield chunk
        if part.etag.strip('"') != md5.hexdigest():
            raise PreconditionFailed(f"part {part.part_number} does not match its ETag")


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _sync_data(fd: int) -> None:
    """A file's data and the metadata that finds it (size, blocks): ``fdatasync`` (``fsync`` on macOS)."""
    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)


def _read_to_end(fd: int, size: int) -> bytes:
    """The rest of an open file whose size was ``size``: what ``read()`` returns. One call when it holds
    what it held; a shorter read is no end (Linux reads at most ~2 GiB a call, some filesystems less)."""
    chunk = os.read(fd, size + 1)
    if len(chunk) == size:  # the byte asked beyond it found the end
        return chunk
    chunks = [chunk]
    while chunk := os.read(fd, CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:  # not supported here: the rename may write the data out, as without it
        pass


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(root: Path) -> None:
    """Flush the filesystem holding ``root`` (Linux ``syncfs``; elsewhere ``sync``)."""
    import ctypes
    fd = os.open(root, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
