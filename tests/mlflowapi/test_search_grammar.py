"""chalicelib.mlflowapi.search gives mlflow.utils.search_utils' answers and error messages, without mlflow.

Each table runs our search and MLflow's over the same records (MLflow's entities built from the
same data). Messages are compared with their set-valued parts as sets: MLflow prints Python sets,
whose order changes from process to process.
"""
from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from chalicelib.mlflowapi import pages, search
from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.mlflowapi.search import ModelMetric, Subject
from tests.helpers.paths import REPO

_SET = re.compile(r"\{'[^{}]*'\}")


def _normal(message: str) -> str:
    return _SET.sub(lambda m: repr(sorted(ast.literal_eval(m.group(0)))), message)


def same_answer(ours: Callable[[], list[Any]], theirs: Callable[[], list[Any]]) -> None:
    """Both give the same list, or both refuse with the same message."""
    from mlflow.exceptions import MlflowException
    try:
        expected = theirs()
    except MlflowException as err:
        with pytest.raises(MlflowError) as got:
            ours()
        assert got.value.error_code == "INVALID_PARAMETER_VALUE"
        assert _normal(got.value.message) == _normal(err.message)
        return
    assert ours() == expected


# -- runs ------------------------------------------------------------------------------------
RUNS = [  # run_id, start_time, end_time, status, user, metrics, params, tags, datasets (name, digest, context)
    ("r0", 1700000000000, 1700000100000, "FINISHED", "alice", {"acc": 0.7, "loss": 0.2}, {"model": "rf"},
     {"team": "eo"}, [("tiles", "abc", "training")]),
    ("r1", 1700000001000, None, "RUNNING", "bob", {"acc": 0.3, "loss": math.nan}, {"model": "svm", "depth": "3"},
     {"team": "sar"}, []),
    ("r2", 1700000001000, None, "FAILED", "alice", {"loss": 0.5}, {"model": "xgb"}, {}, [("tiles", "def", "eval")]),
    ("r3", 1700000003000, 1700000200000, "FINISHED", "", {"acc": 0.9}, {"model": "rf", "depth": "5"},
     {"team": "eo"}, [("s2", "abc", "training"), ("tiles", "xyz", "")]),
    ("r4", 1700000002000, None, "RUNNING", "bob", {"acc": 0.7, "loss": 0.1}, {"model": "RF"}, {"team": "EO"}, []),
]

