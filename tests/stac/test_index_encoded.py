"""Index rows built where a bulk load parses its items (``encode_part``), stamped by the publishing
process (``SearchIndex.add_encoded``): the same search answers as an index built from the items."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.stac import catalog, search, table
from chalicelib.stac.index import SearchIndex, encode_part
from chalicelib.stac.items import Times, _instant, normalize_timed
from chalicelib.stac.table import _interval
from chalicelib.store.local import LocalStore
from tests.helpers.stac_items import random_items

QUERIES: list[dict[str, Any]] = [
    {},
    {"ids": ["it-00003", "it-00004", "it-01500", "more-00002", "absent"]},
    {"collections": ["ai-model"]},
    {"bbox": [-60, -40, 60, 40]},
    {"datetime": "2022-03-01T00:00:00Z/2022-06-30T23:59:59Z"},
    {"bbox": [-20, -20, 90, 60], "datetime": "2022-01-01T00:00:00Z/2022-12-31T23:59:59Z", "limit": 50},
    {"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [80, 0], [80, 60], [0, 60], [0, 0]]]}},
    {"filter": {"op": "and", "args": [{"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]},
                                      {"op": "=", "args": [{"property": "platform"}, "s2"]}]}},
    {"q": ["alps"]},
    {"sortby": [{"field": "properties.eo:cloud_cover", "direction": "desc"}], "limit": 200},
    {"sortby": [{"field": "id", "direction": "asc"}], "limit": 300},
]


def timed(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Times]]:
    """Each item with its times as the bulk load's normaliser reads them."""
    return [(item, normalize_timed(item, item["collection"])[2]) for item in items]


def found(store: LocalStore, query: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    page = search.execute(SearchIndex(store).snapshot(), search.parse_post({"limit": search.MAX_LIMIT} | query),
                          known_collections=catalog.config().collection_ids)
    return page.items, page.next_token is not None


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two parts as two parsing tasks would make them: the second repeats some items of the first
    (changed), and some items are private."""
    first = random_items(1500, "dataset") + random_items(700, "ai-model", seed=2, prefix="more")
    second = random_items(600, "dataset", seed=3, prefix="late") + [
        dict(item, properties=dict(item["properties"], title="changed", **{"eo:cloud_cover": 1}))
        for item in first[:40]]
    for item in first[::9] + second[::11]:
        item["properties"].update({"stacflow:project": "group/secret", "stacflow:visibility": "private"})
    return first, second


def test_an_index_of_encoded_parts_answers_every_query_as_one_built_from_the_items(tmp_path: Path, corpus) -> None:
    first, second = corpus
    refused = ("dataset", "late-00005")
    winners = {(it["collection"], it["id"]): it for it in first + second if (it["collection"], it["id"]) != refused}
    direct, encoded = LocalStore(tmp_path / "direct", fsync=False), LocalStore(tmp_path / "encoded", fsync=False)
    SearchIndex(direct).add(list(winners.values()), [], version=7, compact=False)
    SearchIndex(encoded).add_encoded([(encode_part(timed(first)), {refused}), (encode_part(timed(second)), {refused})],
                                     version=7, compact=False)
    assert len(encoded.get_json("stac-index/manifest.json")["segments"]) == 2
    for query in QUERIES:
        got, want = found(encoded, query), found(direct, query)
        assert got == want, query
        assert got[0], query
    items, _ = found(encoded, {"ids": [first[0]["id"]], "collections": ["dataset"]})
    assert items[0]["properties"]["title"] == "changed"
    SearchIndex(encoded).optimize()  # merged: the later part's rows still win
    for query in QUERIES:
        assert found(encoded, query) == found(direct, query), query


def test_parts_sharing_one_trained_dictionary_answer_as_parts_each_trained_apart(tmp_path: Path, corpus,
                                                                                 monkeypatch) -> None:
    """A worker keeps the dictionaries trained on its first task for the next ones: trained once, each
    segment still carrying it (read cold), the same answers as parts trained apart, before and after
    ``optimize`` merges them."""
    first, second = corpus
    third = random_items(900, "dataset", seed=4, prefix="third")
    apart, shared = LocalStore(tmp_path / "apart", fsync=False), LocalStore(tmp_path / "shared", fsync=False)
    SearchIndex(apart).add_encoded([(encode_part(timed(part)), ()) for part in (first, second, third)],
                                   version=3, compact=False)
    trainings = []
    trained = table.Codec.trained
    monkeypatch.setattr(table.Codec, "trained", classmethod(lambda cls, sample: trainings.append(len(sample))
                                                             or trained(sample)))
    kept: dict[str, Any] = {}
    SearchIndex(shared).add_encoded([(encode_part(timed(part), kept), ()) for part in (first, second, third)],
                                    version=3, compact=False)
    assert len([n for n in trainings if n >= table.MIN_DICT_ROWS]) == len(kept)
    assert kept["bodies"].dictionary
    for query in QUERIES:
        assert found(shared, query) == found(apart, query), query
    SearchIndex(shared).optimize()
    for query in QUERIES:
        assert found(shared, query) == found(apart, query), query


def test_within_one_part_the_later_copy_of_an_item_wins(tmp_path: Path) -> None:
    old, new = random_items(2, "dataset")
    new = dict(old, properties=dict(old["properties"], title="later"))
    store = LocalStore(tmp_path / "store", fsync=False)
    SearchIndex(store).add_encoded([(encode_part(timed([old, new])), ())], version=1, compact=False)
    items, _ = found(store, {})
    assert [it["properties"]["title"] for it in items] == ["later"]


_INSTANTS = st.builds(
    lambda dt, fraction, offset: dt.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset,
    st.datetimes(min_value=__import__("datetime").datetime(1000, 1, 1), max_value=__import__("datetime").datetime(9998, 1, 1)),
    st.sampled_from(["", ".5", ".123456", ".1234567891", ".000001"]),
    st.sampled_from(["Z", "z", "+00:00", "+05:30", "-11:00", "+14:00"]))


@settings(max_examples=300, deadline=None)
@given(_INSTANTS, _INSTANTS, _INSTANTS, st.booleans())
def test_the_normalisers_times_are_the_ones_the_index_reads_from_the_item(at: str, start: str, end: str,
                                                                         interval: bool) -> None:
    """Index rows built in a bulk load take their times from the normaliser instead of parsing them
    again: the same (start, end, sort instant) as reading the stored item's properties."""
    from tests.helpers.stac_items import make_item
    start, end = sorted([start, end], key=lambda text: _instant(text, "start_datetime"))
    item = make_item("t-1", dt=None if interval else at, start_datetime=start, end_datetime=end)
    stored, _, times = normalize_timed(item, "dataset")
    assert times == _interval(stored["properties"])


def test_an_encoded_part_holds_its_rows_in_the_default_search_order(corpus) -> None:
    """A part's rows come sorted newest first, then by collection and id (``from_records`` orders them;
    the segment writer trusts that and does not sort again), whatever the order of the input."""
    first, second = corpus
    part, _ = table.Table.from_bytes(encode_part(timed(list(reversed(first)) + second)))
    assert part.n >= table.ORDERED_ROWS
    assert part.default_order().tolist() == list(range(part.n))
