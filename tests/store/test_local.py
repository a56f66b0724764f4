"""The local-directory adapter beyond the shared contract: ETags on any filesystem, the signing secret."""
from __future__ import annotations

import errno
import gc
import hashlib
import os
import stat as stat_module
import multiprocessing
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from chalicelib import services
from chalicelib.settings import Settings
from chalicelib.store import PreconditionFailed
from chalicelib.store import local as local_module
from chalicelib.store.local import LocalStore

PINNED_NS = 1_600_000_000_123_456_789


def _md5_etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def _pin_mtime(path: Path) -> None:
    os.utime(path, ns=(PINNED_NS, PINNED_NS))


def _pinned(st: os.stat_result) -> os.stat_result:
    """``st`` as a coarse-clock filesystem that reuses inode numbers reports it: one inode, one mtime."""
    fields = list(st[:10])
    fields[1], fields[8] = 4242, PINNED_NS // 10**9
    extra = {name: getattr(st, name) for name in ("st_atime", "st_ctime", "st_atime_ns", "st_ctime_ns",
                                                  "st_blksize", "st_blocks", "st_rdev")}
    return os.stat_result(fields, dict(extra, st_mtime=PINNED_NS / 1e9, st_mtime_ns=PINNED_NS))


@pytest.fixture(params=["xattrs", "no-xattrs"])
def coarse_fs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, local_store: LocalStore) -> LocalStore:
    """Every file in the store reports the same inode number and mtime; with or without user xattrs."""
    real_stat, real_fstat = os.stat, os.fstat
    root = str(local_store.root)

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        st = real_stat(path, *args, **kwargs)
        return _pinned(st) if str(path).startswith(root) and stat_module.S_ISREG(st.st_mode) else st

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return _pinned(st) if stat_module.S_ISREG(st.st_mode) else st

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "fstat", fstat)
    if request.param == "no-xattrs":
        def unsupported(*args: object) -> None:
            raise OSError(errno.ENOTSUP, "Operation not supported")
        monkeypatch.setattr(os, "getxattr", unsupported)
        monkeypatch.setattr(os, "setxattr", unsupported)
    return local_store


# -- item 10: ETags change whenever the content does ----------------------------------------------
def test_stale_if_match_is_refused_when_inode_and_mtime_repeat(coarse_fs: LocalStore) -> None:
    store = coarse_fs
    stale = store.put("doc.json", b'{"v":"a"}')
    current = store.put("doc.json", b'{"v":"b"}', if_match=stale.etag)  # same size, same (inode, mtime)
    assert current.etag != stale.etag
    for attempt in (lambda: store.put("doc.json", b'{"v":"c"}', if_match=stale.etag),
                    lambda: store.delete("doc.json", if_match=stale.etag)):
        with pytest.raises(PreconditionFailed):
            attempt()
    assert store.get("doc.json").body == b'{"v":"b"}'
    assert store.head("doc.json").etag == current.etag == [o.etag for o in store.list("doc")][0]


def test_stale_if_match_is_refused_when_the_filesystem_reuses_the_inode(local_store: LocalStore) -> None:
    """Real inode reuse (ext4, tmpfs hand a freed number straight back) with mtimes pinned to one ns."""
    path = local_store.root / "doc.json"
    local_store.put("doc.json", b'{"v":"000"}')
    _pin_mtime(path)
    stale, first_inode = local_store.head("doc.json"), path.stat().st_ino
    for n in range(1, 400):  # other processes allocating inodes meanwhile can delay the reuse
        local_store.put("doc.json", b'{"v":"%03d"}' % n)  # same size, new content
        _pin_mtime(path)
        if path.stat().st_ino == first_inode:
            break
    else:
        pytest.skip("this filesystem did not reuse the inode number")
    with pytest.raises(PreconditionFailed):
        local_store.put("doc.json", b"{}", if_match=stale.etag)


