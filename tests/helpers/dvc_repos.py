"""DVC test material: a real git + dvc repository on an S3 remote, DVC file builders, a dict of remotes."""
from __future__ import annotations

import os
import pathlib
import subprocess
from datetime import datetime, timezone
from typing import Mapping

from chalicelib.datasets.snapshot import ProjectSnapshot, Tag
from chalicelib.store import ObjectStore
from tests.helpers.paths import REPO


def dvc_cli() -> str | None:
    path = os.environ.get("STACFLOW_DVC") or str(REPO / ".venv-dvc" / "bin" / "dvc")
    return path if os.access(path, os.X_OK) else None


class DictRemote:
    """``Remote`` over a fixed mapping of remote URL -> store."""

    def __init__(self, stores: Mapping[str, ObjectStore]) -> None:
        self.stores = {u.rstrip("/"): s for u, s in stores.items()}

    def store_for(self, url: str) -> ObjectStore | None:
        return self.stores.get(url.rstrip("/"))


class DvcRepo:
    """A git repository with DVC initialised and an S3 remote ``s3://<bucket>/dvc`` on moto."""

    def __init__(self, root: pathlib.Path, endpoint: str, bucket: str) -> None:
        self.root, self.endpoint, self.bucket = root, endpoint, bucket
        self.remote_url = f"s3://{bucket}/dvc"
        root.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                        AWS_DEFAULT_REGION="us-east-1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t",
                        GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
                        GIT_COMMITTER_EMAIL="t@example.org", DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site"))
        self.git("init", "-q", "-b", "main")
        self.dvc("init", "-q")
        self.dvc("remote", "add", "-d", "storage", self.remote_url)
        self.dvc("remote", "modify", "storage", "endpointurl", endpoint)
        self.git("add", "-A")
        self.git("commit", "-qm", "dvc init")

    def run(self, *args: str) -> str:
        done = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def git(self, *args: str) -> str:
        return self.run("git", *args)

    def dvc(self, *args: str) -> str:
        cli = dvc_cli()
        assert cli is not None
        return self.run(cli, *args)

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def commit(self, message: str, tag: str | None = None) -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        if tag:
            self.git("tag", tag)
        return self.git("rev-parse", "HEAD").strip()

    def snapshot(self, ref: str, *, project_id: int = 42, path: str = "eo/sentinel-tiles",
                 topics: tuple[str, ...] = ("sharinghub:dataset", "earth-observation"),
                 visibility: str = "public", is_tag: bool = True, tags: tuple[str, ...] | None = None,
                 with_tree: bool = False) -> ProjectSnapshot:
        """The snapshot a GitLab reader would give at ``ref``: files read with ``git show``."""
        names = self.git("ls-tree", "-r", "--name-only", ref).split("\n")
        names = [n for n in names if n]
        wanted = [n for n in names if n.lower() == "readme.md" or n.endswith(".dvc")
                  or n.rsplit("/", 1)[-1] == "dvc.lock" or n == ".dvc/config"]
        files = {n: self.run("git", "show", f"{ref}:{n}").encode() for n in wanted}
        tag_names = tags if tags is not None else tuple(
            t for t in self.git("tag", "--sort=creatordate").split("\n") if t)
        tag_objs = tuple(Tag(t, self.git("rev-parse", f"{t}^{{commit}}").strip(), self._date(t)) for t in tag_names)
        commit = self.git("rev-parse", f"{ref}^{{commit}}").strip()
        web = f"https://gitlab.example/{path}"
        return ProjectSnapshot(
            id=project_id, path=path, web_url=web, http_url_to_repo=web + ".git", name=path.rsplit("/", 1)[-1],
            description="Sentinel-2 tiles for training", topics=topics, visibility=visibility,
            default_branch="main", ref=ref, commit=commit, committed_at=self._date(ref), is_tag=is_tag,
            tags=tag_objs, files=files, tree=tuple(names) if with_tree else ())

    def _date(self, ref: str) -> str:
        stamp = int(self.git("log", "-1", "--format=%ct", ref).strip())
        return datetime.fromtimestamp(stamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def md5(data: bytes) -> str:
    import hashlib
    return hashlib.md5(data).hexdigest()


def dvc_file(path: str, data: bytes) -> bytes:
    """A ``.dvc`` file as DVC 3 writes it for ``data`` at ``path``."""
    return f"outs:\n- md5: {md5(data)}\n  size: {len(data)}\n  hash: md5\n  path: {path}\n".encode()


def dvc_config(url: str) -> bytes:
    return f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {url}\n".encode()


def push(remote: ObjectStore, data: bytes) -> str:
    """Put ``data`` where a DVC 3 remote keeps it; returns its md5."""
    digest = md5(data)
    remote.put(f"files/md5/{digest[:2]}/{digest[2:]}", data)
    return digest


def snapshot(files: Mapping[str, bytes] | None = None, *, ref: str = "v1", is_tag: bool = True,
             tags: tuple[str, ...] = ("v1",), topics: tuple[str, ...] = ("sharinghub:dataset",),
             path: str = "eo/tiles", tree: tuple[str, ...] = ()) -> ProjectSnapshot:
    web = f"https://gitlab.example/{path}"
    return ProjectSnapshot(
        id=7, path=path, web_url=web, http_url_to_repo=web + ".git", name=path.rsplit("/", 1)[-1],
        description="GitLab description", topics=topics, visibility="internal", default_branch="main", ref=ref,
        commit="c0ffee" * 6 + "abcd", committed_at="2024-05-02T10:00:00Z", is_tag=is_tag,
        tags=tuple(Tag(t, f"{i:040x}", f"2024-0{i + 1}-01T00:00:00Z") for i, t in enumerate(tags)),
        files=dict(files or {}), tree=tree)


REMOTE_URL = "s3://dvc-remote/project"
