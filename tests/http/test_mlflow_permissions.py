"""The permission matrix of the MLflow side: every caller x every project visibility x every endpoint
family (tracking read, tracking write, registry, artifacts proxied and presigned, webhooks, browser
session), with anonymous read off and on. Every cell is asserted against ``access_world.ALLOWED``.

A refused call is 401 (anonymous) or 403 (a known user); an allowed one is anything else (calls that
must not destroy the fixtures aim at something absent, so an allowed delete answers 404).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from chalicelib.auth.access import Action
from chalicelib.auth.gitlab import GitLabApi
from chalicelib.auth.service import AccessService
from chalicelib.http.auth import COOKIE, session_codec
from chalicelib.settings import Settings
from tests.helpers.access_world import CALLERS, VISIBILITIES, AccessWorld, allowed, build_world, refusal
from tests.helpers.fake_gitlab import FakeGitLab

A = "/mlflow/api/2.0/mlflow"
ART = "/mlflow/api/2.0/mlflow-artifacts"
ORIGIN = "http://127.0.0.1:8000"
SECRET = "webhook-secret"
R, W, D = Action.READ, Action.WRITE, Action.DELETE


@dataclass
class Fixtures:
    world: AccessWorld
    store: Any
    settings: Settings
    experiments: dict[str, str] = field(default_factory=dict)  # visibility -> experiment id
    runs: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # visibility -> registered model name
    logged: dict[str, str] = field(default_factory=dict)  # visibility -> logged model id


def _call(client: Client, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
          raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    headers = dict(headers or {})
    if method == "GET":
        query = urlencode(body or {}, doseq=True)
        resp = client.http.get(f"{path}?{query}" if query else path, headers=headers)
    elif raw is not None:
        resp = getattr(client.http, method.lower())(path, body=raw,
                                                     headers={"Content-Type": "application/octet-stream", **headers})
    else:
        resp = getattr(client.http, method.lower())(path, body=json.dumps(body or {}),
                                                     headers={"Content-Type": "application/json", **headers})
    try:
        doc = json.loads(resp.body or b"{}")
    except ValueError:
        doc = {}
    return resp.status_code, doc


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _configure(fx: Fixtures, anonymous_read: bool) -> None:
    services.configure(store=fx.store, settings=fx.settings, access=AccessService(
        GitLabApi(fx.world.gl.url, 2.0), anonymous_read=anonymous_read, service_token=fx.world.gl.token))


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixtures]:
    from chalicelib.store.local import LocalStore
    with FakeGitLab() as gl:
        world = build_world(gl)
        store = LocalStore(tmp_path_factory.mktemp("perm") / "store", fsync=False)
        settings = Settings(store_uri=store.uri, public_url=ORIGIN, dispatch_events=False, auth="gitlab",
                            gitlab_url=gl.url, gitlab_token=gl.token, signing_key="k" * 32, webhook_secret=SECRET)
        fixtures = Fixtures(world, store, settings)
        _configure(fixtures, False)
        admin = _bearer(world.tokens["admin"])
        with Client(app) as client:
            for vis in VISIBILITIES:
                pid = world.project_id(vis)
                status, body = _call(client, "POST", f"{A}/experiments/create",
                                     {"name": f"exp-{vis}", "tags": [{"key": "stacflow.project", "value": pid}]}, admin)
                assert status == 200, body
                eid = fixtures.experiments[vis] = body["experiment_id"]
                status, body = _call(client, "POST", f"{A}/runs/create", {"experiment_id": eid}, admin)
                run_id = fixtures.runs[vis] = body["run"]["info"]["run_id"]
                _call(client, "POST", f"{A}/runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "1"}],
                                                            "metrics": [{"key": "m", "value": 1.0, "timestamp": 1}]},
                      admin)
                status, _ = _call(client, "PUT", f"{ART}/artifacts/{eid}/{run_id}/artifacts/a.txt", raw=b"hi",
                                  headers=admin)
                assert status == 200
                status, body = _call(client, "POST", f"{A}/logged-models", {"experiment_id": eid, "name": "lm"}, admin)
                assert status == 200, body
                fixtures.logged[vis] = body["model"]["info"]["model_id"]
                name = fixtures.models[vis] = f"model-{vis}"
                status, body = _call(client, "POST", f"{A}/registered-models/create",
                                     {"name": name, "tags": [{"key": "stacflow.project", "value": world.project_path(vis)}]},
                                     admin)
                assert status == 200, body
                status, body = _call(client, "POST", f"{A}/model-versions/create",
                                     {"name": name, "source": f"mlflow-artifacts:/{eid}/{run_id}/artifacts",
                                      "run_id": run_id}, admin)
                assert status == 200, body
        yield fixtures
    services.configure()


# -- the endpoint families: (name, action, call(client, fixtures, visibility, headers) -> status) ----
Call = Callable[[Client, Fixtures, str, dict[str, str]], int]


def _op(method: str, path: str, body: Callable[[Fixtures, str], Any] | None = None, raw: bytes | None = None,
        url: Callable[[Fixtures, str], str] | None = None) -> Call:
    def run(client: Client, f: Fixtures, vis: str, headers: dict[str, str]) -> int:
        target = url(f, vis) if url else path
        return _call(client, method, target, body(f, vis) if body else None, headers, raw)[0]
    return run


MLFLOW_READ: dict[str, tuple[Action, Call]] = {
    "experiments/get": (R, _op("GET", f"{A}/experiments/get", lambda f, v: {"experiment_id": f.experiments[v]})),
    "experiments/get-by-name": (R, _op("GET", f"{A}/experiments/get-by-name", lambda f, v: {"experiment_name": f"exp-{v}"})),
    "runs/get": (R, _op("GET", f"{A}/runs/get", lambda f, v: {"run_id": f.runs[v]})),
    "metrics/get-history": (R, _op("GET", f"{A}/metrics/get-history", lambda f, v: {"run_id": f.runs[v], "metric_key": "m"})),
    "logged-models/get": (R, _op("GET", "", url=lambda f, v: f"{A}/logged-models/{f.logged[v]}")),
}
MLFLOW_WRITE: dict[str, tuple[Action, Call]] = {
    "runs/create": (W, _op("POST", f"{A}/runs/create", lambda f, v: {"experiment_id": f.experiments[v]})),
    "runs/log-batch": (W, _op("POST", f"{A}/runs/log-batch",
                              lambda f, v: {"run_id": f.runs[v], "metrics": [{"key": "w", "value": 2.0, "timestamp": 2}]})),
    "runs/set-tag": (W, _op("POST", f"{A}/runs/set-tag", lambda f, v: {"run_id": f.runs[v], "key": "t", "value": "x"})),
    "experiments/set-experiment-tag": (W, _op("POST", f"{A}/experiments/set-experiment-tag",
                                              lambda f, v: {"experiment_id": f.experiments[v], "key": "k", "value": "v"})),
    "logged-models/params": (W, _op("POST", "", lambda f, v: {"params": [{"key": "q", "value": "1"}]},
                                    url=lambda f, v: f"{A}/logged-models/{f.logged[v]}/params")),
    "runs/restore (delete role)": (D, _op("POST", f"{A}/runs/restore", lambda f, v: {"run_id": f.runs[v]})),
    "logged-models delete (absent tag)": (W, _op("DELETE", "", url=lambda f, v: f"{A}/logged-models/{f.logged[v]}/tags/absent")),
}
REGISTRY: dict[str, tuple[Action, Call]] = {
    "registered-models/get": (R, _op("GET", f"{A}/registered-models/get", lambda f, v: {"name": f.models[v]})),
    "model-versions/get": (R, _op("GET", f"{A}/model-versions/get", lambda f, v: {"name": f.models[v], "version": "1"})),
    "get-download-uri": (R, _op("GET", f"{A}/model-versions/get-download-uri",
                                lambda f, v: {"name": f.models[v], "version": "1"})),
    "registered-models/set-tag": (W, _op("POST", f"{A}/registered-models/set-tag",
                                         lambda f, v: {"name": f.models[v], "key": "k", "value": "v"})),
    "model-versions/update": (W, _op("PATCH", f"{A}/model-versions/update",
                                     lambda f, v: {"name": f.models[v], "version": "1", "description": "d"})),
    "model-versions/delete (absent)": (D, _op("DELETE", f"{A}/model-versions/delete",
                                              lambda f, v: {"name": f.models[v], "version": "999"})),
}
ARTIFACTS: dict[str, tuple[Action, Call]] = {
    "proxied download": (R, _op("GET", "", url=lambda f, v: f"{ART}/artifacts/{f.experiments[v]}/{f.runs[v]}/artifacts/a.txt")),
    "proxied listing": (R, _op("GET", f"{ART}/artifacts",
                               lambda f, v: {"path": f"{f.experiments[v]}/{f.runs[v]}/artifacts"})),
    "proxied upload": (W, _op("PUT", "", raw=b"x",
                              url=lambda f, v: f"{ART}/artifacts/{f.experiments[v]}/{f.runs[v]}/artifacts/b.txt")),
    "proxied delete (absent)": (D, _op("DELETE", "",
                                       url=lambda f, v: f"{ART}/artifacts/{f.experiments[v]}/{f.runs[v]}/artifacts/none")),
    "presigned download": (R, _op("GET", "", url=lambda f, v: f"{ART}/presigned/{f.experiments[v]}/{f.runs[v]}/artifacts/a.txt")),
    "presigned multipart upload": (W, _op("POST", "", lambda f, v: {"path": "big.bin", "num_parts": 1},
                                          url=lambda f, v: f"{ART}/mpu/create/{f.experiments[v]}/{f.runs[v]}/artifacts")),
}
_API_ERRORS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


def _graphql(operation: str, field: str, variables: Callable[[Fixtures, str], dict[str, Any]]) -> Call:
    """A GraphQL query of the web UI: a refused resolver shows as its field's ``apiError`` (HTTP 200)."""
    def run(client: Client, f: Fixtures, vis: str, headers: dict[str, str]) -> int:
        input_type = field[0].upper() + field[1:] + "Input"
        query = f"query {operation}($data: {input_type}) {{ {field}(input: $data) {{ apiError {{ code }} }} }}"
        status, body = _call(client, "POST", "/mlflow/graphql",
                              {"query": query, "operationName": operation, "variables": {"data": variables(f, vis)}},
                              headers)
        error = ((body.get("data") or {}).get(field) or {}).get("apiError") or {}
        assert not body.get("errors"), body
        return _API_ERRORS.get(error.get("code"), status)
    return run


