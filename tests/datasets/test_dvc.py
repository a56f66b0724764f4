"""DVC metadata: outputs of .dvc files and dvc.lock, remotes of .dvc/config, .dir manifests.

The fast tests feed text as DVC writes it; ``test_real_dvc_files`` parses what the real CLI wrote.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.datasets import dvc
from chalicelib.datasets.items import build
from tests.helpers.dvc_repos import REMOTE_URL, DvcRepo, dvc_config, dvc_file, md5, push, snapshot


class Collect:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, field: str, message: str) -> None:
        self.seen.append((field, message))

    def fields(self) -> list[str]:
        return [f for f, _ in self.seen]


LOCK = b"""schema: '2.0'
stages:
  prep:
    cmd: python prep.py
    deps:
    - path: raw.csv
      hash: md5
      md5: 0123456789abcdef0123456789abcdef
      size: 5
    outs:
    - path: out/dir
      hash: md5
      md5: bca542d7569c8c6cd294d44eeb5afcbe.dir
      size: 2
      nfiles: 1
    - path: out/prep.txt
      hash: md5
      md5: b1946ac92492d2347c6235b4d2611184
      size: 6
"""


def test_outputs_of_dvc_files_and_dvc_lock() -> None:
    warn = Collect()
    files = {"data/a.csv.dvc": dvc_file("a.csv", b"hello\n"), "sub/dvc.lock": LOCK,
             "README.md": b"not dvc", ".dvc/config": dvc_config(REMOTE_URL)}
    outs = dvc.outputs(files, warn)
    assert warn.seen == []
    assert [(o.path, o.md5, o.size, o.nfiles, o.isdir, o.legacy) for o in outs] == [
        ("data/a.csv", md5(b"hello\n"), 6, None, False, False),
        ("sub/out/dir", "bca542d7569c8c6cd294d44eeb5afcbe", 2, 1, True, False),
        ("sub/out/prep.txt", "b1946ac92492d2347c6235b4d2611184", 6, None, False, False)]
    assert outs[1].key == "files/md5/bc/a542d7569c8c6cd294d44eeb5afcbe.dir"
    assert outs[0].source == "data/a.csv.dvc"
    assert outs[1].source == "sub/dvc.lock"


@pytest.mark.parametrize("path", ["../../outside.csv", "/etc/passwd", "a/../../../b", "s3://bucket/key", "../..",
                                  "a\\..\\b", "x\x00y", 7])
def test_paths_leaving_the_repository_are_ignored_with_a_warning(path: Any) -> None:
    warn = Collect()
    text = f"outs:\n- md5: {'a' * 32}\n  size: 1\n  hash: md5\n  path: {json.dumps(path)}\n".encode()
    assert dvc.outputs({"data/x.dvc": text}, warn) == []
    assert warn.fields() == ["data/x.dvc: outs[0]"]
    assert "leaves the repository" in warn.seen[0][1]
    lock = f"stages:\n  s:\n    outs:\n    - md5: {'a' * 32}\n      path: {json.dumps(path)}\n".encode()
    assert dvc.outputs({"data/dvc.lock": lock}, warn) == []
    assert warn.fields()[-1] == "data/dvc.lock: s: outs[0]"


def test_paths_inside_are_normalized() -> None:
    text = f"outs:\n- md5: {'a' * 32}\n  hash: md5\n  path: ./b/../c.csv\n".encode()
    assert [o.path for o in dvc.outputs({"data/x.dvc": text}, Collect())] == ["data/c.csv"]
    up = f"outs:\n- md5: {'a' * 32}\n  hash: md5\n  path: ../c.csv\n".encode()
    assert [o.path for o in dvc.outputs({"data/x.dvc": up}, Collect())] == ["c.csv"]  # still inside
    wdir = f"wdir: ..\nouts:\n- md5: {'a' * 32}\n  hash: md5\n  path: c.csv\n".encode()
    assert [o.path for o in dvc.outputs({"data/x.dvc": wdir}, Collect())] == ["c.csv"]
    escaping = f"wdir: ../..\nouts:\n- md5: {'a' * 32}\n  hash: md5\n  path: c.csv\n".encode()
    warn = Collect()
    assert dvc.outputs({"data/x.dvc": escaping}, warn) == []
    assert warn.fields() == ["data/x.dvc"]


@pytest.mark.parametrize("text, field", [
    (b"outs: [unclosed", "x.dvc"),
    (b"- a\n- b\n", "x.dvc"),
    (b"outs:\n- path: a.csv\n", "x.dvc: outs[0]"),  # no md5 (not committed)
    (b"outs:\n- md5: xyz\n  path: a.csv\n", "x.dvc: outs[0]"),
    (b"outs:\n- 3\n", "x.dvc: outs[0]"),
    (b"outs:\n- md5: " + b"a" * 32 + b"\n  path: a.csv\n  cache: false\n", "x.dvc: outs[0]"),
    (b"outs:\n- md5: " + b"a" * 32 + b"\n  path: a.csv\n  push: false\n", "x.dvc: outs[0]"),
])
def test_malformed_dvc_files_are_skipped_with_a_warning(text: bytes, field: str) -> None:
    warn = Collect()
    assert dvc.outputs({"x.dvc": text}, warn) == []
    assert warn.fields() == [field]


def test_bad_sizes_are_left_out_and_legacy_hashes_recognized() -> None:
    warn = Collect()
    text = f"outs:\n- md5: {'a' * 32}\n  size: -3\n  path: a.csv\n".encode()
    [out] = dvc.outputs({"x.dvc": text}, warn)
    assert out.size is None
    assert out.legacy
    assert out.key == f"aa/{'a' * 30}"
    assert warn.fields() == ["x.dvc: outs[0]"]


def test_one_path_tracked_twice_keeps_the_first() -> None:
    warn = Collect()
    outs = dvc.outputs({"a.dvc": dvc_file("x.csv", b"1"), "b.dvc": dvc_file("x.csv", b"2")}, warn)
    assert [o.md5 for o in outs] == [md5(b"1")]
    assert warn.fields() == ["b.dvc"]


def test_remote_config() -> None:
    text = (b"[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://bucket/some/prefix\n"
            b"    endpointurl = http://127.0.0.1:1\n['remote \"other\"']\n    url = 's3://b2/x'\n")
    cfg = dvc.remote_config(text, Collect())
    assert cfg.default == "storage"
    assert cfg.urls == {"storage": "s3://bucket/some/prefix", "other": "s3://b2/x"}
    assert cfg.url_for(None) == "s3://bucket/some/prefix"
    assert cfg.url_for("other") == "s3://b2/x"
    assert cfg.url_for("missing") is None
    warn = Collect()
    assert dvc.remote_config(b"[core\nremote", warn).urls == {}
    assert warn.fields() == [".dvc/config"]
    assert dvc.remote_config(None, warn).default is None


def test_manifests() -> None:
    body = json.dumps([{"md5": "1" * 32, "relpath": "b.txt"}, {"md5": "2" * 32, "relpath": "a/c.txt"},
                       {"md5": "3" * 32, "relpath": "../escape"}, {"md5": "bad", "relpath": "d"}]).encode()
    warn = Collect()
    entries = dvc.manifest(body, "d", warn, max_entries=10)
    assert [(e.relpath, e.md5) for e in entries or []] == [("a/c.txt", "2" * 32), ("b.txt", "1" * 32)]
    assert len(warn.seen) == 2
    assert dvc.manifest(body, "d", warn, max_entries=3) is None  # too many: the manifest is the asset
    assert dvc.manifest(b"{not json", "d", warn, max_entries=3) is None
    assert dvc.manifest(b"[" * 10 + b"]" * 10, "d", warn, max_entries=3) is None


def test_object_keys() -> None:
    assert dvc.parse_object_key("dvc/files/md5/ab/" + "c" * 30) == ("dvc/", "ab" + "c" * 30, False, False)
    assert dvc.parse_object_key("files/md5/ab/" + "c" * 30 + ".dir") == ("", "ab" + "c" * 30, True, False)
    assert dvc.parse_object_key("p/ab/" + "c" * 30) == ("p/", "ab" + "c" * 30, False, True)
    assert dvc.parse_object_key("files/md5/ab/short") is None


def test_outputs_without_a_usable_remote_get_no_asset(remote: Any) -> None:
    files = {"a.dvc": dvc_file("a.csv", b"1"), "README.md": b"# x"}
    result = build(snapshot(files), remote)
    assert result.items[0]["assets"] == {}
    assert any("no DVC remote" in w for w in result.warnings)
    local = build(snapshot({**files, ".dvc/config": dvc_config("/mnt/dvc")}), remote)
    assert local.items[0]["assets"] == {}
    assert any("not a URL" in w for w in local.warnings)
    other = build(snapshot({**files, ".dvc/config": dvc_config("s3://elsewhere/x")}), remote)
    asset = other.items[0]["assets"]["a.csv"]
    assert asset["stacflow:available"] is False
    assert asset["href"].startswith("s3://elsewhere/x/files/md5/")
    assert any("not one of the configured DVC remotes" in w for w in other.warnings)


def test_the_asset_budget_bounds_the_item(remote_store: Any, remote: Any) -> None:
    from chalicelib.datasets.snapshot import BuildSettings
    files = {f"f{i}.dvc": dvc_file(f"f{i}.bin", bytes([i])) for i in range(5)}
    files[".dvc/config"] = dvc_config(REMOTE_URL)
    result = build(snapshot(files), remote, BuildSettings(max_assets=3))
    assert sorted(result.items[0]["assets"]) == ["f0.bin", "f1.bin", "f2.bin"]
    assert sum("more than 3 assets" in w for w in result.warnings) == 2


# -- the real CLI ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_dvc_files(dvc_repo: DvcRepo) -> None:
    """What `dvc add`, `dvc stage add` + `dvc repro` and `dvc remote add` write is read as intended."""
    r = dvc_repo
    r.write("data/a.csv", "x,y\n1,2\n")
    r.write("data/images/1.txt", "one\n")
    r.write("data/images/sub/2.txt", "two\n")
    r.dvc("add", "-q", "data/a.csv", "data/images")
    r.dvc("stage", "add", "-q", "-n", "prep", "-d", "data/a.csv", "-o", "out/copy.csv", "cp data/a.csv out/copy.csv")
    r.write("out/.keep", "")
    r.dvc("repro", "-q")
    r.commit("data", tag="v1")
    snap = r.snapshot("v1")
    warn = Collect()
    outs = {o.path: o for o in dvc.outputs(snap.files, warn)}
    assert warn.seen == []
    assert set(outs) == {"data/a.csv", "data/images", "out/copy.csv"}
    assert outs["data/a.csv"].md5 == md5(b"x,y\n1,2\n")
    assert outs["data/a.csv"].size == 8
    assert outs["out/copy.csv"].md5 == md5(b"x,y\n1,2\n")
    assert outs["out/copy.csv"].source == "dvc.lock"
    images = outs["data/images"]
    assert images.isdir
    assert images.nfiles == 2
    assert images.size == 8
    assert not images.legacy
    cfg = dvc.remote_config(snap.files[".dvc/config"], warn)
    assert cfg.url_for(None) == r.remote_url
    cached = (r.root / ".dvc" / "cache" / images.key).read_bytes()
    assert md5(cached) == images.md5  # a manifest's content hashes to the directory's md5
    entries = dvc.manifest(cached, "data/images", warn, max_entries=10)
    assert [(e.relpath, e.md5) for e in entries or []] == [("1.txt", md5(b"one\n")), ("sub/2.txt", md5(b"two\n"))]