RUN_FILTERS = [
    None, "", "   ",
    "metrics.acc > 0.5", "metrics.acc >= 0.7", "metrics.acc = 0.7", "metrics.acc != 0.7", "metrics.acc < 1",
    "metrics.acc <= 0.3", "metrics.loss > -1", "metrics.`acc` > 0.1", "metric.acc > 0.1", "metrics.\"acc\" > 0.1",
    "metrics.acc > 1e-1", "metrics.acc > .5", "metrics.loss != 0.2",
    "params.model = 'rf'", "params.model != 'rf'", "params.model LIKE 'r%'", "params.model ILIKE 'R%'",
    "params.model like '_vm'", "param.model = \"svm\"", "parameters.model = 'xgb'", "params.depth IS NULL",
    "params.depth IS NOT NULL", "params.`depth` is null", "params.depth is not null",
    "tags.team = 'eo'", "tags.`mlflow.runName` LIKE 'r%'", "tags.team ILIKE '%O'", "tag.team != 'eo'",
    "tags.missing IS NULL", "tags.team IS NOT NULL", "tags.\"team\" = 'sar'",
    "attributes.status = 'FINISHED'", "attribute.status != 'FINISHED'", "attr.run_id LIKE 'r%'",
    "run.user_id = 'alice'", "attributes.run_id IN ('r0', 'r3')", "attributes.run_id NOT IN ('r0')",
    "attributes.run_id in ('r1')", "attributes.run_id IN ('r1',)", "attributes.start_time > 1700000001000",
    "attributes.created >= 1700000002000", "attributes.Created < 1700000002000", "attributes.`Run name` = 'r2'",
    "attributes.end_time < 1700000150000", "attributes.end_time >= 0", "run_name = 'r1'", "status LIKE 'RUN%'",
    "attributes.user_id = ''", "attributes.start_time = 1700000001000",
    "datasets.name = 'tiles'", "datasets.digest IN ('abc', 'zzz')", "datasets.context = 'training'",
    "dataset.name LIKE 'ti%'", "datasets.context NOT IN ('eval')", "datasets.name != 'tiles'", "datasets.context = ''",
    "metrics.acc > 0.2 and params.model = 'rf' AND tags.team = 'eo'", "params.created = 'x'",
    "metrics.acc > 0.5 and params.depth IS NULL and tags.team IS NOT NULL",
    "params.depth IS NULL AND attributes.run_id IN ('r0', 'r2') and metrics.loss < 1",
    # refused
    "metrics.acc > 'x'", "metrics.acc LIKE '%'", "metrics.acc = acc", "params.model = rf", "params.model = 5",
    "params.model > 'a'", "params.model IN ('a')", "params.model NOT IN ('a')", "tags.team < 'x'",
    "attributes.status > 'A'", "attributes.start_time = '5'", "attributes.start_time LIKE 5",
    "attributes.start_time IN (5)", "attributes.bogus = 'x'", "foo.bar = 'x'", "`foo`.bar = 1",
    "attributes.status IN ('A')", "attributes.run_id IN ()", "attributes.run_id IN (1, 2)",
    "attributes.run_id IN ('a', 2)", "attributes.run_id IN ('a'", "datasets.bogus = 'x'", "datasets.name = 5",
    "datasets.name > 'a'", "metrics.acc IS NULL", "attributes.status IS NULL", "datasets.name IS NOT NULL",
    "metrics.acc > 0.5 OR params.model = 'rf'", "metrics.acc > 0.5 and (params.model = 'rf')",
    "metrics.acc > 0.5; params.model = 'rf'", "metrics.acc >", "metrics.acc", "= 5", "metrics.acc <> 1",
    "'x' = params.model", "metrics.acc > 0.5 and", "and metrics.acc > 0.5", "metrics.acc > 0.5 and and",
    "params.model IS 'x'", "NOT params.model = 'x'", "params.model = 'x' 'y'", "metrics.acc between 1 and 2",
    "tags.team IS NOT", "attributes.run_id NOT ('a')", "attributes.run_id NOT IN 'a'",
    "attributes.status = 'a' AND foo", "x", "1 = 1", "metrics.a.b > 0",
]


def _mlflow_runs() -> list[Any]:
    from mlflow.entities import (Dataset, DatasetInput, InputTag, Metric, Param, Run, RunData, RunInfo, RunInputs,
                                 RunTag)
    out = []
    for rid, start, end, status, user, metrics, params, tags, datasets in RUNS:
        info = RunInfo(rid, "1", user, status, start, end, "active", f"s3://b/{rid}/artifacts", rid)
        data = RunData([Metric(k, v, 1, 0) for k, v in metrics.items()], [Param(k, v) for k, v in params.items()],
                       [RunTag(k, v) for k, v in {**tags, "mlflow.runName": rid}.items()])
        inputs = RunInputs([DatasetInput(Dataset(n, d, "local", "{}"), [InputTag("mlflow.data.context", c)])
                            for n, d, c in datasets])
        out.append(Run(info, data, inputs))
    return out


def _our_runs() -> list[Subject]:
    out = []
    for rid, start, end, status, user, metrics, params, tags, datasets in RUNS:
        info = {"run_id": rid, "experiment_id": "1", "user_id": user, "status": status, "start_time": start,
                "end_time": end, "lifecycle_stage": "active", "artifact_uri": f"s3://b/{rid}/artifacts", "run_name": rid}
        dataset_inputs = [{"dataset": {"name": n, "digest": d, "source_type": "local", "source": "{}"},
                           "tags": [{"key": "mlflow.data.context", "value": c}]} for n, d, c in datasets]
        out.append(Subject(rid, info, tags={**tags, "mlflow.runName": rid}, params=params, metrics=metrics,
                           datasets=dataset_inputs))
    return out


