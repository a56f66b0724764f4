"""One contract, every adapter: the local directory and S3 over HTTP (moto server), and the tests' wrapper."""
from __future__ import annotations

import hashlib
import threading
import time
import urllib.parse
import urllib.request

import pytest

from chalicelib.store import (CREATED, REMOVED, Change, CompletedPart, InvalidKey, NotFound, NotModified,
                              PreconditionFailed, RangeNotSatisfiable)
from chalicelib.store.base import CHUNK
from tests.helpers.stores import InstrumentedStore


@pytest.fixture(params=["local", "s3", "instrumented"])
def store(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Both adapters, and the tests' instrumented wrapper over a local one: the double keeps the contract."""
    if request.param == "instrumented":
        return InstrumentedStore(request.getfixturevalue("local_store"))
    return request.getfixturevalue(f"{request.param}_store")


def test_put_get_roundtrip_with_etag(store):
    info = store.put("a/b.json", b'{"x": 1}')
    obj = store.get("a/b.json")
    assert obj.body == b'{"x": 1}'
    assert obj.etag == info.etag
    assert store.head("a/b.json").size == 8
    assert store.get_json("a/b.json") == {"x": 1}


def test_missing_key_is_not_found(store):
    with pytest.raises(NotFound):
        store.get("nope.json")
    with pytest.raises(NotFound):
        store.head("nope.json")
    assert not store.exists("nope.json")


def test_create_only_write_refuses_existing_key(store):
    store.put("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"2", if_none_match=True)
    assert store.get("k").body == b"1"


def test_compare_and_swap(store):
    first = store.put("k", b"1")
    second = store.put("k", b"2", if_match=first.etag)
    assert second.etag != first.etag
    with pytest.raises(PreconditionFailed):
        store.put("k", b"3", if_match=first.etag)  # stale
    with pytest.raises(PreconditionFailed):
        store.put("absent", b"3", if_match=first.etag)
    assert store.get("k").body == b"2"


def test_conditional_get(store):
    info = store.put("k", b"1")
    with pytest.raises(NotModified):
        store.get("k", if_none_match=info.etag)
    store.put("k", b"2")
    assert store.get("k", if_none_match=info.etag).body == b"2"


def test_delete_is_idempotent_and_conditional(store):
    info = store.put("k", b"1")
    with pytest.raises(PreconditionFailed):
        store.delete("k", if_match='"not-the-etag"')
    assert store.exists("k")
    store.delete("k", if_match=info.etag)
    assert not store.exists("k")
    store.delete("k")  # deleting a missing key is fine, as in S3


def test_list_is_sorted_prefixed_and_paginated(store):
    keys = [f"p/{i:03d}.json" for i in range(25)]
    for key in reversed(keys):
        store.put(key, b"{}")
    store.put("p.json", b"{}")
    store.put("p/sub/z.json", b"{}")
    store.put("q/other.json", b"{}")
    listed = [o.key for o in store.list("p/")]
    assert listed == sorted(keys + ["p/sub/z.json"])
    assert [o.key for o in store.list("p/", start_after="p/020.json")] == keys[21:] + ["p/sub/z.json"]
    assert [o.key for o in store.list("p/", limit=3)] == keys[:3]
    assert [o.key for o in store.list("p/0", start_after="p/023.json")] == ["p/024.json"]


def test_list_paginates_past_one_page(store):
    keys = [f"many/{i:04d}" for i in range(1005)]
    for key in keys:
        store.put(key, b"")
    assert [o.key for o in store.list("many/")] == keys


BIG = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"  # three chunks and a bit


def test_open_streams_the_object_in_bounded_chunks(store):
    info = store.put("big.bin", BIG)
    with store.open("big.bin") as reader:
        assert (reader.size, reader.start, reader.length, reader.etag) == (len(BIG), 0, len(BIG), info.etag)
        chunks = list(reader.chunks())
    assert b"".join(chunks) == BIG
    assert max(len(c) for c in chunks) <= CHUNK
    assert len(chunks) >= 4
    with store.open("big.bin") as reader:  # a binary file object: hashlib, shutil, parsers take it
        assert hashlib.file_digest(reader, "sha256").digest() == hashlib.sha256(BIG).digest()


@pytest.mark.parametrize(("start", "length", "expected"), [
    (0, 1, slice(0, 1)),
    (10, 20, slice(10, 30)),
    (len(BIG) - 3, 100, slice(len(BIG) - 3, None)),  # clipped at the end
    (CHUNK + 5, None, slice(CHUNK + 5, None)),
    (-4, None, slice(-4, None)),  # suffix: the last 4 bytes
    (-(len(BIG) + 10), None, slice(0, None)),  # a suffix longer than the object is all of it
])
def test_open_reads_only_the_requested_range(store, start, length, expected):
    store.put("big.bin", BIG)
    with store.open("big.bin", start=start, length=length) as reader:
        body = reader.read()
        # The adapter was sent the range (S3: the response's length is the range's, not the object's).
        assert (reader.start, reader.length, reader.size) == (range(len(BIG))[expected].start, len(body), len(BIG))
    assert body == BIG[expected]


def test_open_past_the_end_is_not_satisfiable(store):
    store.put("ten", b"0123456789")
    with pytest.raises(RangeNotSatisfiable) as err:
        store.open("ten", start=10)
    assert err.value.size == 10
    store.put("empty", b"")
    with store.open("empty") as reader:
        assert (reader.size, reader.read()) == (0, b"")
    with pytest.raises(RangeNotSatisfiable) as err:
        store.open("empty", start=0, length=1)
    assert err.value.size == 0
    with store.open("empty", start=-5) as reader:  # RFC 9110: a suffix of an empty representation
        assert (reader.length, reader.read()) == (0, b"")
    with pytest.raises(NotFound):
        store.open("absent")
    for bad in ({"start": 0, "length": 0}, {"start": -3, "length": 2}):
        with pytest.raises(ValueError):
            store.open("ten", **bad)


def test_open_reads_one_version_while_the_key_is_rewritten(store):
    first = store.put("v", b"A" * (2 * CHUNK))
    with store.open("v") as reader:
        head = reader.read(10)
        store.put("v", b"B" * (2 * CHUNK))
        assert head + reader.read() == b"A" * (2 * CHUNK)
        assert reader.etag == first.etag
    with store.open("v") as reader:
        assert reader.read(1) == b"B"


def test_a_stream_cut_short_is_an_error_not_the_end():
    import io

    from chalicelib.store import ObjectReader, StoreError
    reader = ObjectReader("k", etag='"e"', size=10, last_modified=0.0, start=0, length=10,
                          raw=io.BytesIO(b"only6b"))  # the connection dropped after 6 of 10 bytes
    assert reader.read(4) == b"only"
    with pytest.raises(StoreError):
        reader.read()


def test_etag_changes_with_the_content(store):
    first = store.put("k", b"AAAA")
    second = store.put("k", b"BBBB")  # same size, written at once
    assert first.etag != second.etag
    assert store.head("k").etag == second.etag == store.get("k").etag
    assert [o.etag for o in store.list("k")] == [second.etag]
    with pytest.raises(PreconditionFailed):
        store.put("k", b"CCCC", if_match=first.etag)
    with pytest.raises(PreconditionFailed):
        store.delete("k", if_match=first.etag)
    assert store.get("k").body == b"BBBB"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/\x00b", ".."])
def test_bad_keys_are_rejected(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")


def test_update_json_loses_no_update_under_concurrency(store):
    def bump(doc):
        doc["n"] += 1
        return doc

    threads = [threading.Thread(target=lambda: [store.update_json("ctr.json", bump, default=lambda: {"n": 0})
                                                for _ in range(5)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_json("ctr.json") == {"n": 40}


def test_create_only_has_exactly_one_winner(store):
    wins: list[int] = []

    def attempt(i: int) -> None:
        try:
            store.put("once", str(i).encode(), if_none_match=True)
            wins.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get("once").body == str(wins[0]).encode()


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    # Chalice, like API Gateway, returns binary bodies only to requests that accept them.
    headers = {"Accept": "*/*"}
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.read(), dict(resp.headers)


@pytest.fixture
def base_url(store, live_server_factory):
    """S3 presigned URLs are absolute; the local store's are served by a running service."""
    if store.uri.startswith("s3://"):
        return None
    return live_server_factory(store.uri).url


def test_presigned_get_and_put(store, base_url):
    store.put("dl/x.bin", b"\x00\x01binary")
    status, body, _ = _http("GET", store.presign_get("dl/x.bin", base_url=base_url))
    assert (status, body) == (200, b"\x00\x01binary")
    _http("PUT", store.presign_put("up/y.bin", base_url=base_url), b"uploaded")
    assert store.get("up/y.bin").body == b"uploaded"


def test_multipart_upload_through_presigned_parts(store, base_url):
    part1, part2 = b"a" * (5 * 1024 * 1024), b"tail"
    upload_id = store.create_multipart("big/file.bin")
    parts = []
    for number, data in ((1, part1), (2, part2)):
        _, _, headers = _http("PUT", store.presign_part("big/file.bin", upload_id, number, base_url=base_url), data)
        parts.append(CompletedPart(number, headers["ETag"]))
    store.complete_multipart("big/file.bin", upload_id, parts)
    assert store.get("big/file.bin").body == part1 + part2


def test_abort_multipart_discards_parts(store):
    upload_id = store.create_multipart("gone.bin")
    store.abort_multipart("gone.bin", upload_id)
    store.abort_multipart("gone.bin", upload_id)  # aborting twice is harmless
    if store.uri.startswith("file:"):  # moto answers 500 here where S3 says NoSuchUpload
        with pytest.raises(NotFound):
            store.complete_multipart("gone.bin", upload_id, [CompletedPart(1, '"x"')])
    assert not store.exists("gone.bin")


def test_local_signed_urls_reject_forgery(local_store, live_server_factory):
    server = live_server_factory(local_store.uri)
    local_store.put("secret.txt", b"s")
    url = local_store.presign_get("secret.txt", base_url=server.url)
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    with pytest.raises(urllib.error.HTTPError) as err:
        _http("GET", forged)
    assert err.value.code == 403
    put_url = local_store.presign_put("secret.txt", base_url=server.url)
    with pytest.raises(urllib.error.HTTPError) as err:
        _http("GET", put_url)  # a PUT signature does not grant GET
    assert err.value.code == 403


def test_local_store_notifies_listeners(local_store):
    seen: list[Change] = []
    local_store.subscribe(seen.append)
    local_store.put("a.json", b"{}")
    local_store.delete("a.json")
    local_store.delete("a.json")  # nothing deleted, nothing announced
    assert [(c.event_name, c.key) for c in seen] == [(CREATED, "a.json"), (REMOVED, "a.json")]


def test_local_store_survives_reopen(tmp_path):
    from chalicelib.store.local import LocalStore
    LocalStore(tmp_path).put("k", b"v")
    reopened = LocalStore(tmp_path)
    assert reopened.get("k").body == b"v"
    assert [o.key for o in reopened.list()] == ["k"]  # internal files stay hidden


def test_unsubscribed_listeners_hear_nothing(local_store):
    seen: list[Change] = []
    local_store.subscribe(seen.append)
    local_store.unsubscribe(seen.append)
    local_store.put("a.json", b"{}")
    assert seen == []


@pytest.mark.parametrize("key", ["catalog.json", "collections/ai-model/items/unet:flood+v2.json", "a b/ü.onnx"])
def test_notifications_name_the_store_keys_they_are_about(store, key):
    """What the event functions map S3 notifications through, and the local dispatch writes them with."""
    source = store.event_source
    bucket, object_key = source.notification_for(key)
    assert source.key_for(bucket, object_key) == key


def test_s3_notifications_about_other_buckets_or_prefixes_are_not_the_store_s(s3_store):
    source = s3_store.event_source
    bucket, object_key = source.notification_for("collections/x.json")
    assert (bucket, object_key) == (s3_store.bucket, "pre/fix/collections/x.json")
    assert source.key_for("another-bucket", object_key) is None
    assert source.key_for(bucket, "collections/x.json") is None  # outside the prefix
    assert source.key_for(bucket, "pre/fixture/x.json") is None


def test_the_local_store_takes_notifications_from_any_bucket(local_store):
    """Events saved from a deployment replay against a local copy of its store."""
    assert local_store.event_source.key_for("stacflow-prod-data", "collections/x.json") == "collections/x.json"


def test_the_service_answers_presigned_urls_only_for_the_local_store(local_store, s3_store):
    """``/files/{token}`` serves the local store's presigned URLs; S3 answers its own."""
    assert s3_store.signed_urls is None
    signer = local_store.signed_urls
    assert signer is not None
    token = urllib.parse.unquote(local_store.presign_put("k", base_url="http://svc").rsplit("/", 1)[1])
    claims = signer.verify(token)
    assert (claims["m"], claims["k"]) == ("PUT", "k")
    assert claims["exp"] == pytest.approx(time.time() + 3600, abs=5)


# -- the meter: requests by kind and bytes moved, the same on every adapter --------------------------
def test_meter_counts_each_request_kind_and_the_bytes_moved(store):
    before = store.meter.usage()
    store.put("m/a.bin", b"0123456789")
    with pytest.raises(PreconditionFailed):
        store.put("m/a.bin", b"xyz", if_none_match=True)  # refused writes are billed too
    assert store.get("m/a.bin").body == b"0123456789"
    with pytest.raises(NotFound):
        store.get("m/missing")
    with store.open("m/a.bin", start=2, length=3) as reader:
        assert reader.read() == b"234"
    store.head("m/a.bin")
    assert [o.key for o in store.list("m/")] == ["m/a.bin"]
    store.delete("m/a.bin")
    used = store.meter.usage() - before
    assert used.requests == {"DELETE": 1, "GET": 3, "HEAD": 1, "LIST": 1, "PUT": 2}
    assert used.total == 8
    assert (used.bytes_read, used.bytes_written) == (10 + 3, 10 + 3)


def test_meter_counts_multipart_requests_and_presigning_apart(store):
    before = store.meter.usage()
    upload_id = store.create_multipart("m/big.bin")
    store.presign_part("m/big.bin", upload_id, 1, base_url="http://svc")
    store.presign_get("m/big.bin", base_url="http://svc")
    store.presign_put("m/big.bin", base_url="http://svc")
    store.abort_multipart("m/big.bin", upload_id)
    used = store.meter.usage() - before
    assert used.requests == {"MULTIPART": 2, "PRESIGN": 3}
    assert used.total == 2  # signing a URL is no request: its holder's request goes to the store


def test_meter_is_exact_under_concurrent_requests(store):
    store.put("m/c", b"abc")
    before = store.meter.usage()
    threads = [threading.Thread(target=lambda: [store.get("m/c") for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    used = store.meter.usage() - before
    assert used.requests == {"GET": 40}
    assert used.bytes_read == 120


def test_meter_counts_no_request_for_an_invalid_key(store):
    before = store.meter.usage()
    for call in (lambda: store.get("../x"), lambda: store.put("/abs", b"1"), lambda: store.head("a//b"),
                 lambda: store.delete("a/./b"), lambda: store.open("..")):
        with pytest.raises(InvalidKey):
            call()
    assert (store.meter.usage() - before).requests == {}


def test_put_many_writes_each_object_whole_and_reports_refused_keys(store):
    heard: list[Change] = []
    store.subscribe(heard.append)
    store.put("bulk/b.json", b"old")
    heard.clear()
    entries = [(f"bulk/{name}.json", name.encode() * 3) for name in "abcdefgh"] + [("bulk/../x", b"no")]
    before = store.meter.usage()
    results = store.put_many(entries, workers=3)
    used = store.meter.usage() - before
    assert used.requests == {"PUT": 8}  # one PUT per valid object, as S3 bills them
    assert used.bytes_written == sum(len(body) for _, body in entries[:-1])
    assert len(results) == len(entries)
    assert isinstance(results[-1], InvalidKey)
    for (key, body), info in zip(entries[:-1], results[:-1]):
        obj = store.get(key)
        assert (obj.body, obj.etag, info.key, info.size) == (body, info.etag, key, len(body))
    assert [info.key for info in store.list("bulk/")] == [key for key, _ in entries[:-1]]
    assert heard == []  # bulk writers apply their derived updates themselves