def test_etag_is_the_content_md5_and_reading_it_does_not_hash(local_store: LocalStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"x" * 100_000
    info = local_store.put("a/b.bin", body)
    assert info.etag == _md5_etag(body)  # as S3's single-part ETag

    def no_hashing(*args: object) -> None:
        raise AssertionError("a stamped object was hashed on read")
    monkeypatch.setattr(hashlib, "md5", no_hashing)
    monkeypatch.setattr(local_module, "_md5_of_fd", no_hashing)
    assert local_store.get("a/b.bin").etag == info.etag
    assert local_store.head("a/b.bin").etag == info.etag
    assert [o.etag for o in local_store.list("a/")] == [info.etag]
    with local_store.open("a/b.bin", start=5, length=1) as reader:
        assert reader.etag == info.etag


def test_files_written_by_other_tools_get_content_etags(local_store: LocalStore) -> None:
    path = local_store.root / "copied.txt"
    path.write_bytes(b"first")  # no stamp: copied in, or written by an older version
    assert local_store.head("copied.txt").etag == _md5_etag(b"first")
    assert local_store.get("copied.txt").etag == _md5_etag(b"first")
    with open(path, "r+b") as fh:  # rewritten in place (same inode) by another tool
        fh.write(b"other")
    os.utime(path, ns=(PINNED_NS, PINNED_NS))
    assert local_store.head("copied.txt").etag == _md5_etag(b"other")


# -- secrets: the signing key -------------------------------------------------------------------
def _secret_path(store: LocalStore) -> Path:
    return store.root / ".stacflow" / "secret"


def _round_trip(signer: LocalStore, verifier: LocalStore) -> None:
    token = signer.sign({"m": "GET", "k": "a"}, 60)
    assert verifier.verify(token)["k"] == "a"


@pytest.mark.parametrize("left_behind", [b"", b"\x01\x02\x03"])
def test_an_empty_or_partial_secret_left_by_a_crash_is_repaired(tmp_path: Path, left_behind: bytes) -> None:
    root = tmp_path / "store"
    first = LocalStore(root)
    _secret_path(first).write_bytes(left_behind)  # what a crash between create and write left
    _round_trip(first, LocalStore(root))  # repaired once, and every process agrees on the new key
    assert len(_secret_path(first).read_bytes()) == 32


class _Crash(BaseException):
    """The process dies here."""


@pytest.mark.parametrize("where", ["token_bytes", "fsync", "link"])
def test_a_crash_while_creating_the_secret_never_leaves_an_unusable_one(tmp_path: Path, where: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    target = {"token_bytes": (local_module.secrets, "token_bytes"), "fsync": (os, "fsync"),
              "link": (os, "link")}[where]

    def crash(*args: object, **kwargs: object) -> None:
        raise _Crash(where)
    with monkeypatch.context() as patch:
        patch.setattr(*target, crash)
        with pytest.raises(_Crash):
            store.presign_get("a", base_url="http://x")
    secret = _secret_path(store)
    assert not secret.exists() or len(secret.read_bytes()) == 32
    _round_trip(LocalStore(root), LocalStore(root))  # the next process starts cleanly


def test_racing_processes_agree_on_one_generated_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A is paused with its complete secret written but not published; B publishes first; A adopts B's."""
    root = tmp_path / "store"
    a, b = LocalStore(root), LocalStore(root)
    paused, resume = threading.Event(), threading.Event()
    real_link = os.link

    def link(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "A" and str(dst).endswith("/secret"):
            paused.set()
            resume.wait(10)
        return real_link(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, "link", link)
    tokens: dict[str, str] = {}
    thread = threading.Thread(name="A", target=lambda: tokens.update(a=a.sign({"k": "x"}, 60)))
    thread.start()
    assert paused.wait(10)
    tokens["b"] = b.sign({"k": "x"}, 60)
    resume.set()
    thread.join(10)
    for store in (a, b, LocalStore(root)):
        assert store.verify(tokens["a"])
        assert store.verify(tokens["b"])
    assert [p.name for p in (root / ".stacflow").iterdir() if p.name.startswith(".tmp-")] == []


def test_signing_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACFLOW_SIGNING_KEY", "k" * 40)
    monkeypatch.setenv("STACFLOW_STORE", (tmp_path / "one").as_uri())
    services.configure()
    try:
        served = services.store()
        assert isinstance(served, LocalStore)
        assert "k" * 40 not in repr(services.settings())
        other = LocalStore(tmp_path / "two", signing_key=b"k" * 40)
        _round_trip(served, other)
        _round_trip(other, served)
        assert not _secret_path(served).exists()  # nothing generated or written
        with pytest.raises(PermissionError):
            LocalStore(tmp_path / "three").verify(served.sign({"k": "a"}, 60))
    finally:
        services.configure()
    with pytest.raises(ValueError):
        LocalStore(tmp_path / "four", signing_key=b"short")
    assert Settings.from_env().signing_key == "k" * 40


def test_local_meter_counts_a_list_page_per_1000_keys_as_s3_pages(tmp_path):
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path / "s", fsync=False)
    for i in range(1001):
        store.put(f"p/{i:04d}", b"")
    before = store.meter.usage()
    assert len(list(store.list("p/", limit=1000))) == 1000  # one full page, no second request
    assert (store.meter.usage() - before).requests == {"LIST": 1}
    assert len(list(store.list("p/"))) == 1001
    assert (store.meter.usage() - before).requests == {"LIST": 3}


def test_local_meter_counts_a_part_upload_and_its_bytes(tmp_path):
    from chalicelib.store import CompletedPart
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path / "s", fsync=False)
    before = store.meter.usage()
    upload_id = store.create_multipart("big")
    etag = store.upload_part("big", upload_id, 1, b"x" * 100)
    store.complete_multipart("big", upload_id, [CompletedPart(1, etag)])
    used = store.meter.usage() - before
    assert used.requests == {"MULTIPART": 3}
    assert used.bytes_written == 100


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named temporary files"])
def test_put_many_failing_midway_changes_nothing_and_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                                               unnamed: bool) -> None:
    """Every body of a round is written and synced before the first is placed: a failure while writing
    (disk full) leaves every key at its old content."""
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path)
    store.put("items/a.json", b"old-a")
    real, calls = os.write, []

    def failing_write(fd: int, data: Any) -> int:
        if bytes(data) == b"new":
            calls.append(fd)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
        return real(fd, data)

    store._unnamed = unnamed
    monkeypatch.setattr(local_module.os, "write", failing_write)
    with pytest.raises(OSError):
        store.put_many([(f"items/{c}.json", b"new") for c in "abcd"], workers=1)
    assert store.get("items/a.json").body == b"old-a"
    assert [info.key for info in store.list("items/")] == ["items/a.json"]
    assert not [p for p in (tmp_path / "items").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named temporary files"])
def test_put_many_in_rounds_creates_and_replaces_keys_whole(tmp_path, monkeypatch, unnamed: bool) -> None:
    """New keys are linked in place, existing ones replaced, over several rounds and folders; reads
    see the new content and its ETag, and no temporary file is left."""
    monkeypatch.setattr(local_module, "_ROUND", 3)
    store = LocalStore(tmp_path)
    assert store._unnamed_files_work() is (os.uname().sysname == "Linux")
    store._unnamed = unnamed
    store.put("b/1.json", b"old-1")
    store.put("a/2.json", b"old-2")
    entries = [(f"{'ab'[i % 2]}/{i}.json", f"new-{i}".encode()) for i in range(10)] + [("a", b"a folder")]
    results = store.put_many(entries, workers=2)
    for (key, body), info in zip(entries[:-1], results[:-1]):
        assert store.get(key).body == body
        assert store.get(key).etag == info.etag == _md5_etag(body)  # type: ignore[union-attr]
    assert isinstance(results[-1], local_module.InvalidKey)
    assert sorted(i.key for i in store.list("")) == sorted(key for key, _ in entries[:-1])
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_put_many_leaves_the_etag_to_the_first_read_which_stamps_it_and_conditional_writes_hold(
        local_store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk write stamps nothing (two system calls a file saved); the first read hashes the content
    (the ETag ``put_many`` reported), stamps it, and later reads do not hash; an ``If-Match`` with a
    stale ETag is refused and one with the reported ETag accepted, before and after that first read."""
    old = local_store.put("items/a.json", b'{"v":1}')
    [info, fresh] = local_store.put_many([("items/a.json", b'{"v":2}'), ("items/b.json", b'{"v":3}')], workers=1)
    stamps = [os.listxattr(local_store.root / "items" / name) for name in ("a.json", "b.json")]
    assert [local_module._MD5_XATTR in names for names in stamps] == [False, False]
    with pytest.raises(PreconditionFailed):
        local_store.put("items/a.json", b"{}", if_match=old.etag)
    assert local_store.get("items/b.json").etag == fresh.etag == _md5_etag(b'{"v":3}')  # type: ignore[union-attr]

    def no_hashing(*args: object) -> None:
        raise AssertionError("a stamped object was hashed on read")
    with monkeypatch.context() as patched:
        patched.setattr(hashlib, "md5", no_hashing)
        patched.setattr(local_module, "_md5_of_fd", no_hashing)
        assert local_store.head("items/b.json").etag == fresh.etag  # type: ignore[union-attr]
    local_store.put("items/a.json", b'{"v":4}', if_match=info.etag)  # type: ignore[union-attr]
    assert local_store.get("items/a.json").body == b'{"v":4}'


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named temporary files"])
def test_put_many_returns_after_a_sync_that_follows_every_name(tmp_path, monkeypatch, unnamed: bool) -> None:
    """A round's data is synced before its names are placed, and the names are synced before the round is
    acknowledged: a crash after ``put_many`` returns loses no key it reported written."""
    store = LocalStore(tmp_path)
    store._unnamed = unnamed
    store.put("a/0.json", b"old")  # one key replaced, the others linked new
    keys = [f"a/{i}.json" for i in range(4)]
    synced_with: list[list[str]] = []
    monkeypatch.setattr(local_module, "_syncfs",
                        lambda root: synced_with.append(sorted(i.key for i in store.list("a/"))))
    store.put_many([(key, b"new") for key in keys], workers=2)
    assert synced_with[0] == ["a/0.json"]  # the data, before any new name
    assert synced_with[-1] == keys  # the names, before the answer


# -- issue 13: a put is acknowledged once its data and its name are durable, syncs shared -----------
class _SyncLog:
    """Records, in order, the data syncs, the placing of names and the folder syncs of a store's writes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.events: list[tuple[str, str]] = []
        self.root = str(root)
        real_fdatasync, real_link, real_replace = os.fdatasync, os.link, os.replace
        real_sync_dir = local_module._fsync_dir

        def fdatasync(fd: int) -> None:
            self.events.append(("data", os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]))
            real_fdatasync(fd)

        def link(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            real_link(src, dst, *args, **kwargs)
            if not os.path.basename(dst).startswith(local_module._TMP):  # a replaced file kept a while
                self.events.append(("name", str(dst)))

        def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            real_replace(src, dst, *args, **kwargs)
            self.events.append(("name", str(dst)))

        def sync_dir(path: Path) -> None:
            self.events.append(("folder", str(path)))
            real_sync_dir(path)
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(local_module, "_fsync_dir", sync_dir)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


@pytest.mark.parametrize("condition", [{"if_none_match": True}, {}, {"if_match": "current"}])
def test_a_put_returns_after_its_data_then_its_name_were_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                condition: dict) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("logs/seed.json", b"{}")
    if condition.get("if_match"):
        condition = {"if_match": store.put("logs/entry.json", b"{}").etag}
    syncs = _SyncLog(monkeypatch, store.root)
    store.put("logs/entry.json", b'{"v":1}', **condition)
    # the data before the name (a crash in between leaves the old object), the folder before the ack
    assert syncs.kinds() == ["data", "name", "folder"]
    assert syncs.events[1][1] == str(store.root / "logs" / "entry.json")
    assert syncs.events[2][1] == str(store.root / "logs")


def test_a_put_into_new_folders_makes_each_new_folder_durable_in_its_parent(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("a/seed.json", b"{}")
    syncs = _SyncLog(monkeypatch, store.root)
    store.put("a/b/c/entry.json", b"{}")
    kinds = syncs.kinds()
    assert kinds[:2] == ["data", "name"]  # every folder synced after the name: one journal commit for all
    folders = sorted(path for kind, path in syncs.events if kind == "folder")
    assert folders == [str(store.root / "a"), str(store.root / "a" / "b"), str(store.root / "a" / "b" / "c")]


def test_a_failed_folder_sync_fails_the_put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the name and its folder's sync: the write was not acknowledged (the client
    retries), and the object is either absent or whole."""
    store = LocalStore(tmp_path / "store")
    store.put("logs/seed.json", b"{}")

    def broken(path: Path) -> None:
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(local_module, "_fsync_dir", broken)
    with pytest.raises(OSError):
        store.put("logs/entry.json", b'{"v":1}')
    assert store.get("logs/entry.json").body == b'{"v":1}'
    assert [i.key for i in store.list("logs/")] == ["logs/entry.json", "logs/seed.json"]  # no temporary file


def test_writers_into_one_folder_share_its_syncs_but_none_is_acknowledged_by_an_earlier_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first folder sync is held; three writers place their names meanwhile. The held sync may
    have read the folder before them, so none of them may return on it: they wait, and one sync
    started after all of them covers them together (two syncs for four writers)."""
    store = LocalStore(tmp_path / "store")
    store.put("logs/seed.json", b"{}")
    started, release = threading.Event(), threading.Event()
    syncs: list[str] = []
    real_sync_dir = local_module._fsync_dir

    def sync_dir(path: Path) -> None:
        syncs.append(str(path))
        if len(syncs) == 1:
            started.set()
            assert release.wait(5)
        real_sync_dir(path)
    monkeypatch.setattr(local_module, "_fsync_dir", sync_dir)
    done: list[str] = []

    def write(name: str) -> None:
        store.put(f"logs/{name}.json", b"{}")
        done.append(name)
    first = threading.Thread(target=write, args=("first",))
    first.start()
    assert started.wait(5)
    others = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(3)]
    for thread in others:
        thread.start()
    deadline = time.time() + 5
    while len(list(store.list("logs/w"))) < 3 and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    assert done == []  # named, but waiting for a sync that starts after them
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert sorted(done) == ["first", "w0", "w1", "w2"]
    assert syncs == [str(store.root / "logs")] * 2