@pytest.mark.parametrize("filter_string", RUN_FILTERS, ids=repr)
def test_run_filters(filter_string: str | None) -> None:
    from mlflow.utils.search_utils import SearchUtils
    same_answer(lambda: [s.record for s in search.RUNS.filter(_our_runs(), filter_string)],
                lambda: [r.info.run_id for r in SearchUtils.filter(_mlflow_runs(), filter_string)])


RUN_ORDERS = [
    [], ["metrics.acc"], ["metrics.acc DESC"], ["metrics.loss ASC"], ["metrics.loss DESC"], ["metrics.`acc` desc"],
    ["params.model"], ["params.depth DESC", "metrics.acc"], ["tags.team ASC", "attributes.start_time DESC"],
    ["attributes.start_time"], ["attributes.end_time DESC"], ["attributes.end_time"], ["created"],
    ["attributes.run_id DESC"], ["status", "user_id DESC"], ["tags.`mlflow.runName` DESC"], ["metrics.missing"],
    ["metric.acc DESC", "param.model", "tag.team DESC"], ["  metrics.acc   DESC "],
    # refused
    ["metrics.acc SIDEWAYS"], ["metrics.acc DESC ASC"], ["bogus.x"], ["datasets.name"], ["attributes.bogus"],
    ["timestamp"], ["timestamp DESC"], [""], ["metrics.`acc"], ["metrics.acc, params.model"], ["metrics.acc;"],
    ["metrics.acc > 1"], ["(metrics.acc)"],
]


@pytest.mark.parametrize("order_by", RUN_ORDERS, ids=repr)
def test_run_orderings(order_by: list[str]) -> None:
    from mlflow.utils.search_utils import SearchUtils
    same_answer(lambda: [s.record for s in search.RUNS.sort(_our_runs(), order_by)],
                lambda: [r.info.run_id for r in SearchUtils.sort(_mlflow_runs(), order_by)])


# -- experiments -------------------------------------------------------------------------------
EXPERIMENTS = [("0", "Default", 100, 900, {}), ("1", "e-1", 200, 300, {"kind": "x"}),
               ("2", "e-2", 300, 300, {"kind": "y", "team": "eo"}), ("10", "E-10", 400, 200, {"kind": "x"})]
EXPERIMENT_FILTERS = [
    None, "name = 'e-1'", "name LIKE 'e-%'", "name ILIKE 'e-%'", "attribute.name != 'Default'",
    "experiment_id IN ('1', '10')", "experiment_id NOT IN ('0')", "creation_time > 200", "last_update_time <= 300",
    "attribute.creation_time = 300", "tags.kind = 'x'", "tag.kind != 'x'", "tags.team IS NULL",
    "tags.team IS NOT NULL", "tags.`kind` LIKE '%'", "name LIKE 'e%' and tags.kind = 'x'",
    # refused
    "attributes.name = 'x'", "attr.name = 'x'", "metrics.a > 1", "params.a = 'x'", "name IN ('a')", "name > 'a'",
    "creation_time LIKE 5", "creation_time = '5'", "name IS NULL", "tags.kind < 'a'", "bogus = 'x'", "name = x",
    "name = 'a' OR name = 'b'", "experiment_id IN (5)",
]


def _mlflow_experiments() -> list[Any]:
    from mlflow.entities import Experiment, ExperimentTag
    return [Experiment(eid, name, "a", "active", [ExperimentTag(k, v) for k, v in tags.items()], created, updated)
            for eid, name, created, updated, tags in EXPERIMENTS]


def _our_experiments() -> list[Subject]:
    return [Subject(eid, {"experiment_id": eid, "name": name, "creation_time": created, "last_update_time": updated},
                    tags=tags) for eid, name, created, updated, tags in EXPERIMENTS]


@pytest.mark.parametrize("filter_string", EXPERIMENT_FILTERS, ids=repr)
def test_experiment_filters(filter_string: str | None) -> None:
    from mlflow.utils.search_utils import SearchExperimentsUtils
    same_answer(lambda: [s.record for s in search.EXPERIMENTS.filter(_our_experiments(), filter_string)],
                lambda: [e.experiment_id for e in SearchExperimentsUtils.filter(_mlflow_experiments(), filter_string)])


