"""``stacflow check``: pystac walks the static catalog through the store and every problem is named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib import services
from chalicelib.cli import main
from chalicelib.stac import catalog
from chalicelib.stac.check import Problem, check_catalog
from chalicelib.stac.publish import publish_paths
from chalicelib.store import ObjectStore

from tests.helpers.stac_items import make_item, random_items

ITEMS = random_items(20) + random_items(6, "ai-model", seed=2)


@pytest.fixture
def published(store: ObjectStore, tmp_path: Path) -> ObjectStore:
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(item) for item in ITEMS))
    assert not publish_paths(store, [tmp_path / "items.ndjson"], progress=False).rejected
    return store


def test_a_published_catalog_passes(published: ObjectStore) -> None:
    report = check_catalog(published)  # on S3, every read goes through StoreStacIO
    assert report.problems == []
    assert (report.collections, report.items) == (2, len(ITEMS))


def test_an_item_changed_behind_the_catalog_is_invalid(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", ITEMS[0]["id"])
    broken = dict(published.get_json(key), bbox=[0, 0, 1, 1])
    published.put_json(key, broken, notify=False)
    (problem,) = check_catalog(published).problems
    assert problem.key == key
    assert problem.problem.startswith("invalid: bbox")


def test_an_item_edited_but_still_valid_is_not_in_published_form(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", ITEMS[1]["id"])
    edited = published.get_json(key)
    edited["links"] = [link for link in edited["links"] if link["rel"] != "parent"]
    published.put_json(key, edited, notify=False)
    assert [p.key for p in check_catalog(published).problems] == [key]


def test_an_item_deleted_behind_the_catalog_is_missing(published: ObjectStore) -> None:
    key = catalog.item_key("ai-model", ITEMS[-1]["id"])
    published.delete(key)
    assert check_catalog(published).problems == [Problem(key, "linked but missing")]


def test_an_item_whose_event_was_lost_is_not_linked(published: ObjectStore) -> None:
    key = catalog.item_key("dataset", "lost-event")
    published.put_json(key, make_item("lost-event"), notify=False)
    (problem,) = check_catalog(published).problems
    assert problem.key == key
    assert problem.problem.startswith("not linked")


def test_an_unpublished_store_has_no_catalog(local_store: ObjectStore) -> None:
    report = check_catalog(local_store)
    assert [p.key for p in report.problems] == [catalog.ROOT_KEY]
    assert report.collections == 0


def test_the_command_exits_non_zero_on_problems(local_store: ObjectStore, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "item.json").write_text(json.dumps(make_item("one")))
    publish_paths(local_store, [tmp_path / "item.json"], progress=False)
    try:
        assert main(["check", "--store", local_store.uri]) == 0
        assert json.loads(capsys.readouterr().out) == {"collections": 2, "items": 1, "problems": []}
        local_store.delete(catalog.item_key("dataset", "one"))
        assert main(["check", "--store", local_store.uri]) == 1
        problems = json.loads(capsys.readouterr().out)["problems"]
        # the walk, the shard, the collection's view of it and the index all name it
        assert problems[0] == {"key": catalog.item_key("dataset", "one"), "problem": "linked but missing"}
        assert len(problems) == 4
    finally:
        services.configure()
