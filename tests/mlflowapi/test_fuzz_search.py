"""Fuzzing MLflow search input (hypothesis): filters, order_by and page tokens of every search.

Two levels: the grammar over each dialect (runs, experiments, registered models, model versions,
logged models) evaluated on a few records, which must answer or raise INVALID_PARAMETER_VALUE;
and the search routes themselves (in-process, Chalice's test client, over a store holding an
experiment, runs, a logged model and a registered model), which must answer 200, 400 or 404 in
MLflow's error shape, never 500, for any JSON in any field. Budget: tests/helpers/fuzzing.py.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.mlflowapi import pages, search
from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.mlflowapi.search import ModelMetric, Subject
from tests.helpers.fuzzing import (FUZZ, NUMBER_TEXT, SCALARS, anything, b64, dumps, joined, json_values, nasty_text,
                                   nested, repeated)

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

A = "/mlflow/api/2.0/mlflow"


def _runs() -> list[Subject]:
    out = []
    for i, (status, name) in enumerate([("FINISHED", "a" * 60), ("RUNNING", "run-1"), ("FAILED", "été\n")]):
        info = {"run_id": f"r{i}", "experiment_id": "1", "user_id": "u", "status": status, "start_time": 1000 * i,
                "end_time": None if i else 5, "lifecycle_stage": "active", "artifact_uri": "s3://b/x", "run_name": name}
        out.append(Subject(f"r{i}", info, tags={"team": name, "mlflow.runName": name}, params={"p": name},
                           metrics={"acc": [0.5, math.nan, -1e308][i]},
                           datasets=[{"dataset": {"name": "tiles", "digest": "abc"},
                                      "tags": [{"key": "mlflow.data.context", "value": "training"}]}]))
    return out


def _records(extra: Callable[[int], dict[str, Any]]) -> list[Subject]:
    return [Subject(f"x{i}", {"name": f"{'a' * 60 if i else 'été'}", "creation_timestamp": i, "creation_time": i,
                              "last_updated_timestamp": i, "last_update_time": i, "experiment_id": str(i), **extra(i)},
                    tags={"t": "a" * 60}) for i in range(3)]


SEARCHES = {
    "runs": (search.RUNS, _runs()),
    "experiments": (search.EXPERIMENTS, _records(lambda i: {})),
    "registered models": (search.REGISTERED_MODELS, _records(lambda i: {})),
    "model versions": (search.MODEL_VERSIONS, _records(lambda i: {"version": i + 1, "run_id": "r", "source": "s"})),
    "logged models": (search.LOGGED_MODELS, [
        Subject(f"m-{i}", {"model_id": f"m-{i}", "name": "a" * 60, "status": "LOGGED_MODEL_READY", "experiment_id": "1",
                           "creation_timestamp": i, "last_updated_timestamp": i, "model_type": "t",
                           "source_run_id": "r", "status_message": None, "artifact_location": "s3://x"},
                tags={"t": "x"}, params={"p": "y"},
                model_metrics=[ModelMetric("acc", 0.5, i, "d", "abc"), ModelMetric("acc", math.nan, 2, None, None)])
        for i in range(3)]),
}

IDENTIFIERS = st.one_of(
    st.builds(lambda kind, key: f"{kind}.{key}",
              st.sampled_from(["metrics", "metric", "params", "param", "tags", "tag", "attributes", "attr", "run",
                               "datasets", "dataset", "`tags`", "nope", ""]),
              st.sampled_from(["acc", "p", "team", "t", "`mlflow.runName`", '"quoted key"', "'single'", "status",
                               "run_id", "start_time", "name", "digest", "context", "version_number", "a.b", "`",
                               "creation_timestamp", "run name"])),
    st.sampled_from(["name", "run_name", "status", "start_time", "created", "version_number", "run_id", "model_id",
                     "experiment_id", "creation_time", "source_path", "Run name", "`Run name`", "bogus"]))
COMPARATORS = st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "like", "ILIKE", "IN", "NOT IN",
                               "IS NULL", "IS NOT NULL", "IS", "==", "BETWEEN"])
VALUES = st.one_of(
    NUMBER_TEXT, nasty_text(20).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.text(st.sampled_from("a%_A'é\\"), max_size=20).map(lambda s: f"'%{s}%'"),
    joined(nasty_text(6).map(lambda s: repr(s)) | NUMBER_TEXT, [", ", ","], 5).map(lambda s: f"({s})"),
    st.sampled_from(["rf", "NULL", "()", "(", "'", '"x"', "`x`", "'%a%a%a%a%a%a%a%b'"]))
CLAUSES = st.builds(lambda i, c, v: f"{i} {c} {v}" if "NULL" not in c else f"{i} {c}", IDENTIFIERS, COMPARATORS, VALUES)
FILTERS = st.one_of(
    joined(CLAUSES, [" AND ", " and ", " OR ", "; ", " "], 6), nested(CLAUSES, "(", ")", 3000),
    st.builds(lambda c, n: " AND ".join([c] * n), CLAUSES, st.integers(1, 6000)), nasty_text(200),
    repeated(st.sampled_from(["(", "'", "`", "a = 'x' AND ", "IN (", "%"]), 20000))
ORDER_BYS = st.lists(st.one_of(
    st.builds(lambda i, d: f"{i} {d}".strip(), IDENTIFIERS, st.sampled_from(["", "ASC", "desc", "DESC ASC", "up"])),
    nasty_text(30), repeated(st.just("`"), 3000)), max_size=40)


@FUZZ
@given(which=st.sampled_from(sorted(SEARCHES)), filter_string=FILTERS | st.none(), order_by=ORDER_BYS)
def test_filters_and_order_by(which: str, filter_string: str | None, order_by: list[str]) -> None:
    engine, subjects = SEARCHES[which]
    try:
        if engine is search.LOGGED_MODELS:
            search.LOGGED_MODELS.filter_models(subjects, filter_string, [{"dataset_name": "d"}])
        else:
            engine.sort(engine.filter(subjects, filter_string), order_by)  # type: ignore[attr-defined]
    except MlflowError as err:
        assert err.error_code == "INVALID_PARAMETER_VALUE"
        assert err.message


LOGGED_ORDER = st.lists(st.one_of(
    st.fixed_dictionaries({"field_name": IDENTIFIERS | SCALARS | json_values()},
                          optional={"ascending": SCALARS, "dataset_name": SCALARS | json_values(),
                                    "dataset_digest": SCALARS}), anything()), max_size=40)


@FUZZ
@given(order_by=LOGGED_ORDER)
def test_logged_model_order_by(order_by: list[Any]) -> None:
    try:
        search.LOGGED_MODELS.sort(SEARCHES["logged models"][1], order_by)
    except MlflowError as err:
        assert err.error_code == "INVALID_PARAMETER_VALUE"


PAGE_TOKENS = st.one_of(st.builds(lambda v: b64(dumps(v)), st.fixed_dictionaries({"offset": anything()}) | anything()),
                        st.text(st.sampled_from("ABCDEFabcdef0123456789+/="), max_size=60), nasty_text(40),
                        st.builds(pages.page_token, st.integers(-5, 10 ** 30)), st.none())


@FUZZ
@given(token=PAGE_TOKENS, limit=st.integers(1, 5))
def test_page_tokens(token: str | None, limit: int) -> None:
    try:
        page, following = pages.page(list(range(7)), token, limit)
    except MlflowError as err:
        assert err.error_code == "INVALID_PARAMETER_VALUE"
        return
    assert len(page) <= limit
    assert following is None or pages.page_offset(following) > 0


# -- the routes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str, Any], tuple[int, Any]]]:
    from chalice.test import Client

    from app import app
    from chalicelib import services
    from chalicelib.store.local import LocalStore
    services.configure(store=LocalStore(tmp_path_factory.mktemp("fuzz"), fsync=False))
    with Client(app) as client:
        def call(method: str, path: str, body: Any) -> tuple[int, Any]:
            if method == "GET":
                resp = client.http.get(f"{A}{path}?{urlencode(body, doseq=True)}")
            else:
                resp = client.http.post(f"{A}{path}", body=body, headers={"Content-Type": "application/json"})
            return resp.status_code, json.loads(resp.body or b"{}")

        eid = call("POST", "/experiments/create", json.dumps({"name": "a" * 60}))[1]["experiment_id"]
        run = call("POST", "/runs/create", json.dumps({"experiment_id": eid, "run_name": "été"}))[1]["run"]["info"]
        assert call("POST", "/runs/log-batch", json.dumps({
            "run_id": run["run_id"], "metrics": [{"key": "acc", "value": 0.5, "timestamp": 1, "step": 0}],
            "params": [{"key": "p", "value": "a" * 60}], "tags": [{"key": "t", "value": "a" * 60}]}))[0] == 200
        assert call("POST", "/logged-models", json.dumps({"experiment_id": eid, "name": "a" * 60}))[0] == 200
        assert call("POST", "/registered-models/create", json.dumps({"name": "m"}))[0] == 200
        assert call("POST", "/model-versions/create", json.dumps({"name": "m", "source": "s3://b/m"}))[0] == 200
        yield call
    services.configure()


def answered(status: int, body: Any) -> None:
    assert status in (200, 400, 404), body
    if status != 200:
        assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "RESOURCE_DOES_NOT_EXIST")
        assert isinstance(body["message"], str)


SEARCH_FIELDS = {
    "/runs/search": ["experiment_ids", "filter", "run_view_type", "max_results", "order_by", "page_token"],
    "/experiments/search": ["view_type", "max_results", "filter", "order_by", "page_token"],
    "/logged-models/search": ["experiment_ids", "filter", "datasets", "max_results", "order_by", "page_token"],
}
FIELD_VALUES = st.one_of(FILTERS, ORDER_BYS, PAGE_TOKENS, anything(), LOGGED_ORDER, st.just(["1"]), st.just("1"))


@FUZZ
@given(path=st.sampled_from(sorted(SEARCH_FIELDS)), data=st.data())
def test_post_search_routes(api: Callable[[str, str, Any], tuple[int, Any]], path: str, data: st.DataObject) -> None:
    body = data.draw(st.one_of(
        st.dictionaries(st.sampled_from(SEARCH_FIELDS[path]), FIELD_VALUES, max_size=4).map(
            lambda d: {"experiment_ids": ["1"], **d}).map(dumps),
        anything().map(dumps), nested(st.just("1"), "[", "]", 5000), nasty_text(50)))
    answered(*api("POST", path, body))


URL_MAX = 16 * 1024  # HTTP servers refuse longer URLs (API Gateway: 10 KB); the test client would not


@FUZZ
@given(path=st.sampled_from(["/registered-models/search", "/model-versions/search", "/experiments/search"]),
       query=st.dictionaries(st.sampled_from(["filter", "order_by", "max_results", "page_token", "view_type"]),
                             st.lists((FILTERS | PAGE_TOKENS.filter(bool) | NUMBER_TEXT | nasty_text(30)).map(
                                 lambda v: v[:URL_MAX]), min_size=1, max_size=3), max_size=4))
def test_get_search_routes(api: Callable[[str, str, Any], tuple[int, Any]], path: str,
                           query: dict[str, list[str]]) -> None:
    answered(*api("GET", path, query))


@FUZZ
@given(token=PAGE_TOKENS.filter(bool), max_results=st.one_of(st.none(), NUMBER_TEXT))
def test_metric_history_page_tokens(api: Callable[[str, str, Any], tuple[int, Any]], token: str,
                                    max_results: str | None) -> None:
    status, runs = api("POST", "/runs/search", json.dumps({"experiment_ids": ["1"]}))
    query = {"run_id": runs["runs"][0]["info"]["run_id"], "metric_key": "acc", "page_token": token}
    answered(*api("GET", "/metrics/get-history", query | ({"max_results": max_results} if max_results else {})))
