"""Assets are not available until their objects are in the DVC remote; landings converge under races."""
from __future__ import annotations

from chalicelib.stac import catalog

import json
import threading
from typing import Any

import pytest

from chalicelib.datasets import availability
from chalicelib.datasets import items as items_module
from chalicelib.datasets.items import AVAILABLE, PENDING, WARNINGS, build
from chalicelib.datasets.snapshot import BuildSettings
from chalicelib.store import ObjectStore
from tests.helpers.dvc_repos import REMOTE_URL, DictRemote, dvc_config, dvc_file, md5, push, snapshot
from tests.helpers.stores import InstrumentedStore
from tests.helpers.threads import run_paused

BUCKET, PREFIX = "dvc-remote", "project/"  # REMOTE_URL = s3://dvc-remote/project
A, B = b"alpha,beta\n1,2\n", b"\x00\x01binary"
FILES = {"a.csv.dvc": dvc_file("a.csv", A), "b.bin.dvc": dvc_file("b.bin", B), ".dvc/config": dvc_config(REMOTE_URL),
         "README.md": b"---\ntitle: T\n---\n"}


def landed(store: ObjectStore, remote: Any, data_md5: str, *, isdir: bool = False) -> list[str]:
    key = f"{PREFIX}files/md5/{data_md5[:2]}/{data_md5[2:]}{'.dir' if isdir else ''}"
    return availability.on_object_created(store, remote, BUCKET, key)


def publish(store: ObjectStore, remote: Any, files: dict[str, bytes] = FILES, **settings: Any) -> str:
    [key] = availability.publish(store, remote, build(snapshot(files), remote, BuildSettings(**settings)))
    return key


def test_assets_become_available_when_their_objects_land(local_store: ObjectStore, remote_store: ObjectStore,
                                                         remote: DictRemote) -> None:
    key = publish(local_store, remote)
    item = local_store.get_json(key)
    assert item["properties"][PENDING] == ["a.csv", "b.bin"]
    assert item["assets"]["a.csv"][AVAILABLE] is False
    assert item["assets"]["a.csv"]["file:size"] == len(A)
    assert landed(local_store, remote, md5(A)) == []  # the event is about an object not yet in the remote
    push(remote_store, A)
    assert landed(local_store, remote, md5(A)) == [key]
    item = local_store.get_json(key)
    assert item["assets"]["a.csv"][AVAILABLE] is True
    assert item["properties"][PENDING] == ["b.bin"]
    assert landed(local_store, remote, md5(A)) == []  # redelivered: nothing left to change
    push(remote_store, B)
    assert landed(local_store, remote, md5(B)) == [key]
    item = local_store.get_json(key)
    assert item["properties"][PENDING] == []
    assert item["assets"]["b.bin"][AVAILABLE] is True
    assert WARNINGS not in item["properties"]


def test_a_size_or_content_mismatch_stays_unavailable_with_a_warning(
        local_store: ObjectStore, remote_store: ObjectStore, remote: DictRemote, caplog: pytest.LogCaptureFixture) -> None:
    key = publish(local_store, remote)
    remote_store.put(f"files/md5/{md5(A)[:2]}/{md5(A)[2:]}", A + b"more")  # wrong size
    remote_store.put(f"files/md5/{md5(B)[:2]}/{md5(B)[2:]}", b"\x00\x01BINARY")  # right size, wrong bytes
    assert landed(local_store, remote, md5(A)) == [key]  # only the warning was added
    assert landed(local_store, remote, md5(B)) == [key]
    assert landed(local_store, remote, md5(B)) == []  # the same warning again changes nothing
    item = local_store.get_json(key)
    assert item["properties"][PENDING] == ["a.csv", "b.bin"]
    assert item["assets"]["a.csv"][AVAILABLE] is False
    assert item["assets"]["b.bin"][AVAILABLE] is False
    warnings = item["properties"][WARNINGS]
    assert any(w.startswith("a.csv: object is 19 bytes in the remote, 15 expected") for w in warnings)
    assert any(w.startswith("b.bin: object has md5") for w in warnings)
    assert any("a.csv: object is 19 bytes" in r.getMessage() for r in caplog.records)


