"""Item search over the real index (both store backends), checked against brute force."""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chalicelib.stac import search
from chalicelib.stac.errors import InvalidParameter

from tests.helpers import oracle
from tests.helpers.corpus import Corpus
from tests.helpers.synthetic import make_item


def run_get(corpus: Corpus, **params: Any) -> search.SearchPage:
    req = search.parse_get({k: [str(v)] for k, v in params.items()})
    return search.execute(corpus.reader.snapshot(), req, known_collections=corpus.known)


def run_post(corpus: Corpus, body: dict[str, Any]) -> search.SearchPage:
    return search.execute(corpus.reader.snapshot(), search.parse_post(body), known_collections=corpus.known)


def ids(page: search.SearchPage) -> list[str]:
    return [it["id"] for it in page.items]


def expect(corpus: Corpus, pred: Any) -> set[str]:
    return {it["id"] for it in corpus.items if pred(it)}


def test_corpus_spans_base_and_delta(corpus: Corpus) -> None:
    snap = corpus.reader.snapshot()
    (base, _), (delta, _) = snap.parts
    assert base.n > 0
    assert delta.n > 0
    assert snap.count == len(corpus.items)


def test_ids_and_collections(corpus: Corpus) -> None:
    wanted = [corpus.items[i]["id"] for i in (0, 5, 377, 399)]
    page = run_get(corpus, ids=",".join(wanted), limit=100)
    assert sorted(ids(page)) == sorted(wanted)
    assert page.number_matched == 4
    page = run_post(corpus, {"collections": ["dem", "s2-l2a"], "limit": 1000})
    assert set(ids(page)) == expect(corpus, lambda it: it["collection"] in ("dem", "s2-l2a"))
    assert page.number_matched == len(page.items)


@pytest.mark.parametrize("bbox", [[0, 0, 40, 40], [-180, -90, 180, 90], [10.5, 5.5, 11, 6], [170, -50, -170, 50],
                                  [-20, -10, 60, 30]])
def test_bbox(corpus: Corpus, bbox: list[float]) -> None:
    page = run_get(corpus, bbox=",".join(map(str, bbox)), limit=1000)
    assert set(ids(page)) == expect(corpus, lambda it: oracle.in_bbox(it, bbox))


def test_intersects(corpus: Corpus) -> None:
    geom = {"type": "Polygon", "coordinates": [[[0, 0], [60, 0], [0, 60], [0, 0]]]}
    page = run_post(corpus, {"intersects": geom, "limit": 1000})
    from shapely.geometry import shape
    want = expect(corpus, lambda it: shape(it["geometry"]).intersects(shape(geom)))
    assert set(ids(page)) == want
    assert want


@pytest.mark.parametrize("value", ["2020-03-01T00:00:00Z/2020-09-01T00:00:00Z", "../2019-01-01T00:00:00Z",
                                   "2022-06-01T00:00:00+02:00/..", "2019-05-05T10:00:00Z"])
def test_datetime(corpus: Corpus, value: str) -> None:
    lo, _, hi = value.partition("/") if "/" in value else (value, "", value)
    lo_t = -1e18 if lo == ".." else oracle.ts(lo)
    hi_t = 1e18 if hi == ".." else oracle.ts(hi)
    page = run_get(corpus, datetime=value, limit=1000)
    assert set(ids(page)) == expect(corpus, lambda it: oracle.in_datetime(it, lo_t, hi_t))


def test_bbox_and_datetime_combined(corpus: Corpus) -> None:
    page = run_post(corpus, {"bbox": [-100, -60, 100, 60], "datetime": "2019-01-01T00:00:00Z/2021-01-01T00:00:00Z",
                             "limit": 1000})
    lo, hi = oracle.ts("2019-01-01T00:00:00Z"), oracle.ts("2021-01-01T00:00:00Z")
    want = expect(corpus, lambda it: oracle.in_bbox(it, [-100, -60, 100, 60]) and oracle.in_datetime(it, lo, hi))
    assert set(ids(page)) == want
    assert want


@pytest.mark.parametrize("q,pred", [
    ("ocean", lambda it: oracle.has_word(it, "ocean")),
    ("OCEAN,glacier", lambda it: oracle.has_word(it, "ocean") or oracle.has_word(it, "glacier")),
    ("ocean glacier", lambda it: oracle.has_word(it, "ocean") or oracle.has_word(it, "glacier")),
    ("ocean AND glacier", lambda it: oracle.has_word(it, "ocean") and oracle.has_word(it, "glacier")),
    ('"ocean scene"', lambda it: "ocean scene" in " ".join(oracle.text_words(it))),
    ("(flood OR river) AND crop", lambda it: (oracle.has_word(it, "flood") or oracle.has_word(it, "river"))
     and oracle.has_word(it, "crop")),
    ("+coast -urban", lambda it: oracle.has_word(it, "coast") and not oracle.has_word(it, "urban")),
    ("nothingmatches", lambda it: False),
])
def test_free_text(corpus: Corpus, q: str, pred: Any) -> None:
    page = run_get(corpus, q=q, limit=1000)
    assert set(ids(page)) == expect(corpus, pred)