def test_a_hint_is_written_without_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("logs/seed.json", b"{}")
    syncs = _SyncLog(monkeypatch, store.root)
    info = store.put_hint("logs/tip.json", b"k1", content_type="text/plain")
    assert syncs.kinds() == ["name"]
    assert store.get("logs/tip.json").etag == info.etag


def test_only_a_file_renamed_over_another_unsynced_has_its_blocks_allocated_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ext4 writes out a file renamed over another while its blocks are still to be allocated, inside
    the rename (``auto_da_alloc``): a hint's blocks are allocated before its data is written; a synced
    put's (written out by its own sync) and an entry's (linked, never renamed over) are not."""
    store = LocalStore(tmp_path / "store")
    allocated: list[int] = []
    real = os.posix_fallocate

    def fallocate(fd: int, offset: int, size: int) -> None:
        allocated.append(size)
        real(fd, offset, size)
    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    store.put_hint("logs/tip.json", b"k1")
    store.put_hint("logs/tip.json", b"k22")
    store.put("logs/record.json", b"{}")
    store.create_entry("logs/entry.json", b"{}")
    assert allocated == [2, 3]
    assert store.get("logs/tip.json").body == b"k22"


def test_a_file_replaced_is_freed_on_another_thread_after_the_write_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renaming over a file frees it, which waits for its write-out and the journal: the replaced file
    keeps a temporary name until another thread frees it, after the write has returned."""
    store = LocalStore(tmp_path / "store")
    store.put_hint("logs/tip.json", b"k1")
    held, release = threading.Event(), threading.Event()
    freed: list[str] = []
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        # This store's reaper (another test's may still be in its round).
        if threading.current_thread().name.startswith("store-later") and str(path).startswith(str(store.root)):
            held.set()
            assert release.wait(5)
            freed.append(os.path.basename(path))
        real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", unlink)
    store.put_hint("logs/tip.json", b"k2")  # returns while the freeing is held
    assert held.wait(5)
    assert store.get("logs/tip.json").body == b"k2"
    kept = [p.name for p in (store.root / "logs").iterdir() if p.name.startswith(local_module._TMP)]
    assert len(kept) == 1
    release.set()
    store._later().submit(lambda: None).result(5)  # the freeing has run
    assert freed == kept
    assert [p.name for p in (store.root / "logs").iterdir()] == ["tip.json"]
    assert [i.key for i in store.list("logs/")] == ["logs/tip.json"]