def test_objects_already_pushed_are_available_at_build_and_need_no_reference(
        local_store: ObjectStore, remote_store: ObjectStore, remote: DictRemote) -> None:
    push(remote_store, A)
    push(remote_store, B)
    result = build(snapshot(FILES), remote)
    assert result.references == []
    assert result.items[0]["properties"][PENDING] == []
    remote_store.put(f"files/md5/{md5(B)[:2]}/{md5(B)[2:]}", b"short")
    mismatch = build(snapshot(FILES), remote)
    assert mismatch.items[0]["assets"]["b.bin"][AVAILABLE] is False
    assert any("b.bin: object is 5 bytes in the remote, 8 expected" in w for w in mismatch.warnings)


def directory_files(n: int) -> tuple[dict[str, bytes], bytes, list[bytes]]:
    contents = [f"file {i}\n".encode() for i in range(n)]
    manifest = json.dumps([{"md5": md5(c), "relpath": f"f{i}.txt"} for i, c in enumerate(contents)]).encode()
    dvc = (f"outs:\n- md5: {md5(manifest)}.dir\n  size: {sum(map(len, contents))}\n  nfiles: {n}\n  hash: md5\n"
           f"  path: images\n").encode()
    return {"images.dvc": dvc, ".dvc/config": dvc_config(REMOTE_URL)}, manifest, contents


def push_dir(remote_store: ObjectStore, manifest: bytes, contents: list[bytes]) -> None:
    for c in contents:  # as dvc push does: the files first, the manifest last
        push(remote_store, c)
    remote_store.put(f"files/md5/{md5(manifest)[:2]}/{md5(manifest)[2:]}.dir", manifest)


def test_a_directory_pushed_after_the_build_becomes_its_files(local_store: ObjectStore, remote_store: ObjectStore,
                                                              remote: DictRemote) -> None:
    files, manifest, contents = directory_files(3)
    key = publish(local_store, remote, files)
    item = local_store.get_json(key)
    assert list(item["assets"]) == ["images"]  # the manifest, pending, until it lands
    assert item["assets"]["images"]["roles"] == ["metadata"]
    assert item["properties"][PENDING] == ["images"]
    push_dir(remote_store, manifest, contents)
    for c in contents:  # the files' own events come first: no reference names them yet
        assert landed(local_store, remote, md5(c)) == []
    assert landed(local_store, remote, md5(manifest), isdir=True) == [key]
    item = local_store.get_json(key)
    assert sorted(item["assets"]) == ["images/f0.txt", "images/f1.txt", "images/f2.txt"]
    assert item["properties"][PENDING] == []
    for i, c in enumerate(contents):
        asset = item["assets"][f"images/f{i}.txt"]
        assert asset["file:size"] == len(c)
        assert asset["file:checksum"] == "d510" + md5(c)
        assert asset["href"] == f"{REMOTE_URL}/files/md5/{md5(c)[:2]}/{md5(c)[2:]}"
    fresh = build(snapshot(files), remote).items[0]  # the same as a build after the push
    assert fresh["assets"] == item["assets"]


def test_a_directory_over_the_file_limit_is_one_manifest_asset(local_store: ObjectStore, remote_store: ObjectStore,
                                                                remote: DictRemote) -> None:
    files, manifest, contents = directory_files(3)
    key = publish(local_store, remote, files, max_files_per_directory=2)
    asset = local_store.get_json(key)["assets"]["images"]
    assert asset[AVAILABLE] is False
    assert asset["stacflow:nfiles"] == 3
    assert asset["stacflow:total_size"] == 21
    assert asset["type"] == "application/json"
    assert asset["file:checksum"] == "d510" + md5(manifest)
    push_dir(remote_store, manifest, contents)
    assert landed(local_store, remote, md5(manifest), isdir=True) == [key]
    asset = local_store.get_json(key)["assets"]["images"]
    assert asset[AVAILABLE] is True
    assert asset["file:size"] == len(manifest)
    # the manifest says more files than its .dvc file: still bounded
    assert build(snapshot(files), remote, BuildSettings(max_files_per_directory=2)).items[0]["assets"][
        "images"][AVAILABLE] is True


def test_an_object_landing_before_the_item_is_written_is_caught_by_settle(
        local_store: ObjectStore, remote_store: ObjectStore, remote: DictRemote) -> None:
    result = build(snapshot(FILES), remote)  # HEADs: nothing there yet
    availability.record(local_store, result.references)
    push(remote_store, A)
    assert landed(local_store, remote, md5(A)) == []  # the item is not written yet
    [item] = result.items
    key = catalog.stored_item_key(item)  # an internal project's item: under the private prefix
    local_store.put_json(key, item)  # written with the stale availability
    assert availability.settle(local_store, remote, [key]) == [key]
    assert local_store.get_json(key)["properties"][PENDING] == ["b.bin"]


