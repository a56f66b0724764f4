"""CQL2 filters (text and JSON) evaluated by the index, checked against brute force."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import cql2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

from chalicelib.stac import search

from tests.helpers import oracle
from tests.helpers.corpus import Corpus

P = Callable[[dict[str, Any]], bool]


def p(it: dict[str, Any], name: str) -> Any:
    return it["properties"].get(name)


def cc(it: dict[str, Any]) -> Any:
    return p(it, "eo:cloud_cover")


TRIANGLE = {"type": "Polygon", "coordinates": [[[0, 0], [90, 0], [0, 80], [0, 0]]]}
T2020 = oracle.ts("2020-01-01T00:00:00Z")
T2021 = oracle.ts("2021-01-01T00:00:00Z")

CASES: list[tuple[str, P]] = [
    ("eo:cloud_cover < 10 AND platform = 'sentinel-2a'",
     lambda it: cc(it) is not None and cc(it) < 10 and p(it, "platform") == "sentinel-2a"),
    ("properties.eo:cloud_cover >= 50 OR gsd = 60", lambda it: (cc(it) is not None and cc(it) >= 50) or p(it, "gsd") == 60),
    ("NOT (eo:cloud_cover < 50)", lambda it: cc(it) is not None and not cc(it) < 50),
    ("eo:cloud_cover IS NULL", lambda it: cc(it) is None),
    ("eo:cloud_cover IS NOT NULL AND gsd <> 10", lambda it: cc(it) is not None and p(it, "gsd") != 10),
    ("eo:cloud_cover BETWEEN 20 AND 30", lambda it: cc(it) is not None and 20 <= cc(it) <= 30),
    ("NOT eo:cloud_cover BETWEEN 20 AND 30", lambda it: cc(it) is not None and not 20 <= cc(it) <= 30),
    ("platform IN ('landsat-8', 'landsat-9')", lambda it: p(it, "platform") in ("landsat-8", "landsat-9")),
    ("platform NOT IN ('landsat-8')", lambda it: p(it, "platform") != "landsat-8"),
    ("platform LIKE 'sentinel%'", lambda it: p(it, "platform").startswith("sentinel")),
    ("title LIKE '%scene 1_'", lambda it: p(it, "title").split(" ")[-1].startswith("1")
     and len(p(it, "title").split(" ")[-1]) == 2),
    ("CASEI(platform) = casei('SENTINEL-2B')", lambda it: p(it, "platform") == "sentinel-2b"),
    ("ACCENTI(platform) = accenti('séntinel-2b')", lambda it: p(it, "platform") == "sentinel-2b"),
    ("collection = 'dem' AND id > 'item-0000200'", lambda it: it["collection"] == "dem" and it["id"] > "item-0000200"),
    ("no_such_property = 3", lambda it: False),
    ("NOT (no_such_property = 3)", lambda it: False),
    ("datetime > TIMESTAMP('2020-01-01T00:00:00Z')", lambda it: oracle.start(it) > T2020),
    ("datetime >= '2021-01-01T00:00:00Z'", lambda it: oracle.start(it) >= T2021),
    ("updated < TIMESTAMP('2026-03-20T00:00:01Z')", lambda it: oracle.ts(p(it, "updated")) < oracle.ts("2026-03-20T00:00:01Z")),
    ("T_INTERSECTS(datetime, INTERVAL('2020-01-01T00:00:00Z', '2021-01-01T00:00:00Z'))",
     lambda it: oracle.in_datetime(it, T2020, T2021)),
    ("T_BEFORE(datetime, TIMESTAMP('2020-01-01T00:00:00Z'))", lambda it: oracle.end(it) < T2020),
    ("T_AFTER(datetime, INTERVAL('..', '2021-01-01T00:00:00Z'))", lambda it: oracle.start(it) > T2021),
    ("T_DURING(datetime, INTERVAL('2020-01-01T00:00:00Z', '2021-01-01T00:00:00Z'))",
     lambda it: oracle.start(it) > T2020 and oracle.end(it) < T2021),
    ("S_INTERSECTS(geometry, POLYGON((0 0, 90 0, 0 80, 0 0)))",
     lambda it: shape(it["geometry"]).intersects(shape(TRIANGLE))),
    ("S_WITHIN(geometry, POLYGON((0 0, 90 0, 0 80, 0 0)))", lambda it: shape(it["geometry"]).within(shape(TRIANGLE))),
    ("S_DISJOINT(geometry, POLYGON((0 0, 90 0, 0 80, 0 0)))",
     lambda it: shape(it["geometry"]).disjoint(shape(TRIANGLE))),
    ("S_INTERSECTS(geometry, BBOX(-10, -10, 10, 10)) AND gsd = 10",
     lambda it: oracle.in_bbox(it, [-10, -10, 10, 10]) and p(it, "gsd") == 10),
    ("A_CONTAINS(keywords, ('ocean'))", lambda it: "ocean" in p(it, "keywords")),
    ("A_OVERLAPS(keywords, ('ocean', 'snow'))", lambda it: bool({"ocean", "snow"} & set(p(it, "keywords")))),
    ("A_CONTAINEDBY(keywords, ('ocean', 'snow', 'crop', 'coast'))",
     lambda it: set(p(it, "keywords")) <= {"ocean", "snow", "crop", "coast"}),
    ("gsd > eo:cloud_cover", lambda it: cc(it) is not None and p(it, "gsd") > cc(it)),
    ("true", lambda it: True),
]


@pytest.mark.parametrize("text,pred", CASES, ids=[c[0][:50] for c in CASES])
def test_cql2_text_and_json_match_brute_force(corpus: Corpus, text: str, pred: P) -> None:
    want = {it["id"] for it in corpus.items if pred(it)}
    snap = corpus.reader.snapshot()
    got_text = search.execute(snap, search.parse_get({"filter": [text], "limit": ["1000"]}),
                              known_collections=corpus.known)
    got_json = search.execute(snap, search.parse_post({"filter": cql2.parse_text(text).to_json(), "limit": 1000,
                                                       "filter-lang": "cql2-json"}),
                              known_collections=corpus.known)
    assert {it["id"] for it in got_text.items} == want
    assert {it["id"] for it in got_json.items} == want
    assert got_text.number_matched == len(want)


def test_filter_combines_with_other_parameters(corpus: Corpus) -> None:
    req = search.parse_post({"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 40]}, "collections": ["dem"],
                             "q": "ocean", "sortby": [{"field": "eo:cloud_cover", "direction": "desc"}], "limit": 1000})
    got = [it["id"] for it in search.execute(corpus.reader.snapshot(), req, known_collections=corpus.known).items]
    want = [it["id"] for it in oracle.order(
        [it for it in corpus.items if it["collection"] == "dem" and oracle.has_word(it, "ocean")
         and oracle.cloud_lt(40)(it)], [(oracle.prop("eo:cloud_cover"), True)])]
    assert got == want
    assert want


# Inputs that overflowed cql2's native parser (SIGSEGV: the process died) or Python's recursion
# limit (a 500), GET and POST; each must be a 400 and the process must live on.
CRASHERS: dict[str, dict[str, Any]] = {
    "parentheses": {"filter": "(" * 3000 + "gsd = 1" + ")" * 3000},
    "not": {"filter": "NOT " * 6000 + "gsd = 1"},
    "unary minus": {"filter": "gsd = " + "-" * 6000 + "1"},
    "function calls": {"filter": "gsd = " + "f(" * 6000 + "1" + ")" * 6000},
    "casei": {"filter": "CASEI(" * 3000 + "platform" + ")" * 3000 + " = 'x'"},
    "and chain": {"filter": " AND ".join(["gsd = 1"] * 20000)},
    "arithmetic chain": {"filter": "gsd = " + "+".join(["1"] * 10000)},
    "wkt that is arithmetic": {"filter": "S_INTERSECTS(geometry, POLYGON((" + "1-" * 20000 + "1)))"},
    "json filter": {"filter": '{"op":"not","args":[' * 3000 + "true" + "]}" * 3000, "filter-lang": "cql2-json"},
    "q": {"q": "(" * 3000 + "ocean" + ")" * 3000},
}
_CHILD = """
import json, sys
from chalicelib.stac import search
from chalicelib.stac.errors import InvalidParameter
out = {}
for name, params in json.loads(sys.stdin.read()).items():
    for how in ("get", "post"):
        try:
            search.parse_get({k: [v] for k, v in params.items()}) if how == "get" else search.parse_post(params)
            out[name + " " + how] = "accepted"
        except InvalidParameter as err:
            out[name + " " + how] = "400: " + err.description
        except BaseException as err:
            out[name + " " + how] = "500: " + type(err).__name__
