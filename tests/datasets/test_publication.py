"""``sync_project``: GitLab's current state -> the project's items; redelivery, reordering, races, removals.

GitLab is the loopback fake over a real git repository, read with python-gitlab; the builder is
ds-j's, over hand-written DVC 3 files whose objects sit in a local stand-in of the S3 remote.
"""
from __future__ import annotations

import json
import pathlib
import threading
from typing import Any, Iterator

import pytest

from chalicelib.datasets import publication
from chalicelib.datasets.gitlab import GitLabReader, GitLabUnavailable, ReadLimits
from chalicelib.datasets.publication import (GONE_GRACE, DatasetContext, ProjectRecord, project_key, sync_changes,
                                             sync_project)
from chalicelib.datasets.snapshot import BuildSettings
from chalicelib.datasets.webhook import change_key
from chalicelib.store import ObjectStore, PreconditionFailed
from chalicelib.store.local import LocalStore
from tests.helpers.dvc_repos import REMOTE_URL, DictRemote, dvc_config, dvc_file, push
from tests.helpers.fake_gitlab import FakeGitLab, commit, git, init_repo, tag
from tests.helpers.stores import Call, Crash, InstrumentedStore, Pause

README = "---\ntitle: Sentinel tiles\nlicense: CC-BY-4.0\n---\n# Tiles\n"
A, B = b"first file\n" * 10, b"second file, changed\n" * 10


def items(store: ObjectStore, cid: str = "dataset") -> dict[str, dict[str, Any]]:
    return {info.key.rsplit("/", 1)[1][:-5]: store.get_json(info.key)
            for info in store.list(f"collections/{cid}/items/")}


class Env:
    def __init__(self, tmp: pathlib.Path, gl: FakeGitLab, store: ObjectStore, remote_store: ObjectStore) -> None:
        self.gl, self.store, self.remote_store = gl, store, remote_store
        self.repo = init_repo(tmp / "repo", {"README.md": README, ".dvc/config": dvc_config(REMOTE_URL),
                                             "data.bin.dvc": dvc_file("data.bin", A)})
        self.project = gl.add_project(self.repo, "eo/sentinel-tiles", topics=["sharinghub:dataset"])
        self.ctx = DatasetContext(store=store, reader=GitLabReader(gl.url, gl.token, limits=ReadLimits(max_retries=1)),
                                  remote=DictRemote({REMOTE_URL: remote_store}), build=BuildSettings())

    @property
    def pid(self) -> int:
        return self.project.id

    def sync(self) -> publication.SyncReport:
        return sync_project(self.ctx, self.pid)

    def version(self, name: str, data: bytes) -> None:
        commit(self.repo, {"data.bin.dvc": dvc_file("data.bin", data)}, f"data for {name}")
        tag(self.repo, name)

    def record(self) -> dict[str, Any]:
        return self.store.get_json(project_key(self.pid))  # type: ignore[no-any-return]


@pytest.fixture
def gl() -> Iterator[FakeGitLab]:
    with FakeGitLab() as fake:
        yield fake


@pytest.fixture
def env(tmp_path: pathlib.Path, gl: FakeGitLab, local_store: LocalStore, remote_store: ObjectStore) -> Env:
    return Env(tmp_path, gl, local_store, remote_store)


def test_each_tag_becomes_a_linked_version_item(env: Env) -> None:
    env.version("v1", A)
    env.version("v2", B)
    report = env.sync()
    published = items(env.store)
    assert len(published) == 2
    assert len(report.written) == 2
    v1, v2 = sorted(published.values(), key=lambda i: i["properties"]["version"])
    assert (v1["properties"]["version"], v2["properties"]["version"]) == ("v1", "v2")
    rels = {rel: [lk["href"] for lk in v1["links"] if lk["rel"] == rel] for rel in ("successor-version", "latest-version")}
    assert all(v2["id"] in href for hrefs in rels.values() for href in hrefs)
    assert rels["successor-version"]
    assert any(lk["rel"] == "predecessor-version" and v1["id"] in lk["href"] for lk in v2["links"])
    assert env.record()["items"] == sorted(f"collections/dataset/items/{i}.json" for i in published)


def test_redelivery_changes_nothing(env: Env) -> None:
    env.version("v1", A)
    env.sync()
    counted = InstrumentedStore(env.store)
    env.ctx.store = counted
    report = env.sync()
    assert report.written == []
    assert report.deleted == []
    assert report.unchanged == 1
    assert counted.calls["PUT"] == 0
    assert counted.calls["DELETE"] == 0


def test_a_deleted_tag_removes_its_item_and_relinks_the_others(env: Env) -> None:
    env.version("v1", A)
    env.version("v2", B)
    env.sync()
    git(env.repo, "tag", "-d", "v2")
    report = env.sync()
    [(iid, v1)] = items(env.store).items()
    assert len(report.deleted) == 1
    assert iid.endswith("-v1")
    assert not any(lk["rel"] == "successor-version" for lk in v1["links"])
    record = env.record()
    assert record["items"] == [f"collections/dataset/items/{iid}.json"]
    assert list(record["gone"]) == report.deleted  # re-checked by later syncs for GONE_GRACE