def test_without_the_reference_written_first_the_landing_would_be_lost(
        local_store: ObjectStore, remote_store: ObjectStore, remote: DictRemote) -> None:
    """The index is what makes the event count: the same sequence without ``record`` stays pending
    until ``settle`` (which ``publish`` always runs)."""
    result = build(snapshot(FILES), remote)
    [item] = result.items
    key = f"collections/dataset/items/{item['id']}.json"
    local_store.put_json(key, item)
    push(remote_store, A)
    assert landed(local_store, remote, md5(A)) == []
    assert local_store.get_json(key)["assets"]["a.csv"][AVAILABLE] is False


def test_concurrent_landings_on_one_item_both_stick(tmp_path: Any, remote_store: ObjectStore,
                                                    remote: DictRemote) -> None:
    from chalicelib.store.local import LocalStore
    store = InstrumentedStore(LocalStore(tmp_path / "catalog", fsync=False))
    key = publish(store, remote)
    push(remote_store, A)
    push(remote_store, B)
    # thread "a" reads the item, then is held before its write; "b" marks its asset meanwhile
    pause = store.pause("before", ("PUT", "DELETE"), thread="a")
    result_a, error_a, result_b, error_b = run_paused(
        pause, lambda: landed(store, remote, md5(A)), "a", lambda: landed(store, remote, md5(B)))
    assert (error_a, error_b) == (None, None)
    assert result_a == [key]
    assert result_b == [key]
    item = store.get_json(key)
    assert item["assets"]["a.csv"][AVAILABLE] is True
    assert item["assets"]["b.bin"][AVAILABLE] is True
    assert item["properties"][PENDING] == []


