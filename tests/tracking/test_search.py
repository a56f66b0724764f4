"""search_runs / search_experiments give MLflow's own answer (SearchUtils over mlflow entities)."""
from __future__ import annotations

import math

import pytest

from chalicelib.tracking.service import TrackingService

RUN_FILTERS = [
    None,
    "metrics.acc > 0.5",
    "metrics.acc >= 0.5 and params.model = 'rf'",
    "metrics.loss != 0.3",
    "params.model LIKE 'r%'",
    "params.model ILIKE 'XG%'",
    "params.model IN ('rf', 'svm')",
    "params.model NOT IN ('rf')",
    "tags.team = 'eo'",
    "tags.team != 'eo'",
    "tags.`mlflow.runName` LIKE '%3'",
    "attributes.status = 'FINISHED'",
    "attributes.run_name = 'run-2'",
    "attributes.start_time > 1700000005000",
    "attributes.end_time IS NULL",
    "params.depth IS NULL",
    "metrics.acc IS NOT NULL",
    "datasets.name = 'tiles'",
    "datasets.digest = 'abc'",
    "datasets.context = 'training'",
    "attributes.run_id IN ('{id0}', '{id3}')",
    "metrics.acc < 0.9 and tags.team = 'eo' and params.model != 'svm'",
]
RUN_ORDERS = [
    [],
    ["metrics.acc DESC"],
    ["metrics.acc"],
    ["params.model ASC", "metrics.loss DESC"],
    ["tags.team DESC"],
    ["attributes.start_time ASC"],
    ["attributes.run_name DESC"],
    ["metrics.loss ASC", "attributes.start_time DESC"],
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):  # type: ignore[no-untyped-def]
    from chalicelib.store.local import LocalStore
    svc = TrackingService(LocalStore(tmp_path_factory.mktemp("store"), fsync=False))
    eid = svc.create_experiment("search", None, [])
    ids = []
    for i in range(12):
        run_id = svc.create_run({"experiment_id": eid, "start_time": 1700000000000 + 1000 * (i % 7),
                                 "run_name": f"run-{i}"}).info.run_id
        ids.append(run_id)
        metrics = []
        if i % 4 != 3:
            metrics.append({"key": "acc", "value": (i * 37 % 10) / 10, "timestamp": 5, "step": 0})
        metrics.append({"key": "loss", "value": math.nan if i == 5 else round(1 / (i + 1), 3),
                        "timestamp": 5, "step": i % 2})
        params = [{"key": "model", "value": ["rf", "svm", "xgb"][i % 3]}]
        if i % 2:
            params.append({"key": "depth", "value": str(i)})
        tags = [{"key": "team", "value": "eo" if i % 3 else "sar"}]
        svc.log_batch(run_id, metrics, params, tags)
        if i % 3 == 1:
            svc.log_inputs(run_id, [{"dataset": {"name": "tiles", "digest": "abc" if i % 2 else "def",
                                                 "source_type": "local", "source": "{}"},
                                     "tags": [{"key": "mlflow.data.context", "value": "training"}]}], [])
        if i % 5 == 0:
            svc.update_run_info(run_id, "FINISHED", 1700000100000, None)
    svc.delete_run(ids[11])
    return svc, eid, ids


def _mlflow_runs(svc: TrackingService, run_ids: list[str]):  # type: ignore[no-untyped-def]
    from google.protobuf.json_format import ParseDict
    from mlflow.entities import Run
    from mlflow.protos.service_pb2 import Run as RunProto
    return [Run.from_proto(ParseDict(svc.get_run(r).to_wire(), RunProto())) for r in run_ids]


@pytest.mark.parametrize("order_by", RUN_ORDERS, ids=str)
@pytest.mark.parametrize("filter_string", RUN_FILTERS, ids=str)
def test_search_runs_matches_mlflow(seeded, filter_string, order_by):  # type: ignore[no-untyped-def]
    from mlflow.utils.search_utils import SearchUtils
    svc, eid, ids = seeded
    if filter_string:
        filter_string = filter_string.format(id0=ids[0], id3=ids[3])
    from mlflow.exceptions import MlflowException

    from chalicelib.mlflowapi.errors import MlflowError
    try:
        expected_runs = SearchUtils.sort(SearchUtils.filter(_mlflow_runs(svc, ids[:11]), filter_string), order_by)
    except MlflowException as err:  # MLflow refuses this filter: so must we, with its message
        with pytest.raises(MlflowError) as ours:
            svc.search_runs([eid], filter_string, None, None, order_by, None)
        assert (ours.value.error_code, ours.value.message) == ("INVALID_PARAMETER_VALUE", err.message)
        return
    expected = [r.info.run_id for r in expected_runs]
    got = [r.info.run_id for r in svc.search_runs([eid], filter_string, None, None, order_by, None).items]
    assert got == expected
    # paging walks the same order
    paged, token = [], None
    while True:
        page = svc.search_runs([eid], filter_string, None, 4, order_by, token)
        paged += [r.info.run_id for r in page.items]
        token = page.token
        if not token:
            break
    assert paged == expected


def test_run_view_types(seeded):  # type: ignore[no-untyped-def]
    svc, eid, ids = seeded
    deleted = [r.info.run_id for r in svc.search_runs([eid], None, "DELETED_ONLY", None, [], None).items]
    every = svc.search_runs([eid], None, "ALL", None, [], None).items
    assert deleted == [ids[11]]
    assert len(every) == 12


@pytest.mark.parametrize("filter_string,order_by", [
    (None, []),
    ("name LIKE 'e-%'", ["name DESC"]),
    ("tags.kind = 'x'", ["creation_time ASC"]),
    ("name != 'e-2'", ["last_update_time DESC", "name"]),
    ("attribute.name ILIKE '%E-1%'", []),
])
def test_search_experiments_matches_mlflow(local_store, filter_string, order_by):  # type: ignore[no-untyped-def]
    from google.protobuf.json_format import ParseDict
    from mlflow.entities import Experiment
    from mlflow.protos.service_pb2 import Experiment as ExperimentProto
    from mlflow.utils.search_utils import SearchExperimentsUtils
    svc = TrackingService(local_store)
    for i in range(6):
        svc.create_experiment(f"e-{i}", None, [{"key": "kind", "value": "x" if i % 2 else "y"}])
    every = [Experiment.from_proto(ParseDict(e.to_wire(), ExperimentProto()))
             for e in svc.search_experiments("ALL", None, None, [], None).items]
    expected = SearchExperimentsUtils.sort(SearchExperimentsUtils.filter(every, filter_string),
                                           order_by or ["creation_time DESC"])
    got = svc.search_experiments(None, None, filter_string, order_by, None).items
    assert [e.experiment_id for e in got] == [e.experiment_id for e in expected]
    assert len(every) == 7  # and "Default"
