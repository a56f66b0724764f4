"""SQS batches through ``app.on_store_event``'s code path: partial batch failures and poison messages."""
from __future__ import annotations

import json
import pathlib
from typing import Any

from chalicelib.events.sqs import handle_sqs_batch
from chalicelib.services import Services
from tests.helpers.stac_items import indexed, make_item
from tests.helpers.stores import InstrumentedStore

EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"
TEMPLATE = json.loads((EVENTS / "sqs-item-created.json").read_text())["Records"][0]


def notification(key: str) -> str:
    """The body S3 sends SQS about ``key`` (the real-format fixture's, with another key)."""
    body = json.loads(TEMPLATE["body"])
    body["Records"][0]["s3"]["object"]["key"] = key
    return json.dumps(body)


def message(message_id: str, body: str) -> dict[str, Any]:
    return {**TEMPLATE, "messageId": message_id, "body": body}


def item_key(item_id: str) -> str:
    return f"collections/dataset/items/{item_id}.json"


def batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


def test_poison_messages_are_logged_and_dropped_and_the_good_ones_published(local_store, caplog) -> None:
    for item_id in ("a", "b"):
        local_store.put_json(item_key(item_id), make_item(item_id, collection="dataset"))
    poison = {
        "not-json": "{oops",
        "a-list": "[1, 2]",
        "no-records": json.dumps({"hello": "world"}),
        "bad-record": json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    }
    messages = [message("good-a", notification(item_key("a")))]
    messages += [message(mid, body) for mid, body in poison.items()]
    messages += [message("good-b", notification(item_key("b")))]
    with caplog.at_level("WARNING", logger="chalicelib.events.sqs"):
        response = handle_sqs_batch(batch(*messages), Services(store=local_store))
    assert response == {"batchItemFailures": []}  # poison can never succeed: reported processed
    assert indexed(local_store) == {("dataset", "a"), ("dataset", "b")}
    assert sorted(r.message_id for r in caplog.records) == sorted(poison)
    assert not any("{oops" in r.getMessage() for r in caplog.records)  # bodies are not logged


def test_s3_test_event_is_processed_quietly(local_store, caplog) -> None:
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "stacflow-store"})
    with caplog.at_level("WARNING"):
        assert handle_sqs_batch(batch(message("t", test_event)), Services(store=local_store)) == {"batchItemFailures": []}
    assert caplog.records == []


def test_only_the_record_whose_processing_fails_is_reported(local_store) -> None:
    for item_id in ("a", "b", "c"):
        local_store.put_json(item_key(item_id), make_item(item_id, collection="dataset"))
    store = InstrumentedStore(local_store)
    store.fail("before", "GET", lambda call: call.key == item_key("b"))  # a store fault on b's item read
    response = handle_sqs_batch(batch(*(message(f"m-{i}", notification(item_key(i))) for i in "abc")),
                                Services(store=store))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-b"}]}
    assert indexed(local_store) == {("dataset", "a"), ("dataset", "c")}
    # Redelivered alone (the fault is gone), it is published; the others are not processed again.
    again = handle_sqs_batch(batch(message("m-b", notification(item_key("b")))), Services(store=store))
    assert again == {"batchItemFailures": []}
    assert indexed(local_store) == {("dataset", "a"), ("dataset", "b"), ("dataset", "c")}


def test_a_batch_that_fails_entirely_is_still_a_partial_response(local_store) -> None:
    local_store.put_json(item_key("a"), make_item("a", collection="dataset"))
    store = InstrumentedStore(local_store)
    store.fail("before", "GET", lambda call: call.key == item_key("a"))
    response = handle_sqs_batch(batch(message("m-a", notification(item_key("a")))), Services(store=store))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-a"}]}


def test_a_notification_without_optional_fields_is_processed_not_dropped(local_store, caplog) -> None:
    # S3-compatible servers (moto among them) may leave out the sequencer and the ETag.
    local_store.put_json(item_key("a"), make_item("a", collection="dataset"))
    body = json.loads(notification(item_key("a")))
    for field in ("sequencer", "eTag"):
        del body["Records"][0]["s3"]["object"][field]
    with caplog.at_level("WARNING", logger="chalicelib.events.sqs"):
        response = handle_sqs_batch(batch(message("m", json.dumps(body))), Services(store=local_store))
    assert response == {"batchItemFailures": []}
    assert caplog.records == []
    assert indexed(local_store) == {("dataset", "a")}
