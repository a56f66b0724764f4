"""Item validation and normalization: every rule has a rejecting case with its reason."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stac_offline import validate_object

from chalicelib.stac.items import InvalidItem, normalize, parse

from tests.helpers.stac_items import make_item


def test_normalized_item_is_valid_stac_and_keeps_own_content() -> None:
    raw = make_item("x1", collection=None, size=1)
    raw["links"].append({"rel": "self", "href": "https://elsewhere/x1.json"})
    del raw["bbox"], raw["stac_extensions"], raw["stac_version"]
    item, summary = normalize(raw, "dataset")
    assert validate_object(item) == []
    assert item["collection"] == "dataset"
    assert item["bbox"] == [10, 50, 11, 51]
    assert [l["rel"] for l in item["links"]] == ["root", "parent", "collection", "self", "license"]
    assert item["assets"] == raw["assets"]
    assert item["properties"] == raw["properties"]
    assert summary == [10, 50, 11, 51, "2021-06-01T00:00:00.000000Z", "2021-06-01T00:00:00.000000Z"]
    assert normalize(item, "dataset")[0] == item  # idempotent: a rewrite's own event changes nothing


def test_null_geometry_and_ranges() -> None:
    raw = make_item("n", dt=None, start_datetime="2020-01-01T00:00:00.123456789+02:00",
                    end_datetime="2020-02-01T00:00:00Z")
    raw["geometry"] = None
    del raw["bbox"]
    _, summary = normalize(raw, "dataset")
    assert summary == [None] * 4 + ["2019-12-31T22:00:00.123456Z", "2020-02-01T00:00:00.000000Z"]


def test_antimeridian_item_extent_spans_all_longitudes() -> None:
    raw = make_item("am")
    raw["geometry"] = {"type": "MultiPolygon", "coordinates": [
        [[[179, 1], [180, 1], [180, 2], [179, 2], [179, 1]]], [[[-180, 1], [-179, 1], [-179, 2], [-180, 2], [-180, 1]]]]}
    raw["bbox"] = [179, 1, -179, 2]
    item, summary = normalize(raw, "dataset")
    assert item["bbox"] == [179, 1, -179, 2]
    assert summary[:4] == [-180, 1, 180, 2]


def _breaks(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    item = copy.deepcopy(make_item("bad", size=1))
    change(item)
    return item


BAD: dict[str, tuple[Any, str]] = {
    "not an object": ([1, 2], "JSON object"),
    "wrong type": (_breaks(lambda i: i.update(type="Collection")), "item.type must be same as const definition: Feature"),
    "no id": (_breaks(lambda i: i.pop("id")), r"item must contain \['id'\]"),
    "id with slash": (_breaks(lambda i: i.update(id="a/b")), "must match"),
    "id ending in a newline": (_breaks(lambda i: i.update(id="bad\n")), "must match"),  # "$" let it through
    "id with a control character": (_breaks(lambda i: i.update(id="b\x01ad")), "must match"),
    "id with a tab": (_breaks(lambda i: i.update(id="bad\t")), "must match"),
    "geometry junk": (_breaks(lambda i: i.update(geometry={"type": "Point", "coordinates": "x"})), "geometry"),
    "bbox too short": (_breaks(lambda i: i.update(bbox=[1, 2, 3])), "item.bbox must contain at least 4 items"),
    "bbox of five": (_breaks(lambda i: i.update(bbox=[1, 2, 3, 4, 5])), "4 or 6 numbers"),
    "bbox misses geometry": (_breaks(lambda i: i.update(bbox=[0, 0, 1, 1])), "does not contain"),
    "bbox without geometry": (_breaks(lambda i: i.update(geometry=None)), "geometry is null"),
    "no datetime": (_breaks(lambda i: i["properties"].pop("datetime")), r"item.properties must contain \['datetime'\]"),
    "null datetime, no range": (_breaks(lambda i: i["properties"].update(datetime=None)), "start_datetime"),
    "bad datetime": (_breaks(lambda i: i["properties"].update(datetime="yesterday")), "RFC 3339"),
    "date only": (_breaks(lambda i: i["properties"].update(datetime="2020-01-01")), "RFC 3339"),
    "no time zone": (_breaks(lambda i: i["properties"].update(datetime="2020-01-01T00:00:00")), "time zone"),
    "range reversed": (_breaks(lambda i: i["properties"].update(
        datetime=None, start_datetime="2021-01-01T00:00:00Z", end_datetime="2020-01-01T00:00:00Z")), "after"),
    "other collection": (_breaks(lambda i: i.update(collection="ai-model")), "differs from the collection"),
    "asset without href": (_breaks(lambda i: i["assets"].update(x={})), r"item.assets.x must contain \['href'\]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_items_are_rejected_with_a_reason(case: str) -> None:
    doc, reason = BAD[case]
    with pytest.raises(InvalidItem, match=reason):
        normalize(doc, "dataset")


def test_key_and_collection_rules() -> None:
    with pytest.raises(InvalidItem, match="differs from the id in the object key"):
        normalize(make_item("a"), "dataset", "b")
    with pytest.raises(InvalidItem, match="unknown collection"):
        normalize(make_item("a", collection=None), "nope")
    with pytest.raises(InvalidItem, match="not JSON"):
        parse(b"{nope")
    with pytest.raises(InvalidItem, match="nested deeper"):  # was a RecursionError, which aborted a bulk publish
        parse(b'{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}")


_coord = st.one_of(st.integers(-180, 180), st.floats(-180, 180, allow_nan=False), st.just(float("nan")), st.text(max_size=1))
_position = st.lists(_coord, min_size=1, max_size=4)
_ring = st.lists(_position, min_size=0, max_size=6).map(lambda r: r + r[:1] if r and len(r) % 2 else r)


@given(st.one_of(st.fixed_dictionaries({"type": st.just("Point"), "coordinates": _position}),
                 st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": st.lists(_ring, max_size=3)})))
@settings(max_examples=300, deadline=None)
def test_plain_bounds_agree_with_shapely_or_defer_to_it(geometry) -> None:
    import shapely.geometry
    from chalicelib.stac.items import _plain_bounds
    bounds = _plain_bounds(geometry)
    if bounds is not None:
        assert bounds == [float(v) for v in shapely.geometry.shape(geometry).bounds]


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_utc_text_is_strftimes_for_naive_and_utc_instants(dt: datetime, aware: bool) -> None:
    from chalicelib.stac.items import utc_text
    at = dt.replace(tzinfo=timezone.utc) if aware else dt
    assert utc_text(at) == dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30)),
       st.integers(-23 * 60, 23 * 60), st.integers(0, 9), st.sampled_from(["T", "t"]), st.sampled_from(["Z", "z", ""]))
@settings(max_examples=300, deadline=None)
def test_an_rfc3339_datetime_is_read_to_the_microsecond_whatever_its_digits_and_offset(
        dt: datetime, minutes: int, digits: int, sep: str, zulu: str) -> None:
    offset = timezone(timedelta(minutes=minutes))
    fraction = f"{dt.microsecond:06d}{dt.microsecond % 1000:03d}"[:digits]
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{fraction}" if digits else "")
    text += zulu if zulu and minutes == 0 else dt.replace(tzinfo=offset).strftime("%z")[:3] + ":" + \
        dt.replace(tzinfo=offset).strftime("%z")[3:]
    raw = make_item("t", dt=text)
    _, summary = normalize(raw, "dataset")
    micro = int(fraction[:6].ljust(6, "0")) if digits else 0
    expected = dt.replace(microsecond=micro, tzinfo=offset).astimezone(timezone.utc)
    assert summary[4] == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