@pytest.mark.parametrize("order_by", [
    [], ["name"], ["name DESC"], ["creation_time DESC"], ["last_update_time", "name DESC"], ["experiment_id"],
    ["attribute.last_update_time DESC"], ["tags.kind"], ["metrics.a"], ["bogus"], ["name SIDEWAYS"],
], ids=repr)
def test_experiment_orderings(order_by: list[str]) -> None:
    from mlflow.utils.search_utils import SearchExperimentsUtils
    same_answer(lambda: [s.record for s in search.EXPERIMENTS.sort(_our_experiments(), order_by)],
                lambda: [e.experiment_id for e in SearchExperimentsUtils.sort(_mlflow_experiments(), order_by)])


# -- registered models and model versions ------------------------------------------------------
MODELS = [("alpha", 100, 500, {"kind": "cnn"}), ("beta", 200, 200, {"kind": "rf", "mlflow.prompt.is_prompt": "true"}),
          ("gamma", 300, 500, {}), ("Beta2", 150, 100, {"kind": "cnn"})]
MODEL_FILTERS = [
    None, "name = 'alpha'", "name LIKE 'b%'", "name ILIKE 'b%'", "name != 'alpha'", "name IN ('alpha', 'gamma')",
    "name NOT IN ('alpha')", "attribute.name = 'beta'", "tags.kind = 'cnn'", "tag.kind LIKE 'c%'",
    "tags.`kind` != 'cnn'", "tags.`mlflow.prompt.is_prompt` != 'true'", "tags.`mlflow.prompt.is_prompt` = 'false'",
    "tags.`mlflow.prompt.is_prompt` = 'true'", "name = \"gamma\"", "name LIKE '%a' and tags.kind = 'cnn'",
    # refused
    "name = ", "bogus_attr = 'x'", "attribute.`name` = 'x'", "creation_timestamp > 5", "metrics.a > 1",
    "tags.kind IN ('a')", "tags.kind > 'a'", "tags.kind = 5", "name = 5", "name > 'a'", "name = alpha",
    "name IN ()", "name = 'a' OR name = 'b'", "attributes.name = 'a'",
]


def _mlflow_models() -> list[Any]:
    from mlflow.entities.model_registry import RegisteredModel, RegisteredModelTag
    return [RegisteredModel(name, created, updated, tags=[RegisteredModelTag(k, v) for k, v in tags.items()])
            for name, created, updated, tags in MODELS]


def _our_models() -> list[Subject]:
    return [Subject(name, {"name": name, "creation_timestamp": created, "last_updated_timestamp": updated}, tags=tags)
            for name, created, updated, tags in MODELS]


@pytest.mark.parametrize("filter_string", MODEL_FILTERS, ids=repr)
def test_registered_model_filters(filter_string: str | None) -> None:
    from mlflow.utils.search_utils import SearchModelUtils
    same_answer(lambda: [s.record for s in search.REGISTERED_MODELS.filter(_our_models(), filter_string)],
                lambda: [m.name for m in SearchModelUtils.filter(_mlflow_models(), filter_string)])


@pytest.mark.parametrize("order_by", [
    [], ["name"], ["name DESC"], ["last_updated_timestamp DESC"], ["last_updated_timestamp", "creation_timestamp"],
    ["timestamp"], ["tags.kind"], ["bogus"], ["version_number"],
], ids=repr)
def test_registered_model_orderings(order_by: list[str]) -> None:
    from mlflow.utils.search_utils import SearchModelUtils
    same_answer(lambda: [s.record for s in search.REGISTERED_MODELS.sort(_our_models(), order_by)],
                lambda: [m.name for m in SearchModelUtils.sort(_mlflow_models(), order_by)])


VERSIONS = [("alpha", 1, 100, 400, "s3://b/1/model", "r1", {"stage": "dev"}),
            ("alpha", 2, 200, 400, "s3://b/2/model", "r2", {}),
            ("alpha", 10, 300, 100, "s3://b/3/model", "r1", {"stage": "prod"}),
            ("beta", 1, 150, 500, "models:/m-1", "", {"stage": "dev"})]
