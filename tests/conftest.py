"""Shared fixtures: stores (local directory, S3 over HTTP via moto's server), a live service."""
from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def _find_tools() -> pathlib.Path:
    env = os.environ.get("STAC_OFFLINE_TOOLS")
    if env:
        return pathlib.Path(env)
    for parent in pathlib.Path(__file__).resolve().parents:
        cand = parent / "shared" / "tools"
        if (cand / "stac_offline.py").is_file():
            return cand
    raise RuntimeError("shared/tools/stac_offline.py not found; set STAC_OFFLINE_TOOLS")


TOOLS = _find_tools()
sys.path.insert(0, str(TOOLS))

# Tests never talk to real AWS.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.request
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            if time.time() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode: real S3 over HTTP, conditional writes included."""
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    server.stop()


def new_bucket(endpoint: str) -> str:
    import boto3
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def local_store(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    from chalicelib.store.local import LocalStore
    return LocalStore(tmp_path / "store", fsync=False)


@pytest.fixture
def s3_store(moto_endpoint: str):  # type: ignore[no-untyped-def]
    from chalicelib.store.s3 import S3Store
    return S3Store(new_bucket(moto_endpoint), "pre/fix")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Every contract test runs against both adapters."""
    return request.getfixturevalue(f"{request.param}_store")


class LiveServer:
    """``stacflow serve`` in a subprocess: the real command, over real HTTP."""

    def __init__(self, store_uri: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store_uri = store_uri
        full_env = dict(os.environ, **(env or {}))
        # The access log goes to a file: an unread pipe would fill up and stall the server.
        self.log = tempfile.NamedTemporaryFile(prefix="stacflow-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli", "serve", "--port", str(self.port), "--store", store_uri],
            cwd=REPO, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/health", proc=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def live_server_factory() -> Iterator[type[LiveServer]]:
    started: list[LiveServer] = []

    def start(store_uri: str, env: dict[str, str] | None = None) -> LiveServer:
        server = LiveServer(store_uri, env)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The fuzz suites' budget, whenever they ran (also under -q, as CI runs)."""
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    if any("test_fuzz_" in getattr(r, "nodeid", "") for r in reports):
        from tests.fuzzing import budget
        terminalreporter.write_line(budget())
