"""``GitLabReader``: python-gitlab against the loopback fake GitLab, over real git repositories."""
from __future__ import annotations

import logging
import pathlib
from typing import Iterator

import pytest

from chalicelib.datasets.gitlab import GitLabReader, GitLabUnavailable, ReadLimits, order_tags, utc, wanted
from chalicelib.datasets.snapshot import Tag
from tests.helpers.fake_gitlab import FakeGitLab, commit, git, init_repo, tag

README = "---\ntitle: Sentinel tiles\nlicense: CC-BY-4.0\n---\n# Tiles\n"
OPT_IN = "---\ntitle: Sentinel tiles\nstacflow:\n  publish_default_branch: true\n---\n"
DVC = "outs:\n- md5: {md5}\n  size: 12\n  hash: md5\n  path: {path}\n"
FAST = ReadLimits(max_retries=2, timeout=5.0)


@pytest.fixture
def gl() -> Iterator[FakeGitLab]:
    with FakeGitLab() as fake:
        yield fake


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    repo = init_repo(tmp_path / "repo", {
        "README.md": README, "data.dvc": DVC.format(md5="a" * 32, path="data"),
        "labels/labels.dvc": DVC.format(md5="b" * 32, path="labels.csv"), "pipeline/dvc.lock": "schema: '2.0'\n",
        ".dvc/config": "[core]\n    remote = store\n['remote \"store\"']\n    url = s3://bucket/dvc\n",
        ".dvc/.gitignore": "/config.local\n", ".dvcignore": "", "src/train.py": "print('x')\n",
        "docs/README.md": "not the root README\n", "notes.dvc.txt": "not a dvc file\n"})
    tag(repo, "v1")
    commit(repo, {"data.dvc": DVC.format(md5="c" * 32, path="data")}, "new data")
    tag(repo, "v2", message="second version")
    return repo


def _reader(gl: FakeGitLab, limits: ReadLimits = FAST, token: str | None = None) -> GitLabReader:
    return GitLabReader(gl.url, token or gl.token, limits=limits)


def test_one_snapshot_per_tag_oldest_first_with_the_files_the_builder_needs(gl: FakeGitLab,
                                                                            repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/sentinel-tiles", topics=["sharinghub:dataset", "eo"], visibility="internal",
                       description="Tiles", http_url_to_repo="https://gitlab.example/eo/sentinel-tiles.git")
    v1, v2 = _reader(gl).snapshots(p.id)
    assert [(s.ref, s.is_tag) for s in (v1, v2)] == [("v1", True), ("v2", True)]
    for s in (v1, v2):
        assert (s.id, s.path, s.name, s.description, s.visibility, s.default_branch) == (
            p.id, "eo/sentinel-tiles", "sentinel-tiles", "Tiles", "internal", "main")
        assert s.topics == ("sharinghub:dataset", "eo")
        assert s.web_url == f"{gl.url}/eo/sentinel-tiles"
        assert s.http_url_to_repo == "https://gitlab.example/eo/sentinel-tiles.git"
        assert [t.name for t in s.tags] == ["v1", "v2"]
        assert sorted(s.files) == [".dvc/config", "README.md", "data.dvc", "labels/labels.dvc", "pipeline/dvc.lock"]
        for path, body in s.files.items():
            assert body == git(repo, "cat-file", "blob", f"{s.ref}:{path}")
        assert s.commit == git(repo, "rev-parse", f"{s.ref}^{{commit}}").decode().strip()
        assert s.committed_at.endswith("Z")
        assert {"src/train.py", "docs/README.md", "data.dvc"} <= set(s.tree)  # every file, for asset globs
    assert v1.files["data.dvc"] != v2.files["data.dvc"]
    assert v1.tags[0].commit == v1.commit
    assert v2.tags[1].commit == v2.commit