@pytest.mark.parametrize("sortby,keys", [
    (None, [(oracle.sort_instant, True)]),
    ("-properties.eo:cloud_cover", [(oracle.prop("eo:cloud_cover"), True)]),
    ("platform,-datetime", [(oracle.prop("platform"), False), (oracle.sort_instant, True)]),
    ("+gsd,id", [(oracle.prop("gsd"), False), (lambda it: it["id"], False)]),
    ("datetime", [(oracle.sort_instant, False)]),
])
def test_sort_and_paging_match_brute_force(corpus: Corpus, sortby: str | None, keys: Any) -> None:
    want = [it["id"] for it in oracle.order(corpus.items, keys)]
    params: dict[str, Any] = {"limit": 37}
    if sortby:
        params["sortby"] = sortby
    got: list[str] = []
    tokens: list[str | None] = [None]
    while True:
        page = run_get(corpus, **params, **({"token": tokens[-1]} if tokens[-1] else {}))
        assert page.number_matched == len(want)
        got.extend(ids(page))
        if not page.next_token:
            break
        tokens.append(page.next_token)
    assert got == want
    # Walk back with prev tokens: the same pages in reverse.
    page = run_get(corpus, **params, token=tokens[-1])
    back = ids(page)
    while page.prev_token:
        page = run_get(corpus, **params, token=page.prev_token)
        back = ids(page) + back
    assert back == want


def test_paging_a_sparse_filter_both_ways_and_past_a_deleted_cursor(fresh_corpus: Corpus) -> None:
    """Pages of a filtered, string-sorted search; the row a token ends at may vanish before it is used."""
    corpus = fresh_corpus
    matched = [it for it in corpus.items if it["properties"]["gsd"] == 60]
    want = [it["id"] for it in oracle.order(matched, [(oracle.prop("title"), True)])]
    assert len(want) > 3 * 7
    params: dict[str, Any] = {"limit": 7, "sortby": "-title", "filter": "gsd = 60"}
    first = run_get(corpus, **params)
    assert ids(first) == want[:7]
    assert first.prev_token is None
    assert first.next_token
    gone = next(it for it in matched if it["id"] == want[6])
    corpus.writer.apply([], [(gone["collection"], gone["id"])])
    second = run_get(corpus, **params, token=first.next_token)
    assert ids(second) == want[7:14]
    assert second.number_matched == len(want) - 1
    back = run_get(corpus, **params, token=second.prev_token)
    assert ids(back) == want[:6]
    assert back.prev_token is None
    last = run_get(corpus, **params, token=second.next_token)
    while last.next_token:
        last = run_get(corpus, **params, token=last.next_token)
    assert ids(last) == want[-len(ids(last)):]
    assert last.prev_token


