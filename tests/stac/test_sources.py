"""Bulk inputs cut into parsing tasks: line numbers across cuts, bad lines alone rejected, json's values."""
from __future__ import annotations

import json
from pathlib import Path

from chalicelib.stac import sources
from chalicelib.stac.items import parse
from tests.helpers.stac_items import make_item


def test_ndjson_is_cut_at_line_ends_and_keeps_line_numbers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "TASK_BYTES", 7)
    source = tmp_path / "items.ndjson"
    source.write_bytes(b"aaaaaaaaaaaaaaaaaaaa\nb\n\nccc\nddddddddddddddddddd")
    tasks = list(sources.tasks([source]))
    assert [(t.first_line, t.text) for t in tasks] == [(1, b"aaaaaaaaaaaaaaaaaaaa\n"), (2, b"b\n\nccc\n"),
                                                      (5, b"ddddddddddddddddddd")]
    assert b"".join(t.text for t in tasks) == source.read_bytes()


def test_a_task_rejects_its_bad_lines_alone_with_their_line_numbers(tmp_path: Path) -> None:
    good = json.dumps(make_item("ok", collection="dataset")).encode()
    text = b"\n".join([good, b"{not json", b"\xff\xfe not utf-8", b"", good.replace(b'"ok"', b'"ok2"')]) + b"\n"
    parsed = sources.parse_task(sources.Task("f.ndjson", 10, text), None)
    assert [(cid, iid, where) for cid, iid, _, _, _, where in parsed.items] == [("dataset", "ok", 10),
                                                                                 ("dataset", "ok2", 14)]
    assert [where for where, _ in parsed.rejected] == [11, 12]
    assert all("not JSON" in reason for _, reason in parsed.rejected)


def test_parse_gives_what_json_gives() -> None:
    """orjson reads integers beyond 64 bits as floats and refuses NaN and lone surrogates: those texts
    take json's path."""
    for text in ('{"n": 123456789012345678901234567890}', '{"n": NaN}', '"\\ud800"', '{"n": 18446744073709551615}',
                 '{"a": [1.5, "x", null, true]}'):
        assert repr(parse(text)) == repr(json.loads(text))
        assert repr(parse(text.encode())) == repr(json.loads(text))


def test_a_worker_writing_an_ndjson_tasks_items_sends_no_body_back_and_one_parsed_again_is_what_it_wrote(
        tmp_path: Path) -> None:
    """The bodies were most of what a worker sent back (the publisher unpickled ~1 KB an item) for the few
    items it writes again: those are parsed again from the task's text, byte for byte what was written."""
    from chalicelib.stac import catalog
    from chalicelib.store.local import LocalStore
    items = [make_item(f"s-{i}", collection=None if i == 1 else "dataset") for i in range(3)]
    text = b"".join(json.dumps(item).encode() + b"\n\n" for item in items)
    task = sources.Task("f.ndjson", 10, text)
    store = LocalStore(tmp_path / "store", fsync=False)
    parsed = sources.parse_task(task, "dataset", store)
    assert parsed.written
    assert [body for *_, body, _ in parsed.items] == [b"", b"", b""]
    wheres = [where for *_, where in parsed.items]
    assert wheres == [10, 12, 14]
    assert sources.stored_bodies(task, wheres[1:], "dataset") == {
        where: store.get(catalog.item_key("dataset", iid)).body for _, iid, *_, where in parsed.items[1:]}
    files = sources.parse_task(sources.Task("", files=(str(_write_item(tmp_path, items[0])),)), None, store)
    assert [body for *_, body, _ in files.items] == [store.get(catalog.item_key("dataset", "s-0")).body]


def _write_item(folder: Path, item: dict) -> Path:
    path = folder / f"{item['id']}.json"
    path.write_text(json.dumps(item))
    return path
