"""Fuzzing the STAC API's request parsing (hypothesis): whatever the input, a page or a 400/404, in bounded time.

Inputs go through the entry points the routes call (``StacApi.search_get``/``search_post``/``items``
over a small published corpus, the POST body through the route's own JSON loader), so parsing and
execution are both exercised: CQL2 text and JSON (random and grammar-shaped), ``q``, ``datetime``,
``bbox``, ``intersects``, ``sortby``, ``fields``, ``limit`` and page tokens; deep nesting, long
strings, unicode, control characters, huge numbers. Budget: tests/helpers/fuzzing.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.bounds import InputBoundError, load_json
from chalicelib.stac import sort
from chalicelib.stac.api import StacApi
from chalicelib.stac.errors import StacApiError
from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore
from tests.helpers.fuzzing import (CONTROL, FUZZ, NUMBER_TEXT, SCALARS, anything, b64, deep_json, dumps, joined,
                                   json_values, nasty_text, nested, repeated)

from tests.helpers.stac_items import random_items

BASE = "http://fuzz.test/stac"
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.fixture(scope="module")
def stac(tmp_path_factory: pytest.TempPathFactory) -> StacApi:
    root = tmp_path_factory.mktemp("fuzz")
    items = random_items(40) + random_items(20, "ai-model", seed=5, ranges=False, prefix="m")
    items[0]["properties"]["keywords"] = ["ocean", "été"]
    items[1]["properties"]["title"] = "a" * 60
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    store = LocalStore(Path(root) / "store", fsync=False)
    assert publish_paths(store, [source], progress=False).published == len(items)
    api = StacApi(store)
    json.loads(api.search_get(BASE, {"filter": ["gsd = 1"], "q": ["alps"]}))  # warm: imports, index cache
    return api


def outcome(call: Callable[[], str]) -> None:
    """A FeatureCollection, or a documented STAC error; anything else fails the test."""
    try:
        body = call()
    except StacApiError as err:
        assert err.status in (400, 404)
        assert err.description
        return
    doc = json.loads(body)
    assert doc["type"] == "FeatureCollection"
    assert doc["numberReturned"] == len(doc["features"])


def get(stac: StacApi, params: dict[str, str], collection: str | None = None) -> None:
    query = {k: [v] for k, v in params.items()}
    outcome(lambda: stac.items(BASE, collection, query) if collection else stac.search_get(BASE, query))


def post(stac: StacApi, body_text: str) -> None:
    """As the POST /search route: its JSON loader, then the search."""
    def run() -> str:
        try:
            body = load_json(body_text) if body_text.strip() else {}
        except InputBoundError as err:
            raise StacApiError(str(err)) from None
        return stac.search_post(BASE, body)
    outcome(run)


# -- CQL2 ------------------------------------------------------------------------------------
PROPERTIES = st.sampled_from(["gsd", "eo:cloud_cover", "platform", "title", "datetime", "keywords", "id", "collection",
                              "geometry", "properties.platform", '"quoted name"', "start_datetime", "nope", "été"])
STRINGS = nasty_text(30).map(lambda s: "'" + s.replace("'", "''") + "'")
INSTANTS = st.sampled_from(["2022-03-01T00:00:00Z", "2022-03-01", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
                            "2022-13-45T99:99:99Z", "..", "x"])
WKT = st.one_of(
    st.builds(lambda x, y: f"POINT({x} {y})", NUMBER_TEXT, NUMBER_TEXT),
    st.builds(lambda pts: "POLYGON((" + ",".join(f"{x} {y}" for x, y in pts) + "))",
              st.lists(st.tuples(NUMBER_TEXT, NUMBER_TEXT), max_size=6)),
    st.just("POLYGON((0 0,10 0,10 10,0 10,0 0))"), st.just("BBOX(-10,-10,10,10)"),
    st.just("GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(-1 -2,3 4))"),
    nested(st.just("POINT(1 2)"), "GEOMETRYCOLLECTION(", ")", 40),
    st.builds(lambda n: "POLYGON((" + "1-" * n + "1))", st.integers(1, 20000)))
LITERALS = st.one_of(NUMBER_TEXT, STRINGS, st.sampled_from(["TRUE", "FALSE", "NULL"]), WKT,
                     INSTANTS.map(lambda t: f"TIMESTAMP('{t}')"), INSTANTS.map(lambda t: f"DATE('{t}')"),
                     st.tuples(INSTANTS, INSTANTS).map(lambda ab: f"INTERVAL('{ab[0]}','{ab[1]}')"),
                     joined(STRINGS | NUMBER_TEXT, [",", ", "]).map(lambda s: f"({s})"))
LIKE_PATTERNS = st.text(st.sampled_from("a%_\\A'é"), max_size=20).map(lambda s: "'" + s.replace("'", "''") + "'")
ATOMS = st.one_of(
    st.builds(lambda p, op, v: f"{p} {op} {v}", PROPERTIES, st.sampled_from(["=", "<>", "<", "<=", ">", ">=", "!="]),
              LITERALS),
    st.builds(lambda p, neg, v: f"{p} {neg}LIKE {v}", PROPERTIES, st.sampled_from(["", "NOT "]), LIKE_PATTERNS),
    st.builds(lambda f, p, v: f"{f}({p}) LIKE {f}({v})", st.sampled_from(["CASEI", "ACCENTI"]), PROPERTIES,
              LIKE_PATTERNS),
    st.builds(lambda p, a, b: f"{p} BETWEEN {a} AND {b}", PROPERTIES, LITERALS, LITERALS),
    st.builds(lambda p, v: f"{p} IN ({v})", PROPERTIES, joined(STRINGS | NUMBER_TEXT, [","])),
    st.builds(lambda p, n: f"{p} IS {n}NULL", PROPERTIES, st.sampled_from(["", "NOT "])),
    st.builds(lambda f, g: f"{f}(geometry, {g})", st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_DISJOINT",
                                                                   "S_CONTAINS", "S_CROSSES", "S_NOPE"]), WKT),
    st.builds(lambda f, p, v: f"{f}({p}, {v})", st.sampled_from(["T_AFTER", "T_DURING", "T_INTERSECTS", "T_NOPE"]),
              PROPERTIES, LITERALS),
    st.builds(lambda f, p, v: f"{f}({p}, {v})", st.sampled_from(["A_CONTAINS", "A_OVERLAPS", "A_EQUALS"]),
              PROPERTIES, LITERALS),
    st.builds(lambda p, ops: p + "".join(f" {o} 1" for o in ops), PROPERTIES,
              st.lists(st.sampled_from(["+", "-", "*", "/", "%", "^", "DIV", "<", "="]), max_size=100)),
    st.sampled_from(["TRUE", "FALSE", "gsd", "", "(", ")", "'", "NOT", "AND"]),
)
CQL2_TEXT = st.recursive(ATOMS, lambda inner: st.one_of(
    st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["AND", "OR", "and", "AND NOT"]), inner),
    inner.map(lambda a: f"NOT {a}"), inner.map(lambda a: f"({a})")), max_leaves=8)
DEEP_CQL2_TEXT = st.one_of(
    nested(CQL2_TEXT, "(", ")"), nested(CQL2_TEXT, "NOT ", ""), nested(CQL2_TEXT, "CASEI(", ")"),
    nested(st.just("1"), "gsd = -(", ")"), st.builds(lambda n: "gsd = " + "-" * n + "1", st.integers(0, 8000)),
    st.builds(lambda a, n: " AND ".join([a] * n), ATOMS, st.integers(1, 5000)),
    st.builds(lambda n, op: "gsd = 1" + f" {op} 1" * n, st.integers(1, 5000), st.sampled_from(["+", "<", "*"])))


@FUZZ
@given(text=st.one_of(CQL2_TEXT, DEEP_CQL2_TEXT, nasty_text(200), repeated(st.sampled_from(["(", "NOT ", "-", "[",
                                                                                            "f(", "a,"]), 20000)),
       collection=st.sampled_from([None, "dataset"]))
def test_cql2_text(stac: StacApi, text: str, collection: str | None) -> None:
    get(stac, {"filter": text}, collection)


OPS = st.sampled_from(["and", "or", "not", "=", "<>", "<", ">=", "like", "between", "in", "isNull", "s_intersects",
                       "t_after", "t_intersects", "a_contains", "casei", "accenti", "+", "nope", "AND", ""])
CQL2_ARGS = st.one_of(SCALARS, PROPERTIES.map(lambda p: {"property": p}), st.just({"property": {"a": 1}}),
                      INSTANTS.map(lambda t: {"timestamp": t}), INSTANTS.map(lambda t: {"date": t}),
                      st.lists(INSTANTS, max_size=3).map(lambda ts: {"interval": ts}),
                      st.just({"type": "Point", "coordinates": [1, 2]}), st.just({"bbox": [0, 0, 1, 1]}),
                      st.lists(SCALARS, max_size=3))
CQL2_JSON = st.recursive(
    st.builds(lambda op, args: {"op": op, "args": args}, OPS, st.lists(CQL2_ARGS, max_size=3)) | st.booleans(),
    lambda inner: st.builds(lambda op, args: {"op": op, "args": args}, OPS, st.lists(inner | CQL2_ARGS, max_size=3)),
    max_leaves=10)


@FUZZ
@given(doc=st.one_of(CQL2_JSON, json_values(), deep_json(),
                     st.builds(lambda n, a: {"op": "and", "args": [a] * n}, st.integers(1, 12000), CQL2_JSON)),
       how=st.sampled_from(["get", "post-json", "post-text"]))
def test_cql2_json(stac: StacApi, doc: Any, how: str) -> None:
    if how == "get":
        get(stac, {"filter": dumps(doc), "filter-lang": "cql2-json"})
    else:
        filter_text = dumps(doc)
        post(stac, '{"filter-lang": "cql2-json", "filter": ' + (json.dumps(filter_text) if how == "post-text"
                                                                  else filter_text) + "}")


# -- free text, datetime, bbox, intersects ----------------------------------------------------
Q_TERMS = st.one_of(st.sampled_from(["alps", "ocean", "été", "AND", "OR", "(", ")", ",", "+alps", "-coast", '"',
                                     '"scene over"', "", " "]), nasty_text(12))
Q = st.one_of(joined(Q_TERMS, [" ", ",", "", " AND ", " OR "], 12), nested(Q_TERMS, "(", ")", 3000),
              repeated(st.sampled_from(["a ", "(", '"', "+", "a,"]), 5000), nasty_text(100))


@FUZZ
@given(q=Q, as_list=st.booleans())
def test_q(stac: StacApi, q: str, as_list: bool) -> None:
    get(stac, {"q": q})
    post(stac, json.dumps({"q": q.split(",") if as_list else q}))


DATE_PARTS = st.tuples(st.integers(-1, 10001), st.integers(-1, 14), st.integers(-1, 32), st.integers(-1, 25),
                       st.integers(-1, 61), st.integers(-1, 61), st.sampled_from(["", ".5", ".1234567891234", "." + "9" * 500]),
                       st.sampled_from(["Z", "z", "+14:00", "-23:59", "+24:00", "", "+05", "ZZ"]))
DATETIMES = DATE_PARTS.map(lambda p: f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}T{p[3]:02d}:{p[4]:02d}:{p[5]:02d}{p[6]}{p[7]}")
DATETIME_PARAM = st.one_of(DATETIMES, st.builds(lambda a, b: f"{a}/{b}", DATETIMES | st.sampled_from(["..", ""]),
                                                DATETIMES | st.sampled_from(["..", ""])),
                           joined(DATETIMES | st.just(".."), ["/"], 4), nasty_text(40))


@FUZZ
@given(value=DATETIME_PARAM, body_value=st.one_of(DATETIME_PARAM, json_values()))
def test_datetime(stac: StacApi, value: str, body_value: Any) -> None:
    get(stac, {"datetime": value})
    post(stac, dumps({"datetime": body_value}))


@FUZZ
@given(text=joined(NUMBER_TEXT | nasty_text(5), [","], 7), values=st.lists(SCALARS, max_size=7) | json_values())
def test_bbox(stac: StacApi, text: str, values: Any) -> None:
    get(stac, {"bbox": text})
    post(stac, dumps({"bbox": values}))


COORDINATES = st.recursive(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10 ** 30, 10 ** 30),
                           lambda kids: st.lists(kids, max_size=5), max_leaves=24)
GEOMETRY = st.builds(lambda t, c: {"type": t, "coordinates": c}, st.sampled_from(
    ["Point", "LineString", "Polygon", "MultiPoint", "MultiPolygon", "Feature", "Nope", ""]), COORDINATES)
GEOMETRIES = st.one_of(GEOMETRY, st.builds(lambda gs: {"type": "GeometryCollection", "geometries": gs},
                                           st.lists(GEOMETRY, max_size=3)),
                       st.builds(lambda n: {"type": "Polygon", "coordinates": [[[i % 7, i % 5] for i in range(n)]]},
                                 st.integers(0, 5000)),
                       json_values(), deep_json())


@FUZZ
@given(geometry=GEOMETRIES)
def test_intersects(stac: StacApi, geometry: Any) -> None:
    get(stac, {"intersects": dumps(geometry)})
    post(stac, '{"intersects": ' + dumps(geometry) + "}")


# -- sortby, fields, limit, tokens -----------------------------------------------------------
FIELD_NAMES = st.one_of(PROPERTIES, st.sampled_from(["properties.", ".", "..", "a..b", "-", "+", "assets.data.href"]),
                        nasty_text(10))


@FUZZ
@given(text=joined(st.builds(lambda s, f: s + f, st.sampled_from(["", "+", "-", " ", "--"]), FIELD_NAMES), [","], 20),
       body=st.one_of(st.lists(st.fixed_dictionaries({"field": FIELD_NAMES | SCALARS},
                                                     optional={"direction": st.sampled_from(["asc", "desc", "ASC", "up"])
                                                               | SCALARS}), max_size=20), json_values()))
def test_sortby(stac: StacApi, text: str, body: Any) -> None:
    get(stac, {"sortby": text, "limit": "3"})
    post(stac, dumps({"sortby": body, "limit": 3}))


@FUZZ
@given(text=joined(st.builds(lambda s, f: s + f, st.sampled_from(["", "+", "-"]), FIELD_NAMES), [","], 30),
       body=st.one_of(st.fixed_dictionaries({}, optional={"include": st.lists(FIELD_NAMES | SCALARS, max_size=6)
                                                          | SCALARS, "exclude": st.lists(FIELD_NAMES | SCALARS,
                                                                                         max_size=6) | SCALARS}),
                      json_values()))
def test_fields(stac: StacApi, text: str, body: Any) -> None:
    get(stac, {"fields": text, "limit": "3"})
    post(stac, dumps({"fields": body, "limit": 3}))


@FUZZ
@given(text=NUMBER_TEXT | nasty_text(10), value=SCALARS)
def test_limit(stac: StacApi, text: str, value: Any) -> None:
    get(stac, {"limit": text})
    post(stac, dumps({"limit": value}))


CURSORS = st.lists(st.one_of(SCALARS, json_values(), st.text(CONTROL, max_size=5)), max_size=5)
TOKENS = st.one_of(
    st.builds(sort.encode_token, st.sampled_from(["next", "prev", "up", ""]), CURSORS),
    st.builds(lambda v: b64(dumps(v), urlsafe=True).rstrip("="), anything()),
    st.text(st.sampled_from("ABCDEFabcdef0123456789-_=+/"), max_size=200), nasty_text(50),
    repeated(st.just("W1tb"), 20000))


@FUZZ
@given(token=TOKENS, sortby=st.sampled_from([None, "gsd", "-title,id", "datetime"]))
def test_page_tokens(stac: StacApi, token: str, sortby: str | None) -> None:
    params = {"token": token, "limit": "2"} | ({"sortby": sortby} if sortby else {})
    get(stac, params)
    post(stac, json.dumps(params))


# -- whole requests -------------------------------------------------------------------------
BODY_FIELDS = ["ids", "collections", "bbox", "intersects", "datetime", "limit", "token", "q", "sortby", "fields",
               "filter", "filter-lang", "filter-crs", "conf", "query"]


@FUZZ
@given(body=st.one_of(st.dictionaries(st.sampled_from(BODY_FIELDS), anything(), max_size=5), anything()),
       raw=st.one_of(st.none(), nasty_text(100), nested(st.just("1"), "[", "]", 5000),
                     nested(st.just("1"), '{"a":', "}", 5000)))
def test_post_bodies(stac: StacApi, body: Any, raw: str | None) -> None:
    post(stac, dumps(body) if raw is None else raw)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(BODY_FIELDS), nasty_text(40) | NUMBER_TEXT, max_size=5),
       collection=st.sampled_from([None, "dataset", "ai-model", "nope", "../x", "\n"]))
def test_get_parameters(stac: StacApi, params: dict[str, str], collection: str | None) -> None:
    get(stac, params, collection)