print(json.dumps(out))
"""


def test_deep_or_long_filters_are_400_and_the_process_survives() -> None:
    """Run in a child process: before the bounds, the first input killed the interpreter."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(CRASHERS), capture_output=True, text=True,
                          cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), timeout=120)
    assert done.returncode == 0, f"child died: {done.returncode} {done.stderr[-500:]}"
    outcomes = json.loads(done.stdout)
    assert len(outcomes) == 2 * len(CRASHERS)
    assert all(v.startswith("400: ") for v in outcomes.values()), outcomes


def test_filters_within_the_bounds_still_parse() -> None:
    deep = "(" * 30 + "gsd = 1" + ")" * 30
    chain = " OR ".join(f"gsd = {i}" for i in range(900))
    polygon = "S_INTERSECTS(geometry, POLYGON((" + ",".join(f"-{i % 90}.5 -{i % 45}.25" for i in range(5000)) \
        + ",-0.5 -0.25)))"
    for text in (deep, chain, polygon, "NOT " * 20 + "gsd = -(-(1))"):
        search.parse_get({"filter": [text]})


@pytest.mark.parametrize("pattern", ["title LIKE '%a%a%a%a%a%a%a{}'", "CASEI(title) LIKE CASEI('%A%a%A%a%A%a%A{}')",
                                     "ACCENTI(title) LIKE '%a%a%a%a%a%a%a{}'"])