VERSION_FILTERS = [
    None, "name = 'alpha'", "name = 'alpha' and version_number = 2", "version_number > 1", "version_number <= 2",
    "version_number = 1.5", "version_number != '1'", "run_id = 'r1'", "run_id IN ('r1', 'r2')", "name NOT IN ('beta')",
    "source_path LIKE 's3://%'", "source_path = 'models:/m-1'", "tags.stage = 'dev'", "tags.stage ILIKE 'P%'",
    "tags.`mlflow.prompt.is_prompt` != 'true'", "attribute.run_id != 'r1'", "name LIKE '%a'",
    # refused
    "version_number IN ('1')", "source_path IN ('a')", "name = 5", "creation_timestamp > 5", "current_stage = 'None'",
    "tags.stage > 'a'", "version_number LIKE '1'", "run_id > 'a'", "foo.x = 'a'",
    "name = 'a' or name = 'b'",
]


def _mlflow_versions() -> list[Any]:
    from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
    return [ModelVersion(name, version, created, updated, source=source, run_id=run_id,  # type: ignore[arg-type]
                         tags=[ModelVersionTag(k, v) for k, v in tags.items()])
            for name, version, created, updated, source, run_id, tags in VERSIONS]


def _our_versions() -> list[Subject]:
    return [Subject((name, version), {"name": name, "version": version, "creation_timestamp": created,
                                      "last_updated_timestamp": updated, "source": source, "run_id": run_id},
                    tags=tags) for name, version, created, updated, source, run_id, tags in VERSIONS]


@pytest.mark.parametrize("filter_string", VERSION_FILTERS, ids=repr)
def test_model_version_filters(filter_string: str | None) -> None:
    from mlflow.utils.search_utils import SearchModelVersionUtils
    same_answer(lambda: [s.record for s in search.MODEL_VERSIONS.filter(_our_versions(), filter_string)],
                lambda: [(v.name, v.version) for v in SearchModelVersionUtils.filter(_mlflow_versions(), filter_string)])


@pytest.mark.parametrize("order_by", [
    [], ["name"], ["name DESC"], ["version_number"], ["version_number DESC"], ["creation_timestamp DESC"],
    ["last_updated_timestamp DESC", "name ASC", "version_number DESC"], ["last_updated_timestamp"],
    ["run_id"], ["tags.stage"], ["timestamp DESC"],
], ids=repr)
def test_model_version_orderings(order_by: list[str]) -> None:
    from mlflow.utils.search_utils import SearchModelVersionUtils
    same_answer(lambda: [s.record for s in search.MODEL_VERSIONS.sort(_our_versions(), order_by)],
                lambda: [(v.name, v.version) for v in SearchModelVersionUtils.sort(_mlflow_versions(), order_by)])


# -- logged models ----------------------------------------------------------------------------
LOGGED: list[tuple[Any, ...]] = [  # model_id, name, created, updated, type, run, status, tags, params, metrics (key, value, ts, ds, digest)
    ("m-a", "net", 100, 400, "pytorch", "r1", "LOGGED_MODEL_READY", {"t": "x"}, {"lr": "0.1"},
     [("acc", 0.8, 5, "val", "d1"), ("acc", 0.6, 9, "train", "d2")]),
    ("m-b", "forest", 300, 300, None, None, "LOGGED_MODEL_PENDING", {}, {"lr": "0.2"}, [("acc", 0.9, 5, None, None)]),
    ("m-c", "net", 200, 500, "pytorch", "r2", "LOGGED_MODEL_UPLOAD_FAILED", {"t": "y"}, {},
     [("loss", 0.3, 1, "val", "d1"), ("acc", 0.7, 3, "val", "d9")]),
]
LOGGED_FILTERS = [
    None, "name = 'net'", "name LIKE 'f%'", "model_type = 'pytorch'", "status = 'READY'", "status != 'PENDING'",
    "status IN ('READY', 'FAILED')", "source_run_id = 'r1'", "model_id NOT IN ('m-a')", "creation_timestamp > 100",
    "last_updated_timestamp <= 400", "tags.t = 'x'", "tags.t LIKE '%'", "params.lr = '0.2'", "params.lr != '0.1'",
    "metrics.acc > 0.7", "metrics.acc < 0.85", "metrics.loss = 0.3", "name > 'm'", "datasets.name = 'net'",
    "name = 'net' and metrics.acc >= 0.7", "attributes.name ILIKE 'NET'",
    # refused
    "params.lr IS NULL", "tags.t IS NOT NULL", "params.lr > '0'", "tags.t IN ('x')", "metrics.acc LIKE 'x'",
    "creation_timestamp LIKE 5", "creation_timestamp = 'x'", "bogus = 'x'", "datasets.digest = 'x'",
    "datasets.context = 'x'", "name = net", "metrics.acc > 0.5 or name = 'net'",
]