# What the MLflow web UI calls besides the REST API (chalicelib/http/mlflow_ui_routes.py, mlflow_graphql.py)
WEB_UI: dict[str, tuple[Action, Call]] = {
    "get-artifact": (R, _op("GET", "/mlflow/get-artifact", lambda f, v: {"run_id": f.runs[v], "path": "a.txt"})),
    "ajax artifacts/list": (R, _op("GET", "/mlflow/ajax-api/2.0/mlflow/artifacts/list", lambda f, v: {"run_id": f.runs[v]})),
    "model-versions/get-artifact": (R, _op("GET", "/mlflow/model-versions/get-artifact",
                                           lambda f, v: {"name": f.models[v], "version": "1", "path": "a.txt"})),
    "graphql GetRun": (R, _graphql("GetRun", "mlflowGetRun", lambda f, v: {"runId": f.runs[v]})),
    "graphql GetExperiment": (R, _graphql("MlflowGetExperimentQuery", "mlflowGetExperiment",
                                          lambda f, v: {"experimentId": f.experiments[v]})),
    "graphql metric history": (R, _graphql("GetMetricHistoryBulkInterval", "mlflowGetMetricHistoryBulkInterval",
                                           lambda f, v: {"runIds": [f.runs[v]], "metricKey": "m"})),
}
FAMILIES = {"mlflow-read": MLFLOW_READ, "mlflow-write": MLFLOW_WRITE, "registry": REGISTRY, "artifacts": ARTIFACTS,
            "web-ui": WEB_UI}
