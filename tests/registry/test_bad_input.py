"""Bad registry input: names of any length or script, and request fields of the wrong JSON type."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stac_offline import validate_object

from chalicelib import services
from chalicelib.registry import records as rec
from chalicelib.registry.publication import item_key, latest_published
from chalicelib.registry.service import RegistryService
from chalicelib.stac.model_items import item_id
from chalicelib.store import ObjectStore
from tests.helpers.registry_world import World, make_world
from tests.helpers.stores import etags

LONG_NAMES = ["é" * 100, "a" * 256, "é" * 256, "模型" * 128, "x y.z-" * 42]


def _check_keys(store: ObjectStore) -> None:
    for info in store.list(""):
        assert len(info.key.encode()) <= 1024, info.key
        assert all(len(segment.encode()) <= 255 for segment in info.key.split("/")), info.key


def test_names_of_any_length_map_to_valid_keys(store: ObjectStore) -> None:
    registry = RegistryService(store)
    for i, name in enumerate(LONG_NAMES):
        registry.create_registered_model(name, description=str(i))
        assert registry.get_registered_model(name).description == str(i)
        assert registry.create_model_version(name, "s3://bucket/model").version == 1
        registry.set_registered_model_alias(name, "champion", "1")
        assert registry.get_model_version_by_alias(name, "champion").version == 1
        assert [mv.name for mv in registry.search_model_versions(f"name = '{name}'")[0]] == [name]
    registry.create_registered_model("b")
    names = [m.name for m in registry.search_registered_models(None, 100, ["name ASC"])[0]]
    assert names == sorted(LONG_NAMES + ["b"])  # listing and sorting by name work whatever the keys
    renamed = "ü" * 250
    registry.rename_registered_model(LONG_NAMES[0], renamed)
    assert registry.get_model_version(renamed, "1").name == renamed
    registry.delete_registered_model(LONG_NAMES[1])
    assert sorted(m.name for m in registry.search_registered_models(None, 100)[0]) == sorted(
        [renamed, "b"] + LONG_NAMES[2:])
    _check_keys(store)


def test_segments_stay_distinct() -> None:
    plain = rec.name_segment("a" * 120)
    hashed = [rec.name_segment("a" * 121), rec.name_segment("a" * 120 + "b"), rec.name_segment("é" * 100)]
    assert len({plain, *hashed}) == 4
    assert all(len(s) <= 145 for s in [plain, *hashed])


@pytest.fixture
def local_world(local_store: ObjectStore) -> Iterator[World]:
    yield make_world(local_store)
    services.configure()


def test_long_model_names_are_published_with_valid_distinct_ids(local_world: World, onnx_bytes: bytes) -> None:
    world = local_world
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    first, second = "m" * 250, "m" * 249 + "n"  # ids over 200 characters before; same 120-character prefix
    for name in (first, second):
        world.registry.create_registered_model(name)
        for _ in range(2):
            world.registry.create_model_version(name, f"runs:/{world.run_id}/model")
    world.deliver()
    ids = set()
    for name in (first, second):
        for version in (1, 2):
            item = world.item(name, version)
            assert item is not None, (name, version)
            assert validate_object(item) == [], (name, version)
            assert len(item["id"]) <= 200
            assert item["properties"]["mlflow:registered_model"] == name
            ids.add(item["id"])
        links = {link["rel"]: link["href"] for link in world.item(name, 1)["links"]}  # type: ignore[index]
        successor = links["successor-version"].rsplit("/", 1)[1]
        assert successor == item_id(name, 2)
        assert world.store.exists(item_key(name, 2))
        assert latest_published(world.store, name) == item_id(name, 2)
    assert len(ids) == 4


# -- request fields of the wrong JSON type -----------------------------------------------------------
API = "/mlflow/api/2.0/mlflow"
_VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/registered-models/create", {"name": "new", "tags": [{"key": "k", "value": "v"}], "description": "d",
                                           "deployment_job_id": "j"}),
    ("PATCH", "/registered-models/update", {"name": "m", "description": "d", "deployment_job_id": "j"}),
    ("POST", "/registered-models/rename", {"name": "m", "new_name": "m2"}),
    ("DELETE", "/registered-models/delete", {"name": "m"}),
    ("POST", "/registered-models/set-tag", {"name": "m", "key": "k", "value": "v"}),
    ("DELETE", "/registered-models/delete-tag", {"name": "m", "key": "k"}),
    ("POST", "/registered-models/alias", {"name": "m", "alias": "a", "version": "1"}),
    ("DELETE", "/registered-models/alias", {"name": "m", "alias": "a"}),
    ("POST", "/registered-models/get-latest-versions", {"name": "m", "stages": ["None"]}),
    ("POST", "/model-versions/create", {"name": "m", "source": "s3://b/k", "run_id": "", "tags": [],
                                        "run_link": "l", "description": "d", "model_id": ""}),
    ("PATCH", "/model-versions/update", {"name": "m", "version": "1", "description": "d"}),
    ("POST", "/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Staging",
                                                  "archive_existing_versions": False}),
    ("DELETE", "/model-versions/delete", {"name": "m", "version": "1"}),
    ("POST", "/model-versions/set-tag", {"name": "m", "version": "1", "key": "k", "value": "v"}),
    ("DELETE", "/model-versions/delete-tag", {"name": "m", "version": "1", "key": "k"}),
]
CASES = [(method, path, body, field) for method, path, body in _VALID for field in body]
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=6)
WRONG = st.dictionaries(st.text(max_size=5), _JSON, max_size=3) | st.lists(
    st.lists(_JSON, max_size=2) | st.dictionaries(st.text(max_size=5), _JSON, max_size=2), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ObjectStore]]:
    from app import app
    from chalicelib.store.local import LocalStore
    store = LocalStore(tmp_path_factory.mktemp("bad-input") / "store", fsync=False)
    services.configure(store=store)
    registry = RegistryService(store)
    registry.create_registered_model("m", [{"key": "k", "value": "v"}])
    registry.create_model_version("m", "s3://b/k")
    with Client(app) as client:
        yield client.http, store
    services.configure()


def test_the_valid_requests_succeed_on_their_own(http: tuple[Any, ObjectStore]) -> None:
    """So that each case below fails only by its one wrong field (run last-to-first: deletes last)."""
    client, _ = http
    for method, path, body in reversed(_VALID):
        if path not in ("/registered-models/delete", "/registered-models/rename", "/model-versions/delete"):
            resp = getattr(client, method.lower())(API + path, body=json.dumps(body),
                                                   headers={"Content-Type": "application/json"})
            assert resp.status_code == 200, (path, resp.body)


@pytest.mark.parametrize("method, path, body, field", CASES, ids=[f"{c[1]}:{c[3]}" for c in CASES])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wrong=WRONG)
def test_a_field_of_the_wrong_type_is_invalid_and_writes_nothing(http: tuple[Any, ObjectStore], method: str,
                                                                   path: str, body: dict[str, Any], field: str,
                                                                   wrong: Any) -> None:
    client, store = http
    if field == "tags" and isinstance(wrong, list) and all(isinstance(t, dict) for t in wrong):
        wrong = {"not": "a list"}  # a list of objects is the right type; its contents are checked elsewhere
    before = etags(store)
    resp = getattr(client, method.lower())(API + path, body=json.dumps({**body, field: wrong}),
                                           headers={"Content-Type": "application/json"})
    assert (resp.status_code, json.loads(resp.body)["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), resp.body
    assert etags(store) == before