def _mlflow_logged() -> list[Any]:
    from mlflow.entities import LoggedModel, LoggedModelStatus, Metric
    statuses = {"LOGGED_MODEL_READY": LoggedModelStatus.READY, "LOGGED_MODEL_PENDING": LoggedModelStatus.PENDING,
                "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED}
    return [LoggedModel("1", mid, name, "a", created, updated, mtype, run, statuses[status], None, tags, params,
                        [Metric(k, v, ts, 0, model_id=mid, dataset_name=ds, dataset_digest=dg)
                         for k, v, ts, ds, dg in metrics])
            for mid, name, created, updated, mtype, run, status, tags, params, metrics in LOGGED]


def _our_logged() -> list[Subject]:
    return [Subject(mid, {"model_id": mid, "name": name, "creation_timestamp": created, "last_updated_timestamp": updated,
                          "model_type": mtype, "source_run_id": run, "status": status},
                    tags=tags, params=params, model_metrics=[ModelMetric(*m) for m in metrics])
            for mid, name, created, updated, mtype, run, status, tags, params, metrics in LOGGED]


@pytest.mark.parametrize("datasets", [None, [{"dataset_name": "val"}], [{"dataset_name": "val", "dataset_digest": "d9"}]],
                         ids=["all", "val", "val-d9"])
@pytest.mark.parametrize("filter_string", LOGGED_FILTERS, ids=repr)
def test_logged_model_filters(filter_string: str | None, datasets: list[dict[str, str]] | None) -> None:
    from mlflow.utils.search_utils import SearchLoggedModelsUtils
    same_answer(lambda: [s.record for s in search.LOGGED_MODELS.filter_models(_our_logged(), filter_string, datasets)],
                lambda: [m.model_id for m in SearchLoggedModelsUtils.filter_logged_models(_mlflow_logged(),
                                                                                         filter_string, datasets)])


@pytest.mark.parametrize("order_by", [
    [], [{"field_name": "name"}], [{"field_name": "name", "ascending": False}], [{"field_name": "metrics.acc"}],
    [{"field_name": "metrics.acc", "ascending": False}], [{"field_name": "metrics.acc", "dataset_name": "val"}],
    [{"field_name": "metrics.acc", "dataset_name": "val", "dataset_digest": "d1", "ascending": False}],
    [{"field_name": "creation_time"}], [{"field_name": "last_updated_timestamp", "ascending": False}],
    [{"field_name": "status"}], [{"field_name": "model_id", "ascending": False}],
    # refused
    ["name"], [{"ascending": True}], [{"field_name": "params.lr"}], [{"field_name": "bogus"}],
    [{"field_name": "name", "ascending": "yes"}], [{"field_name": "metrics.acc", "dataset_digest": "d1"}],
], ids=repr)
def test_logged_model_orderings(order_by: list[Any]) -> None:
    from mlflow.utils.search_utils import SearchLoggedModelsUtils
    same_answer(lambda: [s.record for s in search.LOGGED_MODELS.sort(_our_logged(), order_by)],
                lambda: [m.model_id for m in SearchLoggedModelsUtils.sort(_mlflow_logged(), order_by)])


# -- where we differ: MLflow's in-memory search crashes (a 500) or checks lazily -----------------
@pytest.mark.parametrize("run,filter_string,message", [
    # MLflow checks comparators per record, only while clauses still match: its SQL store checks them all.
    (search.RUNS.filter, "metrics.acc > 5 and params.model > 'a'", "Invalid comparator '>' not one of "),
    (search.EXPERIMENTS.filter, "tags.kind < 'a'", "Invalid comparator '<' not one of "),
    # MLflow raises ValueError / TypeError / AttributeError from these.
    (search.RUNS.filter, "attributes.run_id IN (a, b)", "While parsing a list in the query, expected a non-empty"),
    (search.REGISTERED_MODELS.filter, "name IS NULL", "Invalid comparison clause. Expected 3 tokens found 2"),
    (search.MODEL_VERSIONS.filter, "tags.stage IS NULL", "Invalid comparison clause. Expected 3 tokens found 2"),
    (search.MODEL_VERSIONS.filter, "version_number = 'x'", "Expected an integer value for attribute 'version_number'"),
    (search.LOGGED_MODELS.filter, "name <> 'x'", "Invalid comparator '<>' not one of "),
])
def test_refusals_where_mlflow_fails_or_checks_lazily(run: Any, filter_string: str, message: str) -> None:
    with pytest.raises(MlflowError) as err:
        run([], filter_string)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert err.value.message.startswith(message)


def test_logged_model_time_aliases_read_the_timestamps() -> None:
    """MLflow's in-memory search has no creation_time / last_updated_time attributes (AttributeError)."""
    models = _our_logged()
    assert [s.record for s in search.LOGGED_MODELS.filter_models(models, "creation_time >= 200", None)] == ["m-b", "m-c"]
    ordered = search.LOGGED_MODELS.sort(models, [{"field_name": "last_updated_time", "ascending": False}])
    assert [s.record for s in ordered] == ["m-c", "m-a", "m-b"]


# -- page tokens ------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "eyJvZmZzZXQiOiA1fQ==", "eyJvZmZzZXQiOiAiNyJ9", "!!", "xyz", "e30=",
                                   "eyJvZmZzZXQiOiAwfQ==", "eyJvZmZzZXQiOiAiYSJ9", "bm90IGpzb24="])