CELLS = [(family, name) for family, ops in FAMILIES.items() for name in ops]


@pytest.mark.parametrize("anonymous_read", [False, True], ids=["anon-read-off", "anon-read-on"])
@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("family, name", CELLS)
def test_permission_matrix(fx: Fixtures, family: str, name: str, caller: str, visibility: str,
                           anonymous_read: bool) -> None:
    _configure(fx, anonymous_read)
    action, call = FAMILIES[family][name]
    with Client(app) as client:
        status = call(client, fx, visibility, _bearer(fx.world.tokens[caller]))
    if allowed(caller, visibility, action, anonymous_read):
        assert status not in (401, 403)
        assert status < 500
    else:
        assert status == refusal(caller)


# -- searches: what the caller may read, nothing else ------------------------------------------------
def _search_results(client: Client, fx: Fixtures, headers: dict[str, str]) -> dict[str, Any]:
    eids = list(fx.experiments.values())
    out: dict[str, Any] = {}
    status, body = _call(client, "POST", f"{A}/experiments/search", {"max_results": 1000}, headers)
    out["status"] = status
    out["experiments"] = {e["experiment_id"] for e in body.get("experiments", [])}
    _, body = _call(client, "POST", f"{A}/runs/search", {"experiment_ids": eids}, headers)
    out["runs"] = {r["info"]["experiment_id"] for r in body.get("runs", [])}  # the matrix adds runs
    _, body = _call(client, "POST", f"{A}/logged-models/search", {"experiment_ids": eids}, headers)
    out["logged"] = {m["info"]["experiment_id"] for m in body.get("models", [])}
    _, body = _call(client, "GET", f"{A}/registered-models/search", {"max_results": 1000}, headers)
    out["models"] = {m["name"] for m in body.get("registered_models", [])}
    _, body = _call(client, "GET", f"{A}/model-versions/search", {"max_results": 1000}, headers)
    out["versions"] = {m["name"] for m in body.get("model_versions", [])}
    query = ("query SearchRuns($data: MlflowSearchRunsInput) "
             "{ mlflowSearchRuns(input: $data) { runs { info { experimentId } } } }")
    _, body = _call(client, "POST", "/mlflow/graphql", {"query": query, "operationName": "SearchRuns",
                                                        "variables": {"data": {"experimentIds": eids}}}, headers)
    runs = ((body.get("data") or {}).get("mlflowSearchRuns") or {}).get("runs") or []
    out["ui runs"] = {r["info"]["experimentId"] for r in runs}
    return out