def _hold_the_reaper(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """(held, release): the store's thread, freeing one of its files, sets ``held`` and waits for ``release``."""
    held, release = threading.Event(), threading.Event()
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("store-later") and str(path).startswith(str(store.root)):
            held.set()
            assert release.wait(5)
        real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", unlink)
    return held, release


def test_the_files_replaced_while_the_reaper_waits_are_handed_to_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hand-off to another thread costs the writer a wake-up: the files replaced while a round
    of frees is pending or running join it, and one hand-off frees them all."""
    store = LocalStore(tmp_path / "store")
    store.put_hint("logs/tip.json", b"k0")
    held, release = _hold_the_reaper(store, monkeypatch)
    handed: list[object] = []
    later = store._later()
    real_submit = later.submit

    def submit(fn: Any, *args: Any, **kwargs: Any) -> Any:
        handed.append(fn)
        return real_submit(fn, *args, **kwargs)
    monkeypatch.setattr(later, "submit", submit)
    store.put_hint("logs/tip.json", b"k1")
    assert held.wait(5)  # the round is freeing k0's file
    for n in range(2, 6):
        store.put_hint("logs/tip.json", f"k{n}".encode())
    release.set()
    monkeypatch.setattr(later, "submit", real_submit)
    real_submit(lambda: None).result(5)
    assert len(handed) == 1
    assert [p.name for p in (store.root / "logs").iterdir()] == ["tip.json"]
    assert store.get("logs/tip.json").body == b"k5"


def test_a_durable_replace_frees_the_replaced_file_in_the_rename_and_only_a_hints_is_handed_to_a_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A durable write's predecessor was synced when written: the rename frees it before the write returns
    (no temporary name kept, no thread). A hint's replaced file still waits for the store's thread."""
    store = LocalStore(tmp_path / "store")
    held, release = _hold_the_reaper(store, monkeypatch)

    def kept(folder: str) -> list[str]:
        return [p.name for p in (store.root / folder).iterdir() if p.name.startswith(local_module._TMP)]
    try:
        first = store.put("shards/a.json", b"1")
        store.put("shards/a.json", b"2", if_match=first.etag)
        store.put("shards/a.json", b"3")
        assert kept("shards") == []
        assert not held.is_set()
        store.put_hint("logs/tip.json", b"k1")
        store.put_hint("logs/tip.json", b"k2")
        assert held.wait(5)
        assert len(kept("logs")) == 1
    finally:
        release.set()
    store._later().submit(lambda: None).result(5)
    assert kept("logs") == []
    assert store.get("shards/a.json").body == b"3"


def test_a_forked_process_holds_its_own_lock_files_so_conditional_writes_still_exclude_each_other(
        tmp_path: Path) -> None:
    """Lock files stay open from one conditional write to the next; a process forked with the store
    opens its own (an ``flock`` belongs to the open file, which the fork shares): while the parent holds a
    key's lock, the child's compare-and-swap on that key waits for it."""
    store = LocalStore(tmp_path / "store")
    etag = store.put("shards/a.json", b"1").etag
    store.put("shards/a.json", b"2", if_match=etag)  # the parent's lock file for the key is open now
    etag = store.head("shards/a.json").etag
    ctx = multiprocessing.get_context("fork")
    go, done = ctx.Event(), ctx.Event()

    def child() -> None:
        go.wait(10)
        store.put("shards/a.json", b"child", if_match=etag)
        done.set()
    proc = ctx.Process(target=child)
    proc.start()
    try:
        with store._locked("shards/a.json"):
            go.set()
            assert not done.wait(1.0)  # the child waits for the parent's lock
        assert done.wait(10)
    finally:
        go.set()
        proc.join(10)
    assert proc.exitcode == 0
    assert store.get("shards/a.json").body == b"child"


def test_a_stores_lock_files_are_closed_with_it(tmp_path: Path) -> None:
    """Lock files stay open for the store's life only: stores made and dropped leak no descriptors."""
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))
    before = open_fds()
    for n in range(20):
        store = LocalStore(tmp_path / f"store-{n}")
        for key in ("a.json", "b/c.json", "d.json"):
            store.put(key, b"1")
            store.delete(key, if_match=store.head(key).etag)
        del store
    assert open_fds() <= before


