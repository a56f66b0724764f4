"""A real git + DVC 3 repository whose S3 remote is moto's server, and snapshots of it at any ref.

The dvc CLI lives in its own venv (``make setup`` builds ``.venv-dvc``; ``STACFLOW_DVC`` overrides):
its aiobotocore pins would otherwise move the service's boto3/botocore.
"""
from __future__ import annotations

import pathlib
import shutil
from typing import Iterator

import pytest

from chalicelib.store import ObjectStore
from tests.helpers.dvc_repos import REMOTE_URL, DictRemote, DvcRepo, dvc_cli
from tests.helpers.servers import new_bucket


@pytest.fixture
def dvc_repo(tmp_path: pathlib.Path, moto_endpoint: str) -> Iterator[DvcRepo]:
    if dvc_cli() is None:
        pytest.skip("the dvc CLI is not installed: run `make setup` (builds .venv-dvc) or set STACFLOW_DVC")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    yield DvcRepo(tmp_path / "repo", moto_endpoint, new_bucket(moto_endpoint))


# -- synthetic projects (no dvc CLI): .dvc files written by hand, objects put into a store -----------
@pytest.fixture
def remote_store(tmp_path: pathlib.Path) -> ObjectStore:
    from chalicelib.store.local import LocalStore
    return LocalStore(tmp_path / "remote", fsync=False)


@pytest.fixture
def remote(remote_store: ObjectStore) -> DictRemote:
    return DictRemote({REMOTE_URL: remote_store})