@pytest.mark.parametrize("change", ["topic", "deletion", "rename"])
def test_a_project_losing_its_topic_deleted_or_renamed_loses_its_items(env: Env, change: str) -> None:
    env.version("v1", A)
    env.sync()
    [old] = items(env.store)
    if change == "topic":
        env.gl.set_topics(env.pid, ["python"])
    elif change == "deletion":
        env.gl.delete_project(env.pid)
    else:
        env.gl.rename(env.pid, "eo/s2-tiles")
    env.sync()
    left = items(env.store)
    assert old not in left
    assert list(left) == ([] if change != "rename" else [next(iter(left))])
    if change == "rename":
        assert left[next(iter(left))]["properties"]["version"] == "v1"


def test_out_of_order_and_duplicated_change_records_converge_on_gitlabs_state(env: Env) -> None:
    """Records of tag v1, tag v2 and a deletion of v1, processed newest first and twice: GitLab's state wins."""
    env.version("v1", A)
    keys = [change_key(env.pid)]
    env.version("v2", B)
    keys.append(change_key(env.pid))
    git(env.repo, "tag", "-d", "v1")
    keys.append(change_key(env.pid))
    for key in keys:
        env.store.put_json(key, {"project_id": env.pid, "kind": "tag_push"}, notify=False)
    sync_changes(env.ctx, list(reversed(keys)) + keys)
    assert [i["properties"]["version"] for i in items(env.store).values()] == ["v2"]
    assert list(env.store.list("datasets/changes/")) == []  # processed records are removed
    sync_changes(env.ctx, keys)  # redelivered after removal: the key alone names the project
    assert [i["properties"]["version"] for i in items(env.store).values()] == ["v2"]


def test_gitlab_down_changes_nothing(env: Env) -> None:
    env.version("v1", A)
    env.sync()
    before = items(env.store)
    env.gl.fail(f"/projects/{env.pid}", 503, times=100)
    with pytest.raises(GitLabUnavailable):
        env.sync()
    assert items(env.store) == before


def test_items_of_others_are_never_overwritten(env: Env) -> None:
    env.version("v1", A)
    env.sync()
    [(iid, item)] = items(env.store).items()
    key = f"collections/dataset/items/{iid}.json"
    env.sync()
    foreign = {**item, "properties": {**item["properties"], "stacflow:project_id": 999, "title": "another project"}}
    env.store.put_json(key, foreign)
    commit(env.repo, {"README.md": README.replace("Sentinel tiles", "Renamed title")}, "title")
    git(env.repo, "tag", "-f", "v1")
    report = env.sync()
    assert report.conflicts == [key]
    assert env.store.get_json(key)["properties"]["title"] == "another project"
    env.gl.set_topics(env.pid, [])
    env.sync()
    assert env.store.exists(key)  # not ours to delete either


class Recording(InstrumentedStore):
    """Pauses/crashes chosen calls (``InstrumentedStore``) and keeps the title of every item PUT that succeeded."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.titles: list[str] = []

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> Any:
        info = super()._put(key, body, if_none_match=if_none_match, if_match=if_match, content_type=content_type)
        if key.startswith("collections/"):
            self.titles.append(json.loads(body)["properties"].get("title", ""))
        return info


def _item_put(call: Call) -> bool:
    return call.key.startswith("collections/")


def _pause_item_put(store: InstrumentedStore) -> Pause:
    """Hold thread A's first item PUT until the test releases it."""
    return store.pause("before", "PUT", _item_put, thread="A")


def _start(env: Env, store: ObjectStore) -> tuple[threading.Thread, list[BaseException]]:
    """A sync of ``env``'s project over ``store``, in a thread named "A"."""
    errors: list[BaseException] = []
    ctx = DatasetContext(store, env.ctx.reader, env.ctx.remote, env.ctx.build)

    def run() -> None:
        try:
            sync_project(ctx, env.pid)
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            errors.append(err)
    thread = threading.Thread(target=run, name="A")
    thread.start()
    return thread, errors


def _versions(env: Env) -> list[str]:
    return sorted(i["properties"]["version"] for i in items(env.store).values())


