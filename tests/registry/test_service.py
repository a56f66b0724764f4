"""RegistryService against both store adapters, with the real tracking service for runs and logged models."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.mlflowapi.errors import MlflowError
from chalicelib.registry import records as rec
from chalicelib.registry.lineage import ServiceTracking
from chalicelib.registry.service import RegistryService
from chalicelib.store import ObjectStore
from chalicelib.tracking.service import TrackingService


@pytest.fixture
def tracking(store: ObjectStore) -> TrackingService:
    return TrackingService(store)


@pytest.fixture
def registry(store: ObjectStore, tracking: TrackingService) -> RegistryService:
    return RegistryService(store, ServiceTracking(tracking))


def _run(tracking: TrackingService) -> dict[str, Any]:
    eid = tracking.create_experiment("exp", None, [])
    return tracking.create_run({"experiment_id": eid, "start_time": 1}).to_wire()


def _error(fn: Any, *args: Any) -> MlflowError:
    with pytest.raises(MlflowError) as info:
        fn(*args)
    return info.value


def _keys(store: ObjectStore) -> list[str]:
    return [i.key for i in store.list(rec.PREFIX)]


def test_model_lifecycle(registry: RegistryService) -> None:
    rm = registry.create_registered_model("iris", [{"key": "team", "value": "eo"}], "flowers")
    assert rm.tags == {"team": "eo"}
    assert _error(registry.create_registered_model, "iris").error_code == "RESOURCE_ALREADY_EXISTS"
    registry.update_registered_model("iris", "new description")
    registry.set_registered_model_tag("iris", "stage", "dev")
    registry.delete_registered_model_tag("iris", "team")
    got = registry.get_registered_model("iris")
    assert (got.description, got.tags) == ("new description", {"stage": "dev"})
    renamed = registry.rename_registered_model("iris", "iris2")
    assert renamed.name == "iris2"
    assert _error(registry.get_registered_model, "iris").error_code == "RESOURCE_DOES_NOT_EXIST"
    registry.delete_registered_model("iris2")
    assert _error(registry.get_registered_model, "iris2").error_code == "RESOURCE_DOES_NOT_EXIST"


def test_versions_from_each_source_kind(registry: RegistryService, tracking: TrackingService) -> None:
    run = _run(tracking)
    run_id, artifact_uri = run["info"]["run_id"], run["info"]["artifact_uri"]
    logged = tracking.create_logged_model({"experiment_id": run["info"]["experiment_id"],
                                           "source_run_id": run_id}).to_wire()["info"]
    registry.create_registered_model("m")
    v1 = registry.create_model_version("m", f"runs:/{run_id}/model")
    assert (v1.version, v1.run_id, v1.storage_location) == (1, run_id, f"{artifact_uri}/model")
    v2 = registry.create_model_version("m", f"models:/{logged['model_id']}", model_id=logged["model_id"])
    assert (v2.version, v2.run_id, v2.storage_location) == (2, run_id, logged["artifact_uri"])
    v3 = registry.create_model_version("m", "s3://bucket/models/x")
    assert v3.storage_location == "s3://bucket/models/x"
    v4 = registry.create_model_version("m", f"{artifact_uri}/model", run_id=run_id)
    assert v4.version == 4
    v5 = registry.create_model_version("m", "models:/m/2")
    assert (v5.source, v5.storage_location, v5.model_id) == ("models:/m/2", logged["artifact_uri"], logged["model_id"])
    assert registry.get_model_version_download_uri("m", "2") == logged["artifact_uri"]


@pytest.mark.parametrize("source, kwargs", [
    ("file:///etc/passwd", {}),
    ("/local/path", {}),
    ("runs:/unknown-run/model", {}),
    ("models:/m-0123456789abcdef", {}),
    ("mlflow-artifacts:/1/abc/artifacts/model", {}),  # needs the run that holds it
    ("s3://bucket/../../etc", {}),
    ("s3://bucket/a/%2e%2e/b", {}),
    ("models:/nosuchmodel/1", {}),
    ("", {}),
])
def test_bad_sources_are_rejected_and_write_nothing(registry: RegistryService, store: ObjectStore,
                                                    source: str, kwargs: dict[str, Any]) -> None:
    registry.create_registered_model("m")
    before = _keys(store)
    err = _error(registry.create_model_version, "m", source)
    assert err.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert _keys(store) == before


def test_bad_input_errors(registry: RegistryService) -> None:
    registry.create_registered_model("m")
    registry.create_model_version("m", "s3://b/k")
    cases = [
        (registry.create_model_version, ("nope", "s3://b/k"), "RESOURCE_DOES_NOT_EXIST"),
        (registry.create_registered_model, ("a/b",), "INVALID_PARAMETER_VALUE"),
        (registry.create_registered_model, ("",), "INVALID_PARAMETER_VALUE"),
        (registry.get_model_version, ("m", "abc"), "INVALID_PARAMETER_VALUE"),
        (registry.get_model_version, ("m", "7"), "RESOURCE_DOES_NOT_EXIST"),
        (registry.set_registered_model_alias, ("m", "bad alias!", "1"), "INVALID_PARAMETER_VALUE"),
        (registry.set_registered_model_alias, ("m", "latest", "1"), "INVALID_PARAMETER_VALUE"),
        (registry.set_registered_model_alias, ("m", "v3", "1"), "INVALID_PARAMETER_VALUE"),
        (registry.set_registered_model_alias, ("m", "prod", "9"), "RESOURCE_DOES_NOT_EXIST"),
        (registry.get_model_version_by_alias, ("m", "missing"), "INVALID_PARAMETER_VALUE"),
        (registry.transition_model_version_stage, ("m", "1", "Bogus"), "INVALID_PARAMETER_VALUE"),
        (registry.transition_model_version_stage, ("m", "1", "Archived", True), "INVALID_PARAMETER_VALUE"),
        (registry.search_registered_models, ("name = ",), "INVALID_PARAMETER_VALUE"),
        (registry.search_model_versions, ("bogus_attr = 'x'",), "INVALID_PARAMETER_VALUE"),
        (registry.search_registered_models, (None, 5000), "INVALID_PARAMETER_VALUE"),
        (registry.set_model_version_tag, ("m", "1", "../x", "v"), "INVALID_PARAMETER_VALUE"),
    ]
    for fn, args, code in cases:
        assert _error(fn, *args).error_code == code, (fn.__name__, args)


def test_aliases_stages_latest_and_delete(registry: RegistryService) -> None:
    registry.create_registered_model("m")
    for _ in range(3):
        registry.create_model_version("m", "s3://b/k")
    registry.set_registered_model_alias("m", "champion", "2")
    assert registry.get_model_version_by_alias("m", "champion").version == 2
    assert registry.get_model_version("m", "2").aliases == ["champion"]
    registry.set_registered_model_alias("m", "champion", "3")
    assert registry.get_model_version("m", "2").aliases == []
    assert registry.get_model_version_by_alias("m", "latest").version == 3
    registry.transition_model_version_stage("m", "1", "production")
    registry.transition_model_version_stage("m", "2", "Production", True)
    assert registry.get_model_version("m", "1").current_stage == "Archived"
    latest = registry.get_latest_versions("m", ["Production", "None"])
    assert [(mv.current_stage, mv.version) for mv in latest] == [("Production", 2), ("None", 3)]
    registry.delete_model_version("m", "3")
    assert _error(registry.get_model_version_by_alias, "m", "champion").error_code == "INVALID_PARAMETER_VALUE"
    assert _error(registry.get_model_version, "m", "3").error_code == "RESOURCE_DOES_NOT_EXIST"
    assert registry.create_model_version("m", "s3://b/k").version == 4  # numbers are never reused
    view = registry.get_registered_model("m").to_wire()
    assert {v["current_stage"]: v["version"] for v in view["latest_versions"]} == {
        "None": "4", "Production": "2", "Archived": "1"}


def test_search(registry: RegistryService) -> None:
    for name in ("alpha", "beta", "gamma"):
        registry.create_registered_model(name, [{"key": "kind", "value": "cnn" if name != "beta" else "rf"}])
        registry.create_model_version(name, "s3://b/k")
    page, token = registry.search_registered_models("tags.kind = 'cnn'", 1, ["name DESC"])
    assert [m.name for m in page] == ["gamma"]
    assert token
    page, token = registry.search_registered_models("tags.kind = 'cnn'", 1, ["name DESC"], token)
    assert [m.name for m in page] == ["alpha"]
    assert token is None
    versions, _ = registry.search_model_versions("name = 'beta'")
    assert [(mv.name, mv.version) for mv in versions] == [("beta", 1)]
    versions, _ = registry.search_model_versions("name LIKE '%a'", None, ["name ASC"])
    assert [mv.name for mv in versions] == ["alpha", "beta", "gamma"]


def test_concurrent_registrations_get_consecutive_numbers(registry: RegistryService, store: ObjectStore) -> None:
    registry.create_registered_model("busy")
    with ThreadPoolExecutor(max_workers=20) as pool:
        numbers = list(pool.map(lambda _: registry.create_model_version("busy", "s3://b/k").version, range(20)))
    assert sorted(numbers) == list(range(1, 21))
    uid = registry.get_registered_model("busy").uid
    stored = sorted(rec.version_number(i.key) for i in store.list(rec.versions_prefix(uid)))
    assert stored == list(range(1, 21))
