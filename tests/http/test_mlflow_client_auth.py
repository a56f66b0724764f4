"""The unmodified mlflow client with GitLab credentials against ``stacflow serve`` with access control on.

``MLFLOW_TRACKING_TOKEN`` (Bearer) and ``MLFLOW_TRACKING_USERNAME/PASSWORD`` (Basic, token as password):
a developer logs a run, params, metrics and an artifact and registers a model version on their
project; a guest is refused writes there. The server's log and the store never hold a token.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers.access_world import AccessWorld, build_world
from tests.helpers.fake_gitlab import FakeGitLab
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world() -> Iterator[AccessWorld]:
    with FakeGitLab() as gl:
        yield build_world(gl)


@pytest.fixture(scope="module")
def server(world: AccessWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("auth-e2e")
    server = LiveServer(f"file://{root}/store", {
        "STACFLOW_AUTH": "gitlab", "STACFLOW_GITLAB_URL": world.gl.url, "STACFLOW_GITLAB_TOKEN": world.gl.token,
        "STACFLOW_SIGNING_KEY": "e2e-signing-key-0123456789"})
    yield server
    server.stop()


@contextmanager
def _as(server: LiveServer, **env: str) -> Iterator[Any]:
    import mlflow
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(server.url + "/mlflow")
        try:
            yield mlflow.MlflowClient()
        finally:
            mlflow.set_tracking_uri(None)


def _error_code(err: BaseException) -> str:
    return str(getattr(err, "error_code", ""))


def test_a_developer_tracks_and_registers_and_a_guest_is_refused(server: LiveServer, world: AccessWorld,
                                                                 tmp_path: Path) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    project = world.project_path("private")
    developer = world.tokens["developer"] or ""
    with _as(server, MLFLOW_TRACKING_TOKEN=developer) as client:
        eid = client.create_experiment("e2e-private", tags={"stacflow.project": project})
        with mlflow.start_run(experiment_id=eid) as run:
            mlflow.log_param("lr", "0.1")
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_metric("loss", 0.25, step=2)
            (tmp_path / "notes.txt").write_text("hello")
            mlflow.log_artifact(str(tmp_path / "notes.txt"))
        client.create_registered_model("e2e-model", tags={"stacflow.project": project})
        version = client.create_model_version("e2e-model", f"{run.info.artifact_uri}", run_id=run.info.run_id)
        assert version.version == "1"
        stored = client.get_run(run.info.run_id)
        assert stored.data.params == {"lr": "0.1"}
        assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["notes.txt"]

    guest = world.tokens["guest"] or ""
    with _as(server, MLFLOW_TRACKING_USERNAME="guest", MLFLOW_TRACKING_PASSWORD=guest) as client:
        assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}  # Guest reads
        local = client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "down"))
        assert Path(local).read_text() == "hello"
        with pytest.raises(MlflowException) as refused:
            client.log_param(run.info.run_id, "lr2", "1")
        assert _error_code(refused.value) == "PERMISSION_DENIED"
        with pytest.raises(MlflowException) as refused:
            client.create_experiment("e2e-guest", tags={"stacflow.project": project})
        assert _error_code(refused.value) == "PERMISSION_DENIED"

    with _as(server, MLFLOW_TRACKING_TOKEN=world.tokens["non-member"] or "") as client:
        with pytest.raises(MlflowException) as refused:
            client.get_run(run.info.run_id)
        assert _error_code(refused.value) == "PERMISSION_DENIED"
        assert [e.name for e in client.search_experiments()] == ["Default"]

    with _as(server) as client:
        with pytest.raises(MlflowException) as refused:
            client.get_run(run.info.run_id)
        assert _error_code(refused.value) == "UNAUTHENTICATED"

    with _as(server, MLFLOW_TRACKING_TOKEN="glpat-revoked-or-wrong") as client:
        with pytest.raises(MlflowException) as refused:
            client.search_experiments()
        assert _error_code(refused.value) == "UNAUTHENTICATED"

    log = Path(server.log.name).read_bytes()
    store = Path(server.store_uri[len("file://"):])
    for token in (developer, guest):
        assert token.encode() not in log
        assert not [p for p in store.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]


def test_serve_warns_loudly_when_access_control_is_off(tmp_path: Path) -> None:
    server = LiveServer(f"file://{tmp_path}/store", {"STACFLOW_AUTH": "off"})
    try:
        log = Path(server.log.name).read_text()
    finally:
        server.stop()
    assert "ACCESS CONTROL IS OFF" in log