def test_a_stale_sync_finishing_last_does_not_resurrect_a_deleted_tag(env: Env) -> None:
    """A sees v2, claims it and stalls before writing it; v2 is deleted and B syncs (v2 is gone); A resumes and
    creates v2: its settle finds B's record, so it goes again and removes v2."""
    env.version("v1", A)
    env.sync()
    env.version("v2", B)
    paused = Recording(env.store)
    pause = _pause_item_put(paused)
    thread, errors = _start(env, paused)
    assert pause.reached.wait(10)  # A has claimed v2's key
    git(env.repo, "tag", "-d", "v2")
    env.sync()
    pause.release.set()
    thread.join(20)
    assert not errors
    assert _versions(env) == ["v1"]
    assert any(t.endswith("(v2)") for t in paused.titles)  # A did create v2 (and removed it again)
    assert env.record()["items"] == [f"collections/dataset/items/{next(iter(items(env.store)))}.json"]


def test_an_item_left_by_a_sync_that_died_is_removed_by_the_redelivery(env: Env) -> None:
    """As above, but A dies between creating v2 and settling: B's record keeps v2 as gone, so the
    redelivered event removes the orphan."""
    env.version("v1", A)
    env.sync()
    env.version("v2", B)
    paused = Recording(env.store)
    pause = _pause_item_put(paused)
    wrote = [False]

    def dies_settling(kind: str, key: str) -> bool:
        if threading.current_thread().name != "A" or kind != "PUT":
            return False
        wrote[0] = wrote[0] or key.startswith("collections/")
        return wrote[0] and key.startswith("datasets/projects/")
    paused.fail("before", "PUT", lambda call: dies_settling(call.verb, call.key))
    thread, errors = _start(env, paused)
    assert pause.reached.wait(10)
    git(env.repo, "tag", "-d", "v2")
    env.sync()
    pause.release.set()
    thread.join(20)
    assert [type(e) for e in errors] == [Crash]
    assert _versions(env) == ["v1", "v2"]  # the orphan
    assert list(env.record()["gone"]) == [k for k in env.record()["gone"] if "v2" in k] != []
    env.sync()  # the redelivered event
    assert _versions(env) == ["v1"]


def test_a_stale_sync_cannot_overwrite_a_newer_item(env: Env) -> None:
    """A builds v1 from an old README and stalls before writing; B publishes the new README; A's write is
    conditional on the ETag it read before GitLab, so the old title is never published."""
    env.version("v1", A)
    env.sync()
    commit(env.repo, {"README.md": README.replace("Sentinel tiles", "Old title")}, "old")
    git(env.repo, "tag", "-f", "v1")
    paused = Recording(env.store)
    pause = _pause_item_put(paused)
    thread, errors = _start(env, paused)
    assert pause.reached.wait(10)
    commit(env.repo, {"README.md": README.replace("Sentinel tiles", "New title")}, "new")
    git(env.repo, "tag", "-f", "v1")
    env.sync()
    pause.release.set()
    thread.join(20)
    assert not errors
    [item] = items(env.store).values()
    assert item["properties"]["title"].startswith("New title")
    assert not any(t.startswith("Old title") for t in paused.titles)


def test_gone_keys_expire_after_the_grace(env: Env) -> None:
    record = ProjectRecord(1, ["a", "b"], {"c": 100.0})
    settled = record.settled({"a"}, 200.0)
    assert settled.items == ["a"]
    assert settled.gone == {"b": 200.0, "c": 100.0}
    assert record.settled({"a"}, 100.0 + GONE_GRACE + 1).gone == {"b": 100.0 + GONE_GRACE + 1}


def test_concurrent_syncs_of_one_project_all_settle(env: Env) -> None:
    """Real threads on one project: every sync finishes, the catalog holds GitLab's state exactly once."""
    for n in range(1, 4):
        env.version(f"v{n}", bytes([n]) * 100)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            env.sync()
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(i["properties"]["version"] for i in items(env.store).values()) == ["v1", "v2", "v3"]
    assert len(env.record()["items"]) == 3


def test_a_lost_record_swap_is_retried(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.version("v1", A)
    real = publication._swap
    calls = []

    def flaky(store: ObjectStore, key: str, record: ProjectRecord, etag: str | None) -> str:
        calls.append(etag)
        if len(calls) == 1:
            raise PreconditionFailed(key)
        return real(store, key, record, etag)
    monkeypatch.setattr(publication, "_swap", flaky)
    report = env.sync()
    assert report.attempts == 2
    assert len(items(env.store)) == 1


def test_pending_assets_become_available_when_their_objects_land(env: Env) -> None:
    """No object pushed: the asset is pending; the object lands and its event marks it available."""
    from chalicelib.datasets.availability import object_landed
    env.version("v1", A)
    env.sync()
    [item] = items(env.store).values()
    assert item["properties"]["stacflow:pending_assets"] == ["data.bin"]
    digest = push(env.remote_store, A)
    url = f"{REMOTE_URL}/files/md5/{digest[:2]}/{digest[2:]}"
    assert object_landed(env.store, env.ctx.remote, url)
    [item] = items(env.store).values()
    assert item["properties"]["stacflow:pending_assets"] == []
    assert item["assets"]["data.bin"]["stacflow:available"]
    assert env.sync().written == []  # the rebuild agrees with what availability wrote