def test_sort_post_and_single_page(corpus: Corpus) -> None:
    page = run_post(corpus, {"sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}], "limit": 1000})
    want = [it["id"] for it in oracle.order(corpus.items, [(oracle.prop("eo:cloud_cover"), False)])]
    assert ids(page) == want
    assert page.next_token is None
    assert page.prev_token is None


def test_paging_while_items_are_added(fresh_corpus: Corpus) -> None:
    corpus = fresh_corpus
    before = {it["id"] for it in corpus.items}
    rng = random.Random(3)
    seen: list[str] = []
    page = run_get(corpus, limit=50, sortby="-datetime")
    added = 0
    while True:
        seen.extend(ids(page))
        # New items land before and after the cursor while we page.
        corpus.writer.apply([make_item(1000 + added + k, rng, prefix="late") for k in range(5)], [])
        added += 5
        if not page.next_token:
            break
        page = run_get(corpus, limit=50, sortby="-datetime", token=page.next_token)
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert before <= set(seen), "items present from the start were missed"
    assert added >= 5 * 8


def test_fields(corpus: Corpus) -> None:
    page = run_get(corpus, fields="properties.platform,-geometry,-assets", limit=3)
    for item in page.items:
        assert "geometry" not in item
        assert "assets" not in item
        assert set(item["properties"]) <= {"datetime", "platform"}
        assert "platform" in item["properties"]
        assert set(item) == {"type", "stac_version", "id", "collection", "properties"}  # includes select only these
    page = run_post(corpus, {"fields": {"include": ["properties"], "exclude": ["properties.title"]}, "limit": 3})
    for item in page.items:
        assert "title" not in item["properties"]
        assert "platform" in item["properties"]
    page = run_post(corpus, {"fields": {}, "limit": 2})
    assert all(set(it["properties"]) == {"datetime"} for it in page.items)
    full = run_get(corpus, limit=2)
    assert "title" in full.items[0]["properties"]


def test_limit_clamped(corpus: Corpus) -> None:
    page = run_get(corpus, limit=1000000)
    assert len(page.items) == len(corpus.items)
    assert page.next_token is None
    assert search.parse_get({"limit": ["1000000"]}).limit == search.MAX_LIMIT
    assert run_get(corpus).items.__len__() == search.DEFAULT_LIMIT


def test_collection_items_route_parameters(corpus: Corpus) -> None:
    req = search.parse_get({"bbox": ["-180,-90,180,90"], "limit": ["1000"]}, collection="dem")
    page = search.execute(corpus.reader.snapshot(), req, known_collections=corpus.known)
    assert set(ids(page)) == expect(corpus, lambda it: it["collection"] == "dem")


def test_queryables(corpus: Corpus) -> None:
    schema = search.queryables(corpus.reader.snapshot(), None)
    assert "$id" not in schema
    assert schema["$schema"].endswith("2019-09/schema")
    props = schema["properties"]
    assert props["eo:cloud_cover"]["type"] == "number"
    assert props["platform"]["type"] == "string"
    assert props["updated"]["format"] == "date-time"
    assert props["keywords"]["type"] == "array"
    import jsonschema
    jsonschema.Draft201909Validator.check_schema(schema)
    assert search.queryables(corpus.reader.snapshot(), "dem")["title"].endswith("dem")


BAD_GET = [
    {"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"limit": "1.5"},
    {"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "0,10,1,5"}, {"bbox": "0,-91,1,5"}, {"bbox": "0,0,200,1"},
    {"bbox": "0,0,1,1", "intersects": json.dumps({"type": "Point", "coordinates": [0, 0]})},
    {"intersects": "{not json"}, {"intersects": json.dumps({"type": "Point"})},
    {"intersects": json.dumps({"type": "Feature", "geometry": None})},
    {"datetime": "yesterday"}, {"datetime": "../.."}, {"datetime": "2021-01-01T00:00:00Z/2020-01-01T00:00:00Z"},
    {"datetime": "a/b/c"}, {"datetime": ""},
    {"collections": "nope"}, {"token": "!!!"}, {"token": "eyJ4IjoxfQ"},
    {"sortby": "geometry"}, {"sortby": ","}, {"fields": "id,,-"},
    {"filter": "eo:cloud_cover <<< 3"}, {"filter": "collection = 'nope'"}, {"filter": "x = 1", "filter-lang": "sql"},
    {"filter": "x = 1", "filter-crs": "EPSG:3857"}, {"filter": "{bad", "filter-lang": "cql2-json"},
    {"filter": "x LIKE 3"}, {"filter": "collection IN ('dem', 'nope')"},
    {"q": ""}, {"q": '"unterminated'}, {"q": "(ocean"}, {"q": "ocean AND"},
    # cursors holding what no sort column holds (issue 7: these gave a 500)
    {"token": search.sort.encode_token("next", [{"a": 1}, "dem", "x"])},
    {"token": search.sort.encode_token("next", [[1, 2], "dem", "x"])},
    {"token": search.sort.encode_token("prev", [1.0, {"c": []}, "x"])},
    {"token": search.sort.encode_token("next", [True, "dem", "x"])},
    {"token": search.sort.encode_token("next", [])}, {"token": "eyJkIjoibmV4dCIsImsiOlsxZTk5OTksImEiLCJiIl19"},
    {"token": "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1td"}, {"token": "x" * 100_000},
    # inputs over a bound
    {"q": "ocean " * 1000}, {"q": "(" * 40 + "ocean" + ")" * 40}, {"sortby": ",".join(["gsd"] * 17)},
    {"fields": ",".join(f"f{i}" for i in range(257))}, {"filter": "gsd > 1 OR " * 1000 + "gsd > 1"},
    {"intersects": "[" * 5000 + "]" * 5000}, {"filter": "[" * 5000 + "]" * 5000, "filter-lang": "cql2-json"},
]


@pytest.mark.parametrize("params", BAD_GET, ids=[json.dumps(p)[:60] for p in BAD_GET])
def test_bad_get_input(corpus: Corpus, params: dict[str, str]) -> None:
    with pytest.raises(InvalidParameter) as err:
        run_get(corpus, **params)
    assert err.value.description


BAD_POST: list[Any] = [
    [], "x", {"limit": True}, {"limit": "x"}, {"limit": 0}, {"bbox": "0,0,1,1"}, {"bbox": [0, 0, 1, True]},
    {"bbox": [0, 0, 1, float("nan")]}, {"intersects": {"type": "Polygon", "coordinates": [[1, 2]]}},
    {"ids": [1, 2]}, {"collections": [None]}, {"sortby": [{"direction": "asc"}]},
    {"sortby": [{"field": "id", "direction": "up"}]}, {"sortby": 5}, {"fields": ["id"]},
    {"fields": {"include": "id"}}, {"filter": {"op": "bogus", "args": [1, 2]}},
    {"filter": {"op": "=", "args": [{"property": "a"}]}}, {"filter": {"op": "s_intersects", "args": [
        {"property": "geometry"}, {"type": "Polygon", "coordinates": "x"}]}},
    {"filter": {"op": "t_intersects", "args": [{"property": "datetime"}, {"interval": ["x", ".."]}]}},
    {"filter": {"op": "=", "args": [{"property": "collection"}, "nope"]}},
    {"filter": {"op": "and", "args": [1, 2]}}, {"q": 5}, {"datetime": 5}, {"token": 7},
    {"sortby": [{"field": "id", "direction": {"a": 1}}]}, {"sortby": [{"field": ["id"]}]},
    {"fields": {"include": [{"a": 1}]}}, {"q": ["a", {"b": 1}]}, {"ids": [{"a": 1}]},
    {"filter": {"op": "and", "args": [{"op": "=", "args": [{"property": f"p{i}"}, i]} for i in range(9000)]}},
]


@pytest.mark.parametrize("body", BAD_POST, ids=[json.dumps(b)[:60] for b in BAD_POST])
def test_bad_post_input(corpus: Corpus, body: Any) -> None:
    with pytest.raises(InvalidParameter):
        run_post(corpus, body)


def test_token_from_another_sort_is_rejected(corpus: Corpus) -> None:
    page = run_get(corpus, limit=5, sortby="gsd,platform")
    with pytest.raises(InvalidParameter):
        run_get(corpus, limit=5, token=page.next_token)


def test_tokens_of_long_sort_values_are_accepted(local_store: Any) -> None:
    """A token holds the sort values of its boundary item, however long: what we hand out, we take back."""
    from chalicelib.stac.index import SearchIndex

    from tests.helpers.synthetic import COLLECTIONS
    rng = random.Random(5)
    items = [make_item(i, rng, collection=COLLECTIONS[0]) for i in range(3)]
    for i, item in enumerate(items):
        item["properties"]["title"] = str(i) * 100_000
    index = SearchIndex(local_store)
    index.apply(items, [])
    seen, token = [], None
    while True:
        params = {"sortby": ["title"], "limit": ["1"]} | ({"token": [token]} if token else {})
        page = search.execute(index.snapshot(), search.parse_get(params), known_collections=set(COLLECTIONS))
        seen += [it["id"] for it in page.items]
        if not (token := page.next_token):
            break
    assert seen == [it["id"] for it in items]


@pytest.mark.parametrize("params", [
    {"limit": 23},
    {"limit": 17, "sortby": "platform,-gsd"},
    {"limit": 9, "sortby": "-gsd", "filter": "platform = 'landsat-8'"},
    {"limit": 4, "bbox": "0,0,40,40", "datetime": "2019-01-01T00:00:00Z/.."},
    {"limit": 21, "sortby": "+eo:cloud_cover"},
])
def test_pages_of_few_matches_taken_from_the_mask_are_the_pages_the_walk_finds(
        corpus: Corpus, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]) -> None:
    """Every page forward, then back from the last, with tokens: walking each table's sort order, giving
    each walk up at once, and from the matched rows (``sort.WALK_FEW``, ``WALK_SHARE``); the same pages,
    tokens and counts."""
    from chalicelib.stac import sort
    snapshot = corpus.reader.snapshot()  # base and delta

    def run(token: str | None) -> search.SearchPage:
        query = {k: [str(v)] for k, v in params.items()} | ({"token": [token]} if token else {})
        return search.execute(snapshot, search.parse_get(query), known_collections=corpus.known)

    def pages() -> list[tuple[list[str], int, str | None, str | None]]:
        out = []
        page = run(None)
        while True:
            out.append((ids(page), page.number_matched, page.next_token, page.prev_token))
            if not page.next_token:
                break
            page = run(page.next_token)
        while page.prev_token:
            page = run(page.prev_token)
            out.append((ids(page), page.number_matched, page.next_token, page.prev_token))
        return out
    monkeypatch.setattr(sort, "WALK_FEW", 0)
    monkeypatch.setattr(sort, "WALK_SHARE", 1)
    walked = pages()
    monkeypatch.setattr(sort, "WALK_SHARE", 10 ** 9)  # each walk given up at once
    given_up = pages()
    monkeypatch.setattr(sort, "WALK_FEW", 10 ** 9)
    taken = pages()
    assert len(walked) > 2
    assert taken == walked
    assert given_up == walked