def test_concurrent_durable_writers_lose_and_double_nothing(tmp_path: Path) -> None:
    """Eight threads, each creating entries in one folder and bumping one counter by compare-and-swap,
    with every sync on: each entry is there once, no increment is lost."""
    store = LocalStore(tmp_path / "store")

    def writer(n: int) -> None:
        for i in range(10):
            store.put(f"log/{n}-{i}.json", b"{}", if_none_match=True)
            store.update_json("counter.json", lambda doc: {"n": doc["n"] + 1}, default=lambda: {"n": 0})
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(list(store.list("log/"))) == 80
    assert store.get_json("counter.json") == {"n": 80}
    with pytest.raises(PreconditionFailed):
        store.put("log/0-0.json", b"{}", if_none_match=True)


def test_a_log_entry_is_named_then_its_data_and_folder_synced_together(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``create_entry``: one journal commit for data and name (readers take a torn entry, which only a
    crash before the ack can leave, for one never written); still create-only, still synced before the ack."""
    store = LocalStore(tmp_path / "store")
    store.put("log/seed.json", b"{}")
    syncs = _SyncLog(monkeypatch, store.root)
    info = store.create_entry("log/k1.json", b'{"run":"r"}', content_type="application/json")
    assert syncs.kinds()[0] == "name"
    assert sorted(syncs.events[1:]) == [("data", "k1.json"), ("folder", str(store.root / "log"))]  # side by side
    assert store.get("log/k1.json").etag == info.etag
    with pytest.raises(PreconditionFailed):
        store.create_entry("log/k1.json", b'{"run":"other"}')
    assert store.get("log/k1.json").body == b'{"run":"r"}'


def test_entries_written_together_are_acknowledged_once_all_are_synced_each_folder_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``entries_together``: inside the block each entry only places its name (no sync, no event yet);
    as the block ends, every entry's data and every folder they touch (a folder made for one of them,
    in its parent, too) are synced, each folder once, and only then does the block return and tell
    the listeners."""
    store = LocalStore(tmp_path / "store")
    store.put("a/log/seed.json", b"{}")
    store.put("b/log/seed.json", b"{}")
    events: list[str] = []
    store.subscribe(lambda change: events.append(change.key))
    syncs = _SyncLog(monkeypatch, store.root)
    with store.entries_together():
        store.create_entry("a/log/k1.json", b"{}")
        store.create_entry("b/log/k1.json", b"{}")
        store.create_entry("b/log/k2.json", b"{}")
        store.create_entry("c/new/k1.json", b"{}")  # two new folders
        assert syncs.kinds() == ["name"] * 4
        assert events == []
    assert sorted(name for kind, name in syncs.events if kind == "data") == ["k1.json", "k1.json", "k1.json", "k2.json"]
    folders = [name for kind, name in syncs.events if kind == "folder"]
    root = store.root
    assert sorted(folders) == sorted(str(f) for f in (root / "a/log", root / "b/log", root / "c/new", root / "c", root))
    assert sorted(events) == ["a/log/k1.json", "b/log/k1.json", "b/log/k2.json", "c/new/k1.json"]


def test_a_block_of_entries_fails_if_one_of_their_syncs_fails_and_syncs_nothing_if_it_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("log/seed.json", b"{}")
    syncs = _SyncLog(monkeypatch, store.root)
    with pytest.raises(RuntimeError):
        with store.entries_together():
            store.create_entry("log/k1.json", b"{}")
            raise RuntimeError("the write failed: nothing in it is acknowledged")
    assert syncs.kinds() == ["name"]

    def broken(path: Path) -> None:
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(local_module, "_fsync_dir", broken)
    with pytest.raises(OSError):
        with store.entries_together():
            store.create_entry("log/k2.json", b"{}")
    assert store.get("log/k2.json").body == b"{}"  # named, never acknowledged (the client retries)
    with pytest.raises(OSError):  # outside a block again: synced (and failing) at once, not left pending
        store.create_entry("log/k3.json", b"{}")


def test_a_failed_data_sync_fails_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "store")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OSError):
        store.create_entry("log/k1.json", b'{"run":"r"}')


