"""Cross-links between the MLflow UI and STAC Browser, written when a version is published."""
from __future__ import annotations

from typing import Iterator

import pytest

from chalicelib import services
from chalicelib.registry.publication import ITEM_URL_TAG, run_item_tag
from chalicelib.store.local import LocalStore
from tests.helpers.registry_world import World, make_world

BROWSER_ITEM = "http://svc/browser/stac/collections/ai-model/items/m-v1"


@pytest.fixture
def world_without_public_url(local_store: LocalStore) -> Iterator[World]:
    yield make_world(local_store, public_url=None)
    services.configure()


def _publish(world: World, onnx_bytes: bytes) -> None:
    world.upload_model(f"{world.artifacts}/model", onnx_bytes)
    world.registry.create_registered_model("m")
    world.registry.create_model_version("m", f"runs:/{world.run_id}/model")
    world.deliver()


def test_item_links_to_the_mlflow_ui_pages(world: World, onnx_bytes: bytes) -> None:
    _publish(world, onnx_bytes)
    item = world.item("m", 1)
    assert item is not None
    pages = {link["href"] for link in item["links"] if link.get("type") == "text/html"}
    assert {f"http://svc/mlflow/#/experiments/{world.tracking.get_run(world.run_id).info.experiment_id}"
            f"/runs/{world.run_id}", "http://svc/mlflow/#/models/m", "http://svc/mlflow/#/models/m/versions/1"} <= pages


def test_version_and_run_carry_the_items_browser_url(world: World, onnx_bytes: bytes) -> None:
    _publish(world, onnx_bytes)
    version = world.registry.get_model_version("m", "1")
    run = world.tracking.get_run(world.run_id)
    assert (version.tags.get(ITEM_URL_TAG), run.tags.get(run_item_tag("m-v1"))) == (BROWSER_ITEM, BROWSER_ITEM)


def test_tagging_leaves_the_version_and_its_item_as_they_were(world: World, onnx_bytes: bytes) -> None:
    _publish(world, onnx_bytes)
    item, updated = world.item("m", 1), world.registry.get_model_version("m", "1").last_updated_timestamp
    world.deliver()  # the tag write's own event
    world.deliver()
    assert (world.item("m", 1), world.registry.get_model_version("m", "1").last_updated_timestamp, world.changes) == (
        item, updated, [])


def test_no_public_url_no_tags(world_without_public_url: World, onnx_bytes: bytes) -> None:
    world = world_without_public_url
    _publish(world, onnx_bytes)
    assert ITEM_URL_TAG not in world.registry.get_model_version("m", "1").tags