def test_only_the_needed_files_are_downloaded_and_shared_blobs_once(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    _reader(gl).snapshots(p.id)
    raw = [path for path in gl.paths_requested() if path.endswith("/raw")]
    names = sorted(path.split("/repository/files/")[1].rsplit("/raw", 1)[0] for path in raw)
    # README, labels, dvc.lock and .dvc/config are the same blobs at v1 and v2: read once; data.dvc differs
    assert names == sorted([".dvc%2Fconfig", "README.md", "data.dvc", "data.dvc", "labels%2Flabels.dvc",
                            "pipeline%2Fdvc.lock"])


def test_a_project_without_a_published_topic_reads_nothing_more(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/code", topics=["python"])
    assert _reader(gl).snapshots(p.id) == []
    assert gl.paths_requested() == [f"/api/v4/projects/{p.id}"]


def test_aimodel_projects_are_read_too(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/unet", topics=["sharinghub:aimodel"])
    assert [s.ref for s in _reader(gl).snapshots(p.id)] == ["v1", "v2"]


def test_unknown_and_deleted_projects_read_as_absent(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    reader = _reader(gl)
    assert reader.project_exists(p.id)
    assert reader.project(p.id) is not None
    assert reader.snapshots(9999) == []
    assert not reader.project_exists(9999)
    gl.delete_project(p.id)
    assert reader.snapshots(p.id) == []
    assert not reader.project_exists(p.id)


def test_a_refused_token_is_an_outage_not_a_deletion(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    with pytest.raises(GitLabUnavailable):
        _reader(gl, token="glpat-wrong").snapshots(p.id)
    with pytest.raises(GitLabUnavailable):
        _reader(gl, token="glpat-wrong").project_exists(p.id)


def test_transient_errors_are_retried_then_reported(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    gl.fail("/repository/tags", 502, times=2)
    gl.fail("/repository/files/data.dvc/raw", 503, times=1)
    assert [s.ref for s in _reader(gl).snapshots(p.id)] == ["v1", "v2"]  # python-gitlab retried
    gl.fail("/repository/tree", 500, times=100)
    with pytest.raises(GitLabUnavailable):
        _reader(gl).snapshots(p.id)
    gl.fail(f"/projects/{p.id}", 503, times=100)
    with pytest.raises(GitLabUnavailable):
        _reader(gl).snapshots(p.id)


def test_the_default_branch_is_read_only_when_its_readme_opts_in(gl: FakeGitLab, repo: pathlib.Path) -> None:
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    assert [s.ref for s in _reader(gl).snapshots(p.id)] == ["v1", "v2"]
    head = commit(repo, {"README.md": OPT_IN, "extra.dvc": DVC.format(md5="d" * 32, path="extra")}, "opt in")
    *tags, dev = _reader(gl).snapshots(p.id)
    assert [s.ref for s in tags] == ["v1", "v2"]
    assert (dev.ref, dev.is_tag, dev.commit) == ("main", False, head)
    assert "extra.dvc" in dev.files
    assert dev.files["README.md"] == OPT_IN.encode()


def test_files_over_the_size_bound_are_skipped_not_truncated(gl: FakeGitLab, repo: pathlib.Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    commit(repo, {"huge.dvc": b"outs:\n" + b"#" * (300 << 10)}, "hostile")
    tag(repo, "v3")
    p = gl.add_project(repo, "eo/tiles", topics=["sharinghub:dataset"])
    with caplog.at_level(logging.WARNING, logger="chalicelib.datasets.gitlab"):
        *_, v3 = _reader(gl, ReadLimits(max_file_bytes=100 << 10, max_retries=1)).snapshots(p.id)
    assert "huge.dvc" not in v3.files
    assert "data.dvc" in v3.files
    assert any("huge.dvc" in r.getMessage() and "eo/tiles" in r.getMessage() for r in caplog.records)


def test_counts_and_total_bytes_are_bounded(gl: FakeGitLab, tmp_path: pathlib.Path) -> None:
    repo = init_repo(tmp_path / "many", {f"d{i:03}.dvc": DVC.format(md5=f"{i:032x}", path=f"d{i}") for i in range(30)})
    for i in range(5):
        tag(repo, f"v{i}")
    p = gl.add_project(repo, "eo/many", topics=["sharinghub:dataset"])
    few_files = _reader(gl, ReadLimits(max_files=10, max_retries=1)).snapshots(p.id)
    assert all(len(s.files) == 10 for s in few_files)
    few_bytes = _reader(gl, ReadLimits(max_ref_bytes=500, max_retries=1)).snapshots(p.id)
    assert all(0 < sum(map(len, s.files.values())) <= 500 for s in few_bytes)
    few_entries = _reader(gl, ReadLimits(max_tree_entries=5, max_retries=1)).snapshots(p.id)
    assert all(len(s.files) == 5 for s in few_entries)
    newest = _reader(gl, ReadLimits(max_tags=2, max_retries=1)).snapshots(p.id)
    assert [s.ref for s in newest] == ["v3", "v4"]
    assert [t.name for t in newest[0].tags] == ["v3", "v4"]


def test_lists_are_paginated(gl: FakeGitLab, tmp_path: pathlib.Path) -> None:
    """More tags and tree entries than one page: python-gitlab follows GitLab's Link headers."""
    repo = init_repo(tmp_path / "big", {f"f{i:03}.txt": str(i) for i in range(120)} | {"z.dvc": DVC.format(
        md5="e" * 32, path="z")})
    p = gl.add_project(repo, "eo/big", topics=["sharinghub:dataset"])
    tag(repo, "v0")
    [snap] = _reader(gl).snapshots(p.id)
    assert snap.files.keys() == {"z.dvc"}  # on the tree's second page
    assert any("/repository/tree" in path and "page=2" in path for _, path in gl.requests)
    small = init_repo(tmp_path / "tags", {"a.dvc": DVC.format(md5="e" * 32, path="a")})
    for i in range(1, 103):
        tag(small, f"v{i}")
    q = gl.add_project(small, "eo/tags", topics=["sharinghub:dataset"])
    snaps = _reader(gl).snapshots(q.id)
    assert [s.ref for s in snaps] == [f"v{i}" for i in range(1, 103)]  # natural order within one second
    assert any("/repository/tags" in path and "page=2" in path for _, path in gl.requests)


def test_tag_order_and_dates() -> None:
    same = "2024-05-01T10:00:00Z"
    tags = [Tag("v10", "c", same), Tag("v2", "b", same), Tag("v1", "a", "2024-04-01T00:00:00Z")]
    assert [t.name for t in order_tags(tags)] == ["v1", "v2", "v10"]
    assert utc("2024-05-01T12:00:00.000+02:00") == "2024-05-01T10:00:00Z"
    assert utc("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00Z"


@pytest.mark.parametrize("path, needed", [
    ("README.md", True), ("readme.MD", True), ("docs/README.md", False), ("README.rst", False),
    ("data.dvc", True), ("a/b/c.dvc", True), ("dvc.lock", True), ("sub/dvc.lock", True),
    (".dvc/config", True), (".dvc/config.local", False), (".dvcignore", False), ("x.dvc.txt", False),
])
def test_wanted_files(path: str, needed: bool) -> None:
    assert wanted(path) is needed


def test_the_token_never_shows(gl: FakeGitLab) -> None:
    assert gl.token not in repr(_reader(gl))