def test_a_writer_into_a_folder_another_is_still_making_durable_syncs_its_entry_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer A makes folder ``new/`` and is held before syncing its entry in the root. Writer B finds
    the folder there and writes into it: B must not be acknowledged until ``new``'s entry is synced
    (a crash would lose the folder, B's object with it), so B syncs the root too."""
    store = LocalStore(tmp_path / "store")
    root = str(store.root)
    held, release = threading.Event(), threading.Event()
    synced: list[tuple[str, str]] = []
    real_sync_dir = local_module._fsync_dir

    def sync_dir(path: Path) -> None:
        who = threading.current_thread().name
        if who == "A" and str(path) == root:
            held.set()
            assert release.wait(5)
        real_sync_dir(path)
        synced.append((who, str(path)))
    monkeypatch.setattr(local_module, "_fsync_dir", sync_dir)
    a = threading.Thread(target=store.put, args=("new/a.json", b"{}"), name="A")
    a.start()
    assert held.wait(5)
    b = threading.Thread(target=store.put, args=("new/b.json", b"{}"), name="B")
    b.start()
    b.join(0.3)
    assert b.is_alive()  # not acknowledged while the folder it wrote into may vanish in a crash
    release.set()
    a.join(5)
    b.join(5)
    assert ("B", root) in synced  # A's held sync began before B asked: B's own covers it
    store.put("new/c.json", b"{}")  # once both synced it, a later writer syncs only its folder
    assert [path for who, path in synced if who == "MainThread"] == [str(store.root / "new")]

def _put_once(store: LocalStore, key: str) -> None:
    store.put(key, b"from the child")  # a replacement: under the key's lock
    store.put("new/folder/1.json", b"made")  # new folders: under the store's own lock


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_process_writes_through_its_copy_while_a_thread_here_holds_the_keys_lock(tmp_path) -> None:
    """``for_child_process``: a copy with its own thread locks (the key's, the folder syncs' and the
    store's), so a fork while another thread holds one (a publisher forking its workers inside a busy service) does not
    leave the child waiting forever; its requests count in its own meter."""
    store = LocalStore(tmp_path)
    child = store.for_child_process()
    key = "a/1.json"
    store.put(key, b"from the parent")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._thread_locks[zlib.crc32(key.encode()) % local_module._LOCK_STRIPES], store._folder_syncs._lock, \
                store._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    process = multiprocessing.get_context("fork").Process(target=_put_once, args=(child, key))
    try:
        process.start()
        process.join(10)
        assert process.exitcode == 0
    finally:
        release.set()
        thread.join()
        if process.is_alive():
            process.kill()
    assert store.get(key).body == b"from the child"
    assert store.get("new/folder/1.json").body == b"made"
    assert store.meter.usage().requests["PUT"] == 1  # the parent's own


def test_reads_and_writes_hold_no_descriptor_and_read_whole_files(tmp_path: Path) -> None:
    """``get`` and the writes use bare descriptors (no file objects): every one is closed on every way out
    (a 304, a folder's key, a missing key, a refused create), a folder is no object, and a body is read
    whole whatever its size (empty, one byte, more than a read chunk)."""
    store = LocalStore(tmp_path, fsync=True)
    bodies = {"empty.json": b"", "one.json": b"1", "big.bin": os.urandom(local_module.CHUNK + 12345)}
    for key, body in bodies.items():
        store.put(key, body)
    store.create_entry("log/a.json", b"{}")
    store.put_hint("tip.json", b"t")
    etag = store.get("one.json").etag
    gc.collect()  # other tests' files closed now, not while this one counts
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        for key, body in bodies.items():
            assert store.get(key).body == body
        with pytest.raises(local_module.NotModified):
            store.get("one.json", if_none_match=etag)
        with pytest.raises(local_module.NotFound):
            store.get("log")  # a folder
        with pytest.raises(local_module.NotFound):
            store.get("missing.json")
        with pytest.raises(PreconditionFailed):
            store.create_entry("log/a.json", b"{}")
        store.put_hint("tip.json", b"t")
        store.put("one.json", b"1")
    assert len(os.listdir("/proc/self/fd")) <= fds  # a leak would hold 50 or more
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == ["a.json"]  # no temporary file left behind


def test_a_block_whose_data_sync_fails_leaves_no_descriptor_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entries' files are opened for their syncs before the syncs start (a sync thread then makes
    one system call): when one fails, every one is still closed, and the block fails."""
    store = LocalStore(tmp_path / "store")
    store.put("a/seed.json", b"{}")
    store.put("b/seed.json", b"{}")
    real = os.fdatasync
    failed: list[int] = []

    def second_fails(fd: int) -> None:
        if len(failed) % 2:
            failed.append(fd)
            raise OSError(errno.EIO, "I/O error")
        failed.append(fd)
        real(fd)
    monkeypatch.setattr(os, "fdatasync", second_fails)
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(20):
        with pytest.raises(OSError):
            with store.entries_together():
                store.create_entry(f"a/{i}.json", b"{}")
                store.create_entry(f"b/{i}.json", b"{}")
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert len(failed) == 40  # every entry's data was synced (or tried), not only up to the failure


def test_a_get_reads_on_past_a_short_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read may return less than asked before the end (Linux caps one at ~2 GiB, some filesystems read
    short): ``get`` reads on to the end rather than return part of the object."""
    store = LocalStore(tmp_path, fsync=False)
    body = os.urandom(100_000)
    store.put("big.bin", body)
    real_read = os.read
    monkeypatch.setattr(local_module.os, "read", lambda fd, n: real_read(fd, min(n, 4096)))
    assert store.get("big.bin").body == body