def test_many_threads_landing_at_once_converge(local_store: ObjectStore, remote_store: ObjectStore,
                                               remote: DictRemote) -> None:
    contents = [f"object {i}\n".encode() for i in range(8)]
    files = {f"o{i}.dvc": dvc_file(f"o{i}.txt", c) for i, c in enumerate(contents)}
    files[".dvc/config"] = dvc_config(REMOTE_URL)
    key = publish(local_store, remote, files)
    for c in contents:
        push(remote_store, c)
    barrier = threading.Barrier(len(contents))

    def land(c: bytes) -> None:
        barrier.wait()
        landed(local_store, remote, md5(c))
    threads = [threading.Thread(target=land, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert local_store.get_json(key)["properties"][PENDING] == []


def test_one_object_shared_by_two_items_marks_both(local_store: ObjectStore, remote_store: ObjectStore,
                                                   remote: DictRemote) -> None:
    k1 = publish(local_store, remote)
    [k2] = availability.publish(local_store, remote, build(snapshot(FILES, path="eo/other"), remote))
    push(remote_store, A)
    assert sorted(landed(local_store, remote, md5(A))) == sorted([k1, k2])


def test_events_the_service_does_not_serve_change_nothing(local_store: ObjectStore, remote_store: ObjectStore,
                                                          remote: DictRemote) -> None:
    key = publish(local_store, remote)
    push(remote_store, A)
    before = local_store.get(key).etag
    assert availability.on_object_created(local_store, remote, "other-bucket", f"files/md5/{md5(A)[:2]}/"
                                          f"{md5(A)[2:]}") == []
    assert availability.on_object_created(local_store, remote, BUCKET, "project/README.md") == []
    local_store.delete(key)  # the item was removed meanwhile
    assert landed(local_store, remote, md5(A)) == []
    local_store.put_json(key, {"not": "an item"})
    assert landed(local_store, remote, md5(A)) == []
    assert local_store.get(key).etag != before


def test_references_are_create_only_and_idempotent(local_store: ObjectStore, remote: DictRemote) -> None:
    result = build(snapshot(FILES), remote)
    availability.record(local_store, result.references)
    availability.record(local_store, result.references)  # again: no error, nothing new
    keys = [i.key for i in local_store.list(availability.INDEX_PREFIX)]
    assert len(keys) == 2
    assert all(k.startswith(f"{availability.INDEX_PREFIX}{md5(A)}/") or k.startswith(f"{availability.INDEX_PREFIX}{md5(B)}/") for k in keys)
    assert availability.references(local_store, md5(A)) == [r for r in result.references if r.md5 == md5(A)]


def test_publish_settles_an_object_whose_event_ran_just_before_the_item_write(
        local_store: ObjectStore, remote_store: ObjectStore, remote: DictRemote) -> None:
    result = build(snapshot(FILES), remote)  # nothing pushed at build time

    def write(key: str, item: dict[str, Any]) -> None:
        push(remote_store, A)  # dvc push lands now, and its event is handled before the item exists
        assert landed(local_store, remote, md5(A)) == []
        local_store.put_json(key, item)
    [key] = availability.publish(local_store, remote, result, write=write)
    assert local_store.get_json(key)["properties"][PENDING] == ["b.bin"]


def test_a_rebuild_does_not_head_objects_the_stored_items_found(local_store: ObjectStore,
                                                                 remote_store: ObjectStore) -> None:
    counting = InstrumentedStore(remote_store)
    remote = DictRemote({REMOTE_URL: counting})
    files, manifest, contents = directory_files(3)
    files = {**files, **FILES}
    push(remote_store, A)
    push_dir(remote_store, manifest, contents)
    first = build(snapshot(files), remote)
    assert first.items[0]["properties"][PENDING] == ["b.bin"]
    heads = counting.calls["HEAD"]
    assert heads == 2 + 1 + 3  # a.csv, b.bin; the manifest (before its GET); its three files
    again = build(snapshot(files), remote, previous=first.items)
    assert counting.calls["HEAD"] - heads == 2  # the manifest (bounded read) and b.bin, still pending
    assert again.items == first.items
    push(remote_store, B)
    assert build(snapshot(files), remote, previous=first.items).items[0]["properties"][PENDING] == []


# -- request cost: presence of many objects is LISTed per object folder, not HEADed per object ----------
def folder_files(folders: int, per_folder: int) -> tuple[dict[str, bytes], bytes, list[bytes]]:
    """A directory of ``folders * per_folder`` files whose objects fall in ``folders`` remote folders
    (``files/md5/<2 hex>/``), ``per_folder`` in each."""
    by_folder: dict[str, list[bytes]] = {}
    i = 0
    while len(by_folder) < folders or any(len(v) < per_folder for v in by_folder.values()):
        data = f"file {i}\n".encode()
        i += 1
        prefix = md5(data)[:2]
        if prefix in by_folder and len(by_folder[prefix]) < per_folder:
            by_folder[prefix].append(data)
        elif prefix not in by_folder and len(by_folder) < folders:
            by_folder[prefix] = [data]
    contents = [c for group in by_folder.values() for c in group]
    manifest = json.dumps([{"md5": md5(c), "relpath": f"f{i:03}.txt"} for i, c in enumerate(contents)]).encode()
    dvc = (f"outs:\n- md5: {md5(manifest)}.dir\n  size: {sum(map(len, contents))}\n  nfiles: {len(contents)}\n"
           f"  hash: md5\n  path: images\n").encode()
    return {"images.dvc": dvc, ".dvc/config": dvc_config(REMOTE_URL)}, manifest, contents


K, PER = 6, 5  # 30 files in 6 folders


def test_building_n_files_in_k_folders_costs_at_most_k_lists_and_no_file_heads(remote_store: ObjectStore) -> None:
    files, manifest, contents = folder_files(K, PER)
    push_dir(remote_store, manifest, contents[1:])  # the first file is not pushed yet
    push(remote_store, b"another project's file")  # other objects in the remote are not in the way
    wrong = contents[PER]  # the first file of the second folder: its bytes differ in the remote
    remote_store.put(f"files/md5/{md5(wrong)[:2]}/{md5(wrong)[2:]}", wrong + b"more")
    counting = InstrumentedStore(remote_store)
    result = build(snapshot(files), DictRemote({REMOTE_URL: counting}))
    assert counting.calls["LIST"] <= K
    assert counting.calls["HEAD"] == 1  # the manifest's, before its bounded GET; none for the files
    item = result.items[0]
    assert len(item["assets"]) == K * PER
    assert sorted(item["properties"][PENDING]) == sorted(["images/f000.txt", f"images/f{PER:03}.txt"])
    assert any(f"images/f{PER:03}.txt: object has md5" in w for w in result.warnings)  # ETags checked as with HEADs
    for i, c in enumerate(contents[1:], start=1):
        if i != PER:
            assert item["assets"][f"images/f{i:03}.txt"][AVAILABLE] is True
            assert item["assets"][f"images/f{i:03}.txt"]["file:size"] == len(c)


def test_a_small_remote_is_read_with_one_listing_for_all_folders(remote_store: ObjectStore) -> None:
    files, manifest, contents = folder_files(K, PER)
    push_dir(remote_store, manifest, contents)
    counting = InstrumentedStore(remote_store)
    item = build(snapshot(files), DictRemote({REMOTE_URL: counting})).items[0]
    assert item["properties"][PENDING] == []
    assert counting.calls["LIST"] == 1  # files/md5/ once, not a LIST per folder
    assert [call.key for call in counting.log if call.verb == "LIST"] == ["files/md5/"]


def test_a_remote_too_large_to_sweep_is_listed_per_folder(remote_store: ObjectStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(items_module, "SWEEP_ITEMS_PER_FOLDER", 1)  # the sweep's budget: K objects
    files, manifest, contents = folder_files(K, PER)
    push_dir(remote_store, manifest, contents)
    counting = InstrumentedStore(remote_store)
    item = build(snapshot(files), DictRemote({REMOTE_URL: counting})).items[0]
    assert item["properties"][PENDING] == []
    assert counting.calls["LIST"] == 1 + K  # the abandoned sweep, then one per folder


def test_a_landing_manifest_expands_with_at_most_k_lists(local_store: ObjectStore, remote_store: ObjectStore) -> None:
    counting = InstrumentedStore(remote_store)
    remote = DictRemote({REMOTE_URL: counting})
    files, manifest, contents = folder_files(K, PER)
    key = publish(local_store, remote, files)  # nothing pushed: one pending manifest asset
    push_dir(remote_store, manifest, contents)
    before = counting.calls.copy()
    assert landed(local_store, remote, md5(manifest), isdir=True) == [key]
    assert counting.calls["LIST"] - before["LIST"] <= K
    assert counting.calls["HEAD"] - before["HEAD"] == 2  # the landed manifest, then its bounded read
    item = local_store.get_json(key)
    assert len(item["assets"]) == K * PER
    assert item["properties"][PENDING] == []


def test_a_few_objects_are_headed_not_listed(remote_store: ObjectStore) -> None:
    counting = InstrumentedStore(remote_store)
    push(remote_store, A)
    build(snapshot(FILES), DictRemote({REMOTE_URL: counting}))  # a.csv and b.bin: one object per folder
    assert counting.calls["LIST"] == 0
    assert counting.calls["HEAD"] == 2


class NoListStore(InstrumentedStore):
    """A remote whose credentials may read objects but not list them."""

    def list(self, prefix: str = "", *, start_after: str | None = None, limit: int | None = None) -> Any:
        self.calls["LIST"] += 1
        raise PermissionError("AccessDenied: s3:ListBucket")


def test_a_remote_that_cannot_be_listed_is_headed_instead(remote_store: ObjectStore,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    files, manifest, contents = folder_files(K, PER)
    push_dir(remote_store, manifest, contents[1:])
    store = NoListStore(remote_store)
    item = build(snapshot(files), DictRemote({REMOTE_URL: store})).items[0]
    assert item["properties"][PENDING] == ["images/f000.txt"]
    assert store.calls["HEAD"] == 1 + K * PER
    assert sum("cannot list" in r.getMessage() for r in caplog.records) == 1  # warned once, not per folder


def test_an_unreadable_remote_is_absent_with_a_warning(remote_store: ObjectStore,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from chalicelib.datasets.items import probe
    files, manifest, contents = folder_files(2, 3)
    push_dir(remote_store, manifest, contents)

    class Down(NoListStore):
        def head(self, key: str) -> Any:
            raise ConnectionError("remote down")
    keys = [f"files/md5/{md5(c)[:2]}/{md5(c)[2:]}" for c in contents]
    assert probe(Down(remote_store), keys) == dict.fromkeys(keys)
    assert any("cannot read" in r.getMessage() for r in caplog.records)
    assert {k: (i.size if i else None) for k, i in probe(remote_store, keys).items()} == {
        k: len(c) for k, c in zip(keys, contents)}
