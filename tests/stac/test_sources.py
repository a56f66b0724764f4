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