def test_page_tokens(token: str | None) -> None:
    from mlflow.utils.search_utils import SearchUtils
    same_answer(lambda: [pages.page_offset(token)], lambda: [SearchUtils.parse_start_offset_from_page_token(token)])


@pytest.mark.parametrize("token", ["W10=", "eyJvZmZzZXQiOiAtMn0="])  # [] (MLflow: AttributeError), offset -2
def test_page_tokens_mlflow_would_crash_on_or_misread(token: str) -> None:
    with pytest.raises(MlflowError, match="Invalid page token, parsed value="):
        pages.page_offset(token)


@pytest.mark.parametrize("token", [
    "eyJvZmZzZXQiOiBJbmZpbml0eX0=",  # {"offset": Infinity}: OverflowError (a 500)
    "eyJvZmZzZXQiOiBbMV19",  # {"offset": [1]}
    "eyJvZmZzZXQiOiB7ImEiOiAxfX0=",  # {"offset": {"a": 1}}
    "eyJvZmZzZXQiOiB0cnVlfQ==",  # {"offset": true}
    "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tb" * 200,  # "[[[[..." nested thousands deep: RecursionError
], ids=["infinity", "array", "object", "boolean", "deep"])
def test_page_tokens_of_unexpected_types_are_invalid(token: str) -> None:
    with pytest.raises(MlflowError) as err:
        pages.page_offset(token)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("order_by", [{"field_name": {"a": 1}}, {"field_name": ["name"]}, {"field_name": 5},
                                      {"field_name": "metrics.m", "dataset_name": {"a": 1}},
                                      {"field_name": "metrics.m", "dataset_name": "d", "dataset_digest": [1]}])