@pytest.mark.parametrize("anonymous_read", [False, True], ids=["anon-read-off", "anon-read-on"])
@pytest.mark.parametrize("caller", CALLERS)
def test_searches_return_only_what_the_caller_may_read(fx: Fixtures, caller: str, anonymous_read: bool) -> None:
    _configure(fx, anonymous_read)
    with Client(app) as client:
        found = _search_results(client, fx, _bearer(fx.world.tokens[caller]))
    if caller == "anonymous" and not anonymous_read:
        assert found["status"] == 401
        return
    readable = [v for v in VISIBILITIES if allowed(caller, v, R, anonymous_read)]
    default = {"0"}  # the default experiment belongs to no project: readable by whoever reads at all
    known = set(fx.experiments.values()) | default  # other tests add experiments of their own
    assert found["experiments"] & known == {fx.experiments[v] for v in readable} | default
    assert found["runs"] == {fx.experiments[v] for v in readable}
    assert found["ui runs"] == {fx.experiments[v] for v in readable}
    assert found["logged"] == {fx.experiments[v] for v in readable}
    assert found["models"] == {fx.models[v] for v in readable}
    assert found["versions"] == {fx.models[v] for v in readable}


def test_search_pages_hold_only_readable_experiments(fx: Fixtures) -> None:
    """Filtering happens before paging: a page of one is never an unreadable experiment, and paging
    through ends after the readable ones."""
    _configure(fx, False)
    seen: list[str] = []
    token: str | None = None
    with Client(app) as client:
        for _ in range(10):
            body = {"max_results": 1, **({"page_token": token} if token else {})}
            _, page = _call(client, "POST", f"{A}/experiments/search", body, _bearer(fx.world.tokens["non-member"]))
            seen += [e["experiment_id"] for e in page.get("experiments", [])]
            token = page.get("next_page_token")
            if not token:
                break
    known = set(fx.experiments.values()) | {"0"}
    assert sorted(set(seen) & known) == sorted([fx.experiments["public"], fx.experiments["internal"], "0"])
    assert len(seen) == len(set(seen))


