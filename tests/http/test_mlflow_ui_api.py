"""What MLflow's web UI calls beyond the client's API: /mlflow/graphql with the bundle's own operations,
get-artifact, artifacts/list, search-datasets, and the "feature off" answers."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from chalice.test import Client

from app import app
from chalicelib import services
from scripts.build_mlflow_ui import bundle_source
from tests.helpers.mlflow_seed import png

UI = "/mlflow"
A = "/mlflow/ajax-api/2.0/mlflow"
OPERATIONS = ("SearchRuns", "MlflowGetExperimentQuery", "GetRun", "GetMetricHistoryBulkInterval")


def bundle_operations() -> dict[str, str]:
    """The GraphQL documents the installed UI bundle sends, read from its JavaScript."""
    found: dict[str, str] = {}
    for js in sorted(Path(bundle_source(), "static", "js").glob("*.js")):
        text = js.read_text(errors="replace")
        for name in OPERATIONS:
            match = re.search(r"(query " + name + r"\b.*?)`", text, re.S)
            if match and name not in found:
                found[name] = match.group(1).replace("\\n", "\n")
    return found


@pytest.fixture(scope="module")
def operations() -> dict[str, str]:
    return bundle_operations()


class Ui:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.tracking = services.tracking()
        self.registry = services.registry()

    def get(self, path: str) -> Any:
        return self.client.http.get(path)

    def post(self, path: str, body: Any) -> Any:
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.http.post(path, body=raw, headers={"Content-Type": "application/json"})

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        resp = self.post(f"{UI}/graphql", {"query": query, "variables": variables})
        assert resp.status_code == 200
        return json.loads(resp.body)


@pytest.fixture
def ui(local_store) -> Iterator[tuple[Ui, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    services.configure(store=local_store)
    with Client(app) as client:
        ui = Ui(client)
        t = ui.tracking
        eid = t.create_experiment("ui", None, [])
        runs = []
        for i in range(3):
            run = t.create_run({"experiment_id": eid, "run_name": f"r{i}"})
            rid = run.info.run_id
            t.log_batch(rid, [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1000 + s, "step": s}
                              for s in range(7)] + [{"key": "nan", "value": "NaN", "timestamp": 1, "step": 0}],
                        [{"key": "lr", "value": str(i)}], [])
            runs.append(rid)
        t.log_inputs(runs[0], [{"dataset": {"name": "ds", "digest": "d1", "source_type": "local", "source": "{}"},
                                "tags": [{"key": "mlflow.data.context", "value": "training"}]}], [])
        artifacts = services.artifacts()
        root = f"{eid}/{runs[0]}/artifacts"
        artifacts.upload_artifact(f"{root}/notes/readme.txt", b"hello preview\n")
        artifacts.upload_artifact(f"{root}/plot.png", png())
        ui.registry.create_registered_model("m")
        ui.registry.create_model_version("m", f"mlflow-artifacts:/{root}", runs[0])
        yield ui, {"eid": eid, "runs": runs}
    services.configure()


def test_the_bundle_sends_the_four_operations(operations: dict[str, str]) -> None:
    assert sorted(operations) == sorted(OPERATIONS)


def test_get_run_query_resolves_the_run_its_experiment_and_model_versions(ui, operations) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    out = api.graphql(operations["GetRun"], {"data": {"runId": seeded["runs"][0]}})
    assert out["errors"] is None
    run = out["data"]["mlflowGetRun"]["run"]
    assert run["info"]["runUuid"] == seeded["runs"][0]
    assert run["experiment"]["name"] == "ui"
    assert [(mv["name"], mv["version"]) for mv in run["modelVersions"]] == [("m", "1")]
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"loss": 1.0 / 7, "nan": None}
    assert run["inputs"]["datasetInputs"][0]["dataset"]["name"] == "ds"


def test_get_run_of_an_unknown_run_is_an_api_error(ui, operations) -> None:  # type: ignore[no-untyped-def]
    api, _ = ui
    out = api.graphql(operations["GetRun"], {"data": {"runId": "f" * 32}})
    assert out["data"]["mlflowGetRun"]["apiError"]["code"] == "RESOURCE_DOES_NOT_EXIST"


def test_search_runs_query_applies_mlflows_filter(ui, operations) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    out = api.graphql(operations["SearchRuns"], {"data": {"experimentIds": [seeded["eid"]],
                                                          "filter": "params.lr = '2'"}})
    assert [r["info"]["runUuid"] for r in out["data"]["mlflowSearchRuns"]["runs"]] == [seeded["runs"][2]]


def test_get_experiment_query_gives_longs_as_strings(ui, operations) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    out = api.graphql(operations["MlflowGetExperimentQuery"], {"input": {"experimentId": seeded["eid"]}})
    experiment = out["data"]["mlflowGetExperiment"]["experiment"]
    assert isinstance(experiment["creationTime"], str)


def test_metric_history_query_returns_every_step_of_every_run(ui, operations) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    out = api.graphql(operations["GetMetricHistoryBulkInterval"],
                      {"data": {"runIds": seeded["runs"][:2], "metricKey": "loss", "maxResults": 320}})
    metrics = out["data"]["mlflowGetMetricHistoryBulkInterval"]["metrics"]
    assert sorted((m["runId"], int(m["step"])) for m in metrics) == sorted(
        (r, s) for r in seeded["runs"][:2] for s in range(7))


def test_graphql_refuses_alias_amplification(ui) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    fields = " ".join(f'a{i}: mlflowGetExperiment(input: {{experimentId: "{seeded["eid"]}"}}) {{ apiError {{ code }} }}'
                      for i in range(11))
    out = api.graphql("query Q { " + fields + " }", {})
    assert out["data"] is None


@pytest.mark.parametrize("query", ["query {", "{ nosuchfield }", "query Q { " + "test(inputString: \"x\") { output } " * 2000 + "}"])
def test_graphql_bad_documents_are_errors_not_failures(ui, query: str) -> None:  # type: ignore[no-untyped-def]
    api, _ = ui
    out = api.graphql(query, {})
    assert out["errors"]


def test_graphql_non_json_body_is_malformed_request(ui) -> None:  # type: ignore[no-untyped-def]
    api, _ = ui
    resp = api.post(f"{UI}/graphql", "not json")
    assert (resp.status_code, json.loads(resp.body)["error_code"]) == (400, "MALFORMED_REQUEST")


def test_artifacts_list_names_entries_from_the_run_root(ui) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    resp = api.get(f"{A}/artifacts/list?run_uuid={seeded['runs'][0]}&path=notes")
    assert json.loads(resp.body)["files"] == [{"path": "notes/readme.txt", "is_dir": False, "file_size": 14}]


def test_get_artifact_sends_text_as_a_text_attachment(ui) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    resp = api.get(f"{UI}/get-artifact?run_uuid={seeded['runs'][0]}&path=notes/readme.txt")
    headers = {k.lower(): v for k, v in resp.headers.items()}
    assert (resp.status_code, resp.body, headers["content-type"].split(";")[0],
            headers["content-disposition"].split(";")[0]) == (200, b"hello preview\n", "text/plain", "attachment")


def test_get_artifact_sends_an_image_byte_for_byte(ui) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    resp = api.client.http.get(f"{UI}/get-artifact?run_uuid={seeded['runs'][0]}&path=plot.png",
                               headers={"Accept": "image/png"})
    headers = {k.lower(): v for k, v in resp.headers.items()}
    assert (headers["content-type"], resp.body) == ("image/png", png())


def test_model_version_artifact_is_read_from_the_version_source(ui) -> None:  # type: ignore[no-untyped-def]
    api, _ = ui
    resp = api.get(f"{UI}/model-versions/get-artifact?name=m&version=1&path=notes/readme.txt")
    assert resp.body == b"hello preview\n"


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "notes/%2e%2e/%2e%2e/x", ""])
def test_get_artifact_refuses_paths_outside_the_run(ui, path: str) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    resp = api.get(f"{UI}/get-artifact?run_uuid={seeded['runs'][0]}&path={path}")
    assert (resp.status_code, json.loads(resp.body)["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


def test_search_datasets_summarises_the_experiments_inputs(ui) -> None:  # type: ignore[no-untyped-def]
    api, seeded = ui
    resp = api.post(f"{A}/experiments/search-datasets", {"experiment_ids": [seeded["eid"]]})
    assert json.loads(resp.body) == {"dataset_summaries": [
        {"experiment_id": seeded["eid"], "name": "ds", "digest": "d1", "context": "training"}]}


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/mlflow/ajax-api/3.0/mlflow/scorers/list?experiment_id=1", 200),
    ("POST", "/mlflow/ajax-api/3.0/mlflow/traces/search", 200),
    ("GET", "/mlflow/ajax-api/2.0/mlflow/gateway-proxy?gateway_path=api/2.0/endpoints/", 200),
    ("GET", "/mlflow/ajax-api/3.0/mlflow/assistant/config", 200),
    ("GET", "/mlflow/ajax-api/2.0/mlflow/users/current", 404),
])
def test_absent_features_answer_as_mlflow_with_them_off(ui, method: str, path: str, status: int) -> None:  # type: ignore[no-untyped-def]
    api, _ = ui
    resp = api.get(path) if method == "GET" else api.post(path, {})
    assert resp.status_code == status