def test_logged_model_order_by_of_unexpected_types_is_invalid(order_by: dict[str, Any]) -> None:
    """Issue 7: an object in order_by was a 500 (AttributeError)."""
    with pytest.raises(MlflowError) as err:
        search.LOGGED_MODELS.sort(_our_logged(), [order_by])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("run", [search.RUNS.filter, search.EXPERIMENTS.filter, search.REGISTERED_MODELS.filter])
@pytest.mark.parametrize("filter_string", [{"a": 1}, ["name = 'x'"], 5, "name = 'x' AND " * 5000 + "name = 'x'"],
                         ids=["object", "array", "number", "long"])
def test_filters_of_unexpected_types_or_sizes_are_invalid(run: Any, filter_string: Any) -> None:
    with pytest.raises(MlflowError) as err:
        run([], filter_string)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("filter_string", [";" * 60_000, "(" * 60_000, "a " * 30_000, "'x' = " * 10_000],
                         ids=["statements", "parentheses", "words", "comparisons"])
def test_long_filters_are_refused_in_bounded_time(filter_string: str) -> None:
    import time
    start = time.perf_counter()
    with pytest.raises(MlflowError):
        search.RUNS.filter([], filter_string)
    assert time.perf_counter() - start < 1.5  # 60,000 statements cost ~3 s to parse


@pytest.mark.parametrize("filter_string", ["tags.t LIKE '%a%a%a%a%a%a%a%b'", "params.p ILIKE '%A%a%A%a%A%a%A%b'",
                                           "attributes.run_name LIKE '%a%a%a%a%a%a%a%b'"])
def test_like_takes_linear_time(filter_string: str) -> None:
    """Issue 7: LIKE compiled to a backtracking regular expression: ~30 s for this one record."""
    import time
    run = Subject("r", {"run_id": "r", "run_name": "a" * 60, "start_time": 0}, tags={"t": "a" * 60},
                  params={"p": "a" * 60})
    start = time.perf_counter()
    assert search.RUNS.filter([run], filter_string) == []
    assert search.RUNS.filter([run], filter_string.replace("%b'", "%'")) == [run]
    assert time.perf_counter() - start < 1.0


def test_pages_walk_everything_once() -> None:
    from mlflow.utils.search_utils import SearchUtils
    items, token, seen = list(range(11)), None, []  # type: list[int], str | None, list[int]
    while True:
        page, token = pages.page(items, token, 4)
        seen += page
        if not token:
            break
        assert token == SearchUtils.create_page_token(len(seen)).decode()
    assert seen == items


# -- no mlflow on the request path ----------------------------------------------------------------
_SERVE = """
import json, sys
from chalice.test import Client
from chalicelib import services
from chalicelib.store.local import LocalStore
services.configure(store=LocalStore(sys.argv[1], fsync=False))
from app import app
A = "/mlflow/api/2.0/mlflow"
with Client(app) as client:
    def call(method, path, body):
        resp = client.http.request(method, A + path, body=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, (path, resp.body)
        return json.loads(resp.body)
    eid = call("POST", "/experiments/create", {"name": "lean"})["experiment_id"]
    rid = call("POST", "/runs/create", {"experiment_id": eid})["run"]["info"]["run_id"]
    call("POST", "/runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 0}]})
    found = call("POST", "/runs/search", {"experiment_ids": [eid], "filter": "metrics.m > 0", "order_by": ["metrics.m"]})
    assert [r["info"]["run_id"] for r in found["runs"]] == [rid], found
    assert len(call("POST", "/experiments/search", {"filter": "name = 'lean'"})["experiments"]) == 1
    call("POST", "/logged-models/search", {"experiment_ids": [eid], "filter": "name LIKE 'x%'"})
    call("POST", "/registered-models/create", {"name": "lean-model"})
    assert len(call("GET", "/registered-models/search?filter=name%3D%27lean-model%27", {})["registered_models"]) == 1
    call("GET", "/model-versions/search?filter=name%3D%27lean-model%27", {})
print(json.dumps(sorted(m for m in sys.modules if m == "mlflow" or m.startswith("mlflow."))))
"""


def test_serving_searches_does_not_import_mlflow(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_SERVE), str(tmp_path / "store")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