# -- webhooks: the shared secret decides, never a caller's GitLab role --------------------------------
@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("secret", [None, "wrong", SECRET])
def test_webhooks_follow_the_secret_only(fx: Fixtures, caller: str, visibility: str, secret: str | None) -> None:
    _configure(fx, False)
    payload = fx.world.gl.system_payload("project_update", fx.world.projects[visibility].id)
    headers = {**_bearer(fx.world.tokens[caller]), "X-Gitlab-Event": "System Hook",
               **({"X-Gitlab-Token": secret} if secret else {})}
    with Client(app) as client:
        status, _ = _call(client, "POST", "/webhooks/gitlab", payload, headers)
    assert status == (200 if secret == SECRET else 401)


# -- browser session: the cookie carries the same rights, writes only from this origin ----------------
SESSION_CALLS = {"runs/get": MLFLOW_READ["runs/get"], "runs/log-batch": MLFLOW_WRITE["runs/log-batch"],
                 "registered-models/set-tag": REGISTRY["registered-models/set-tag"],
                 "proxied upload": ARTIFACTS["proxied upload"]}


@pytest.mark.parametrize("origin", ["same", "cross", "none"])
@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", list(SESSION_CALLS))
def test_browser_session_matrix(fx: Fixtures, name: str, caller: str, visibility: str, origin: str) -> None:
    _configure(fx, False)
    action, call = SESSION_CALLS[name]
    token = fx.world.tokens[caller]
    headers = {"Cookie": f"{COOKIE}={session_codec().seal(token)}"} if token else {}
    headers.update({"same": {"Origin": ORIGIN}, "cross": {"Origin": "https://evil.example"}, "none": {}}[origin])
    with Client(app) as client:
        status = call(client, fx, visibility, headers)
    cross_site_write = token is not None and action is not R and origin != "same"
    if cross_site_write:
        assert status == 403
    elif allowed(caller, visibility, action, False):
        assert status not in (401, 403)
    else:
        assert status == refusal(caller)


