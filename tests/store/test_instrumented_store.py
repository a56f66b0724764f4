"""The tests' store double (tests/helpers/stores.py): what it counts, records, holds and fails.

The port's contract itself runs over it in test_contract.py.
"""
from __future__ import annotations

import pytest

from chalicelib.store import CREATED, REMOVED, Change, ObjectStore, PreconditionFailed
from tests.helpers.stores import Call, Crash, InstrumentedStore
from tests.helpers.threads import Background


@pytest.fixture
def spy(local_store: ObjectStore) -> InstrumentedStore:
    return InstrumentedStore(local_store)


def test_every_request_is_counted_by_s3_verb_and_recorded_in_order(spy: InstrumentedStore) -> None:
    spy.put_json("a.json", {"x": 1})
    spy.get("a.json")
    with spy.open("a.json", start=1, length=2) as reader:  # a ranged GET
        reader.read()
    spy.exists("a.json")
    list(spy.list(""))
    spy.delete("a.json")
    spy.abort_multipart("b.bin", spy.create_multipart("b.bin"))
    assert [(c.verb, c.key) for c in spy.log] == [
        ("PUT", "a.json"), ("GET", "a.json"), ("GET", "a.json"), ("HEAD", "a.json"), ("LIST", ""),
        ("DELETE", "a.json"), ("POST", "b.bin"), ("DELETE", "b.bin")]
    assert spy.calls == {"PUT": 1, "GET": 2, "HEAD": 1, "LIST": 1, "DELETE": 2, "POST": 1}
    assert spy.total == 8


def test_put_outcomes_are_counted_per_key(spy: InstrumentedStore) -> None:
    spy.put("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        spy.put("k", b"2", if_none_match=True)
    assert (spy.written, spy.lost) == ({"k": 1}, {"k": 1})


def test_listeners_are_the_wrapped_stores(spy: InstrumentedStore, local_store: ObjectStore) -> None:
    here: list[Change] = []
    there: list[Change] = []
    spy.subscribe(here.append)
    local_store.subscribe(there.append)
    spy.put("a", b"1")
    spy.put("quiet", b"1", notify=False)  # a bulk writer's write announces nothing, as on the store itself
    spy.delete("a")
    spy.delete("a")  # nothing deleted, nothing announced
    local_store.put("b", b"1")
    want = [(CREATED, "a"), (REMOVED, "a"), (CREATED, "b")]
    assert [(c.event_name, c.key) for c in here] == want
    assert [(c.event_name, c.key) for c in there] == want


def test_a_paused_call_waits_for_its_release(spy: InstrumentedStore) -> None:
    """Only the nth matching call of the named thread is held, before it reaches the store."""
    pause = spy.pause("before", ("PUT", "DELETE"), lambda call: call.key.startswith("w/"), thread="writer", nth=2)
    spy.put("w/0", b"main thread: not counted")

    def writes() -> None:
        spy.put("w/1", b"1")
        spy.put("elsewhere", b"does not match")
        spy.delete("w/1")  # the second match: held
        spy.put("w/3", b"3")
    writer = Background("writer", writes)
    assert pause.reached.wait(5)
    assert not spy.exists("w/3")
    assert spy.exists("w/1")  # the held DELETE has not reached the store
    pause.release.set()
    writer.result()
    assert [o.key for o in spy.inner.list("w/")] == ["w/0", "w/3"]


def test_an_after_pause_holds_a_call_that_has_reached_the_store(spy: InstrumentedStore) -> None:
    spy.put("k", b"old")
    seen: list[bytes | None] = []
    spy.hooks.append(lambda when, call: seen.append(call.body) if when == "after" and call.verb == "GET" else None)
    pause = spy.pause("after", "GET")
    reader = Background("reader", spy.get, "k")
    assert pause.reached.wait(5)
    spy.inner.put("k", b"new")
    pause.release.set()
    assert reader.result().body == b"old"
    assert seen == [b"old"]  # "after" hooks see what a GET read


def test_a_pause_never_released_fails_the_call(spy: InstrumentedStore) -> None:
    spy.pause("before", "HEAD", timeout=0.05)
    with pytest.raises(TimeoutError):
        spy.exists("k")


def test_fail_crashes_the_first_matching_call_only(spy: InstrumentedStore) -> None:
    spy.fail("before", "PUT", lambda call: call.key == "b")
    spy.put("a", b"1")
    with pytest.raises(Crash):
        spy.put("b", b"1")
    assert not spy.inner.exists("b")  # it died before the write
    spy.put("b", b"2")
    assert spy.get("b").body == b"2"


def test_hooks_see_every_call_before_and_after(spy: InstrumentedStore) -> None:
    seen: list[tuple[str, Call]] = []
    spy.hooks.append(lambda when, call: seen.append((when, call)))
    spy.put("k", b"body")
    assert seen == [("before", Call("PUT", "k", b"body")), ("after", Call("PUT", "k", b"body"))]


def test_what_the_adapter_offers_beyond_the_port_passes_through(spy: InstrumentedStore) -> None:
    assert spy.uri == spy.inner.uri
    assert spy.verify(spy.sign({"k": "v"}, 60))["k"] == "v"  # the local store's URL signing
    with pytest.raises(AttributeError):
        spy.no_such_thing  # noqa: B018