def test_like_takes_linear_time(local_store: Any, pattern: str) -> None:
    """Issue 7: LIKE compiled % to a backtracking .*: ~30 s of CPU (holding the GIL) for one value."""
    import random
    import time

    from chalicelib.stac.index import SearchIndex

    from tests.helpers.synthetic import COLLECTIONS, make_item
    item = make_item(0, random.Random(3), collection=COLLECTIONS[0])
    item["properties"]["title"] = "a" * 60
    index = SearchIndex(local_store)
    index.apply([item], [])
    snap = index.snapshot()
    start = time.perf_counter()
    miss, hit = (search.execute(snap, search.parse_get({"filter": [pattern.format(end)]}),
                                known_collections=set(COLLECTIONS)) for end in ("%b", "%"))
    assert time.perf_counter() - start < 1.0
    assert miss.number_matched == 0
    assert hit.number_matched == 1


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["", "a", "a\x00", "b", "ab", "é", "Z"]),
                                 st.text(max_size=3)), min_size=1, max_size=30),
       text=st.one_of(st.sampled_from(["", "a", "a\x00", "ab", "é", "zz"]), st.text(max_size=3)),
       op=st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
def test_string_comparisons_by_rank_answer_as_comparing_each_string(values: list[Any], text: str, op: str) -> None:
    """``filter._str_compare`` (ranks among the sorted distinct strings) against numpy comparing the
    column's strings one by one, as the filter did before."""
    import numpy as np

    from chalicelib.stac import filter as filter_ext
    from chalicelib.stac.table import Columns, Table
    t = Table.from_records([])
    t = Table(raw=t.raw, links=t.links, ids=[f"i{i}" for i in range(len(values))], colls=["c"] * len(values),
              version=np.zeros(len(values), dtype=np.int64), log_keys=["k"] * len(values),
              box=np.zeros((len(values), 4)), times=np.zeros((len(values), 3)),
              props=Columns.of({"p": values}), has_geom=np.zeros(len(values), dtype=bool))
    vals, ok = t.view("p", "str")
    want = filter_ext._COMPARE[op](vals, text) & ok
    assert (filter_ext._str_compare(t, "p", op, text) & ok).tolist() == want.tolist()


@pytest.mark.parametrize("run", [" " * 200_000 + "x", "1 " * 100_000 + "x", "1 , " * 60_000 + ",", "1." * 100_000,
                                 "1\t\n" * 80_000 + "a", "1" * 250_000 + "e+"])
def test_a_wkt_literals_coordinates_are_lexed_in_linear_time(run: str) -> None:
    """The coordinate runs of a WKT literal are read by one regex (``filter._COORDINATES``) whose
    separators and numbers cannot match a text two ways: a near-limit literal of blanks, digits, dots
    or separators that ends in something else is read in one pass (~0.15 s at most here, not seconds)."""
    import time

    from chalicelib.stac.filter import check_text_bounds
    text = "S_INTERSECTS(geometry, POLYGON((" + run
    assert len(text) <= 256 * 1024
    started = time.process_time()
    check_text_bounds(text)
    assert time.process_time() - started < 1.5