# -- ownership ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body", [
    ("/experiments/create", {"name": "untagged"}),
    ("/registered-models/create", {"name": "untagged"}),
    ("/experiments/create", {"name": "blank", "tags": [{"key": "stacflow.project", "value": " "}]}),
])
def test_creation_needs_the_project_tag(fx: Fixtures, path: str, body: dict[str, Any]) -> None:
    _configure(fx, False)
    with Client(app) as client:
        status, doc = _call(client, "POST", A + path, body, _bearer(fx.world.tokens["maintainer"]))
        assert status == 400
        assert doc["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "stacflow.project" in doc["message"]
        _, found = _call(client, "GET", f"{A}/experiments/get-by-name", {"experiment_name": body["name"]},
                         _bearer(fx.world.tokens["admin"]))
    assert found["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("caller", ["developer", "maintainer"])
def test_creation_needs_developer_on_the_named_project(fx: Fixtures, caller: str) -> None:
    _configure(fx, False)
    other = fx.world.gl.add_access_project("elsewhere/secret", "private")
    with Client(app) as client:
        status, doc = _call(client, "POST", f"{A}/experiments/create",
                            {"name": f"steal-{caller}", "tags": [{"key": "stacflow.project", "value": str(other.id)}]},
                            _bearer(fx.world.tokens[caller]))
    assert status == 403
    assert doc["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("path, body", [
    ("/experiments/set-experiment-tag", lambda f: {"experiment_id": f.experiments["private"], "key": "stacflow.project",
                                                    "value": "team/public-project"}),
    ("/experiments/delete-experiment-tag", lambda f: {"experiment_id": f.experiments["private"],
                                                       "key": "stacflow.project"}),
    ("/registered-models/set-tag", lambda f: {"name": f.models["private"], "key": "stacflow.project", "value": "x"}),
    ("/registered-models/delete-tag", lambda f: {"name": f.models["private"], "key": "stacflow.project"}),
])
def test_the_project_tag_is_immutable(fx: Fixtures, path: str, body: Callable[[Fixtures], dict[str, Any]]) -> None:
    _configure(fx, False)
    method = "DELETE" if path.endswith("delete-tag") and "registered" in path else "POST"
    with Client(app) as client:
        status, doc = _call(client, method, A + path, body(fx), _bearer(fx.world.tokens["maintainer"]))
        assert status == 403
        assert doc["error_code"] == "PERMISSION_DENIED"
        _, exp = _call(client, "GET", f"{A}/experiments/get", {"experiment_id": fx.experiments["private"]},
                       _bearer(fx.world.tokens["maintainer"]))
    tags = {t["key"]: t["value"] for t in exp["experiment"]["tags"]}
    assert tags["stacflow.project"] == fx.world.project_id("private")


def test_a_model_version_cannot_publish_a_run_its_creator_cannot_read(fx: Fixtures) -> None:
    """A developer of the public project may not register a private run's model under it."""
    _configure(fx, False)
    token = fx.world.gl.add_user("outsider")
    fx.world.gl.add_member(fx.world.projects["public"].id, "outsider", 30)
    with Client(app) as client:
        status, _ = _call(client, "POST", f"{A}/model-versions/create",
                          {"name": fx.models["public"], "source": "s3://b/k", "run_id": fx.runs["private"]},
                          _bearer(token))
    assert status == 403


def test_the_default_experiment_is_written_by_administrators_only(fx: Fixtures) -> None:
    _configure(fx, False)
    with Client(app) as client:
        refused, doc = _call(client, "POST", f"{A}/runs/create", {"experiment_id": "0"},
                             _bearer(fx.world.tokens["maintainer"]))
        granted, _ = _call(client, "POST", f"{A}/runs/create", {"experiment_id": "0"}, _bearer(fx.world.tokens["admin"]))
    assert refused == 403
    assert "no project" in doc["message"]
    assert granted == 200


def test_no_token_in_error_bodies(fx: Fixtures) -> None:
    _configure(fx, False)
    token = fx.world.tokens["guest"] or ""
    with Client(app) as client:
        resp = client.http.post(f"{A}/runs/log-batch", body=json.dumps({"run_id": fx.runs["private"]}),
                                headers={"Content-Type": "application/json", **_bearer(token)})
    assert resp.status_code == 403
    assert token.encode() not in resp.body


def test_a_workspace_group_bounds_the_projects_that_may_own_resources(fx: Fixtures) -> None:
    import dataclasses
    outside = fx.world.gl.add_access_project("other-group/tools", "private")
    fx.world.gl.add_member(outside.id, "developer", 30)
    services.configure(store=fx.store, settings=dataclasses.replace(fx.settings, gitlab_group="team"),
                       access=AccessService(GitLabApi(fx.world.gl.url, 2.0), service_token=fx.world.gl.token))
    token = _bearer(fx.world.tokens["developer"])
    with Client(app) as client:
        refused, doc = _call(client, "POST", f"{A}/experiments/create",
                             {"name": "ws-out", "tags": [{"key": "stacflow.project", "value": str(outside.id)}]}, token)
        granted, _ = _call(client, "POST", f"{A}/experiments/create",
                           {"name": "ws-in", "tags": [{"key": "stacflow.project", "value": fx.world.project_id("private")}]},
                           token)
    assert refused == 400
    assert "team" in doc["message"]
    assert granted == 200


def test_administrators_adopt_untagged_experiments_but_never_move_tagged_ones(fx: Fixtures) -> None:
    _configure(fx, False)
    admin = _bearer(fx.world.tokens["admin"])
    with Client(app) as client:
        moved, _ = _call(client, "POST", f"{A}/experiments/set-experiment-tag",
                         {"experiment_id": fx.experiments["private"], "key": "stacflow.project", "value": "x"}, admin)
        _configure(fx, False)
        services.configure(store=fx.store, settings=dataclasses.replace(fx.settings, auth="off"))
        _, body = _call(client, "POST", f"{A}/experiments/create", {"name": "legacy"})
        _configure(fx, False)
        adopted, _ = _call(client, "POST", f"{A}/experiments/set-experiment-tag",
                           {"experiment_id": body["experiment_id"], "key": "stacflow.project",
                            "value": fx.world.project_id("private")}, admin)
        read, _ = _call(client, "GET", f"{A}/experiments/get", {"experiment_id": body["experiment_id"]},
                        _bearer(fx.world.tokens["non-member"]))
    assert moved == 403
    assert adopted == 200
    assert read == 403


def test_gitlab_unreachable_answers_503_and_writes_nothing(fx: Fixtures) -> None:
    from tests.helpers.servers import free_port
    services.configure(store=fx.store, settings=fx.settings,
                       access=AccessService(GitLabApi(f"http://127.0.0.1:{free_port()}", 1.0)))
    with Client(app) as client:
        status, doc = _call(client, "POST", f"{A}/runs/log-batch",
                            {"run_id": fx.runs["public"], "params": [{"key": "during-outage", "value": "1"}]},
                            _bearer(fx.world.tokens["developer"]))
    assert status == 503
    assert doc["error_code"] == "TEMPORARILY_UNAVAILABLE"
    _configure(fx, False)
    with Client(app) as client:
        _, run = _call(client, "GET", f"{A}/runs/get", {"run_id": fx.runs["public"]}, _bearer(fx.world.tokens["admin"]))
    assert "during-outage" not in {p["key"] for p in run["run"]["data"].get("params", [])}


@pytest.mark.parametrize("source", [
    lambda f: f"mlflow-artifacts:/{f.experiments['private']}/{f.runs['private']}/artifacts",
    lambda f: f"runs:/{f.runs['private']}/artifacts",
    lambda f: f"models:/{f.logged['private']}",
    lambda f: f"models:/{f.models['private']}/1",
    lambda f: f"{ORIGIN}/mlflow/api/2.0/mlflow-artifacts/artifacts/{f.experiments['private']}/{f.runs['private']}/artifacts",
], ids=["mlflow-artifacts", "runs", "logged-model", "registered-model", "proxy-url"])
def test_a_version_source_the_creator_cannot_read_is_refused(fx: Fixtures,
                                                             source: Callable[[Fixtures], str]) -> None:
    """Publishing a version reads its source: a public project's developer cannot point at private files."""
    _configure(fx, False)
    token = fx.world.gl.add_user("publisher")
    fx.world.gl.add_member(fx.world.projects["public"].id, "publisher", 30)
    with Client(app) as client:
        status, _ = _call(client, "POST", f"{A}/model-versions/create",
                          {"name": fx.models["public"], "source": source(fx)}, _bearer(token))
        granted, _ = _call(client, "POST", f"{A}/model-versions/create",
                           {"name": fx.models["public"], "source": source(fx).replace(
                               fx.experiments["private"], fx.experiments["public"]).replace(
                               fx.runs["private"], fx.runs["public"]).replace(
                               fx.logged["private"], fx.logged["public"]).replace(
                               fx.models["private"], fx.models["public"])}, _bearer(token))
    assert status == 403
    assert granted not in (401, 403)  # the same source in the public project is not refused for access
