"""Shared fixtures: stores (local directory, S3 over HTTP via moto's server), a live service."""
from __future__ import annotations

import os
import pathlib
from typing import Any, Iterator

import pytest

import tests.helpers.paths  # noqa: F401 (puts the offline STAC tools on sys.path)
from tests.helpers.servers import LiveServer, free_port, new_bucket

# Tests never talk to real AWS.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


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
        from tests.helpers.fuzzing import budget
        terminalreporter.write_line(budget())
