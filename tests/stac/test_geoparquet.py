"""The catalog as stac-geoparquet: the files read back with DuckDB answer the STAC API's queries with
the same ids; conditional regeneration; the collection asset and its API route; `stacflow export`."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("stac_geoparquet")

from chalicelib.cli import main as cli  # noqa: E402
from chalicelib.stac import catalog, geoparquet  # noqa: E402
from chalicelib.stac.api import StacApi  # noqa: E402
from chalicelib.stac.index import SearchIndex  # noqa: E402
from chalicelib.events.base import StoreEvent  # noqa: E402
from chalicelib.stac.publish import apply_item_events, publish_paths  # noqa: E402
from chalicelib.store import ObjectStore  # noqa: E402
from chalicelib.store.local import LocalStore  # noqa: E402
from tests.helpers.servers import LiveServer  # noqa: E402
from tests.helpers.stac_items import make_item  # noqa: E402
from tests.helpers.stores import InstrumentedStore  # noqa: E402
from tests.helpers.synthetic import make_items  # noqa: E402

BASE = "http://stac.test/stac"
LARGE = {"bbox": [-60, -40, 60, 40], "datetime": "2020-01-01T00:00:00Z/2020-12-31T23:59:59Z"}
# bench/stac_bench.py's mix, the queries DuckDB can express (no free text, sorting or field selection)
QUERIES: dict[str, dict[str, Any]] = {
    "ids (5)": {"ids": ["item-0000007", "item-0000500", "item-0000999", "item-0000042", "item-0000300"]},
    "collections": {"collections": ["ai-model"]},
    "small bbox": {"bbox": [10.0, 40.0, 12.0, 42.0]},
    "large bbox + datetime": LARGE,
    "CQL2 filter": {"filter": "eo:cloud_cover < 10 AND platform = 'sentinel-2a'", "filter-lang": "cql2-text"},
    "bbox across the antimeridian": {"bbox": [170.0, -85.0, -170.0, 85.0]},
    "open datetime": {"datetime": "../2019-01-01T00:00:00Z", "collections": ["dataset"]},
}


def synthetic(n: int) -> list[dict[str, Any]]:
    """The benchmark's items (bench/stac_bench.py): both configured collections."""
    items = make_items(n)
    for i, item in enumerate(items):
        item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
    return items


def published(root: Path, items: list[dict[str, Any]]) -> LocalStore:
    store = LocalStore(root / "store", fsync=False)
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    report = publish_paths(store, [source], progress=False)
    assert not report.rejected
    return store


def api_ids(api: StacApi, body: dict[str, Any]) -> set[str]:
    """Every id the STAC API answers ``body`` with, following its next links."""
    ids: set[str] = set()
    req = dict(body, limit=10000)
    while True:
        page = json.loads(api.search_post(BASE, req))
        ids |= {f["id"] for f in page["features"]}
        nxt = next((link for link in page["links"] if link["rel"] == "next"), None)
        if nxt is None:
            return ids
        req = nxt["body"]


def dataset(store: LocalStore, cid: str) -> Path:
    """The folder of the collection's current layout (its manifest names it)."""
    manifest = store.get_json(catalog.geoparquet_manifest_key(cid))
    return store.root / catalog.geoparquet_prefix(cid) / manifest["layout"]


def _files(store: LocalStore, cids: list[str]) -> str:
    """The datasets as DuckDB reads them: a glob of each layout's folder."""
    return "[" + ", ".join(f"'{dataset(store, c)}/*.parquet'" for c in cids) + "]"


def _time(value: str | None, default: str) -> str:
    return f"TIMESTAMPTZ '{value}'" if value and value != ".." else f"TIMESTAMPTZ '{default}'"


def duckdb_ids(store: LocalStore, body: dict[str, Any]) -> set[str]:
    """The same query in SQL over the stac-geoparquet files (plain columns: no spatial extension
    offline); a bbox selects on the ``bbox`` struct, then footprints are refined with shapely on the
    WKB ``geometry`` DuckDB returns (the API intersects geometries, not bboxes)."""
    cids = body.get("collections") or sorted(catalog.config().collection_ids)
    where = ["true"]
    if "ids" in body:
        where.append("id IN (" + ", ".join(f"'{i}'" for i in body["ids"]) + ")")
    if "datetime" in body:
        start, _, end = body["datetime"].partition("/")
        where.append(f"coalesce(end_datetime, datetime) >= {_time(start, '0001-01-01T00:00:00Z')}")
        where.append(f"coalesce(start_datetime, datetime) <= {_time(end or start, '9999-12-31T00:00:00Z')}")
    if "filter" in body:
        where.append(body["filter"].replace("eo:cloud_cover", '"eo:cloud_cover"'))
    box = body.get("bbox")
    if box:
        west, south, east, north = box
        lat = f"bbox.ymax >= {south} AND bbox.ymin <= {north}"
        # an item's bbox crosses the antimeridian when xmin > xmax; so may the query's
        item_spans = ["(bbox.xmin <= bbox.xmax AND {a})", "(bbox.xmin > bbox.xmax AND {b})"]
        if west <= east:
            lon = [item_spans[0].format(a=f"bbox.xmax >= {west} AND bbox.xmin <= {east}"),
                   item_spans[1].format(b=f"(bbox.xmin <= {east} OR bbox.xmax >= {west})")]
        else:
            lon = [item_spans[0].format(a=f"(bbox.xmax >= {west} OR bbox.xmin <= {east})"), "bbox.xmin > bbox.xmax"]
        where.append(f"({lat}) AND ({' OR '.join(lon)})")
    # (collections are separate datasets, each with its own schema: union_by_name when reading several)
    rows = duckdb.sql(f"SELECT id, geometry FROM read_parquet({_files(store, cids)}, union_by_name=true) WHERE "
                      + " AND ".join(where)).fetchall()
    if not box:
        return {r[0] for r in rows}
    import shapely
    from chalicelib.stac.geometry import bbox_geometry
    area = bbox_geometry(list(box))
    return {iid for iid, wkb in rows if shapely.intersects(shapely.from_wkb(bytes(wkb)), area)}


def check_mix(store: LocalStore) -> dict[str, int]:
    api = StacApi(store)
    counts = {}
    for label, body in QUERIES.items():
        expected = api_ids(api, body)
        assert duckdb_ids(store, body) == expected, label
        counts[label] = len(expected)
    return counts


def test_duckdb_answers_the_query_mix_like_the_api(tmp_path: Path) -> None:
    store = published(tmp_path, synthetic(500))
    results = geoparquet.regenerate_all(store, SearchIndex(store))
    assert sorted(r.items for r in results) == [167, 333]
    counts = check_mix(store)
    assert sum(n > 0 for n in counts.values()) >= len(QUERIES) - 1, counts  # (500 items: the small bbox may hit none)


@pytest.mark.slow
def test_duckdb_answers_the_query_mix_like_the_api_at_10k(tmp_path: Path) -> None:
    store = published(tmp_path, synthetic(10_000))
    geoparquet.regenerate_all(store, SearchIndex(store))
    counts = check_mix(store)
    assert counts["collections"] == 3334


def test_the_mirror_holds_public_items_only(tmp_path: Path) -> None:
    private = make_item("secret", "dataset")
    private["properties"].update({"stacflow:project": "g/p", "stacflow:visibility": "private"})
    store = published(tmp_path, [make_item("open", "dataset"), private])
    geoparquet.regenerate(store, SearchIndex(store), "dataset")
    ids = duckdb.sql(f"SELECT id FROM read_parquet({_files(store, ['dataset'])})").fetchall()
    assert ids == [("open",)]


def test_unchanged_collection_is_not_rewritten_and_a_change_is(tmp_path: Path) -> None:
    store = published(tmp_path, synthetic(30))
    index = SearchIndex(store)
    first = geoparquet.regenerate(store, index, "dataset")
    again = geoparquet.regenerate(store, index, "dataset")
    assert (first.written, again.written) == (True, False)
    key = catalog.item_key("dataset", "item-0000001")
    store.delete(key)
    apply_item_events(store, [StoreEvent(False, key, "", "")])  # what its store event does
    after = geoparquet.regenerate(store, index, "dataset")
    assert (after.written, after.items) == (True, first.items - 1)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({_files(store, ['dataset'])}) "
                      "WHERE id = 'item-0000001'").fetchall() == [(0,)]


def test_empty_collection_gets_a_file_with_no_rows(tmp_path: Path) -> None:
    store = published(tmp_path, [make_item("one", "dataset")])
    geoparquet.regenerate(store, SearchIndex(store), "ai-model")
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet({_files(store, ['ai-model'])})").fetchall()
    assert rows == [(0,)]


def test_racing_regenerations_converge_on_the_newest_state(tmp_path: Path) -> None:
    """A regeneration that read the index before a publication is held just before its write of the
    partition; another one, after the publication, writes first. The held one's conditional write
    fails; it reads the index again, so the partition ends with the new item."""
    local = published(tmp_path, synthetic(20))
    store = InstrumentedStore(local)
    geoparquet.regenerate(store, SearchIndex(store), "dataset")
    layout = local.get_json(catalog.geoparquet_manifest_key("dataset"))["layout"]
    key = catalog.geoparquet_part_key("dataset", layout, 0)  # one partition at this size
    late = catalog.item_key("dataset", "late")
    local.put_json(late, make_item("late", "dataset"))
    held = store.pause("before", "PUT", lambda call: call.key == key, thread="slow")
    slow_index = SearchIndex(store)
    slow = threading.Thread(target=geoparquet.regenerate, args=(store, slow_index, "dataset"), name="slow")
    early = catalog.item_key("dataset", "early")
    local.put_json(early, make_item("early", "dataset"))
    apply_item_events(local, [StoreEvent(True, early, "", "")])
    slow.start()
    assert held.reached.wait(10)
    apply_item_events(local, [StoreEvent(True, late, "", "")])
    fast = geoparquet.regenerate(store, SearchIndex(store), "dataset")
    held.release.set()
    slow.join(10)
    assert fast.written
    assert store.lost[key] == 1
    ids = {r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet({_files(local, ['dataset'])})").fetchall()}
    assert {"early", "late"} <= ids


def test_collection_links_its_mirror(tmp_path: Path) -> None:
    store = published(tmp_path, [make_item("one", "dataset")])
    assert not store.get_json(catalog.collection_key("dataset"))["assets"]  # nothing to link yet
    geoparquet.regenerate(store, SearchIndex(store), "dataset")
    layout = store.get_json(catalog.geoparquet_manifest_key("dataset"))["layout"]
    stored = store.get_json(catalog.collection_key("dataset"))
    asset = stored["assets"]["geoparquet-0"]
    assert (asset["href"], asset["type"], "collection-mirror" in asset["roles"]) == (
        f"./geoparquet/{layout}/part-00000.parquet", "application/vnd.apache.parquet", True)
    assert (store.root / "collections/dataset" / asset["href"]).is_file()
    served = StacApi(store).collection(BASE, "dataset")["assets"]
    assert served["geoparquet-0"]["href"] == f"{BASE}/collections/dataset/geoparquet/0"


def test_a_collection_stored_before_the_mirror_gets_its_assets_and_loses_the_single_file(tmp_path: Path) -> None:
    """A store written by the unpartitioned version: its asset and file are replaced by the dataset's."""
    store = published(tmp_path, [make_item("one", "dataset")])
    legacy = catalog.geoparquet_legacy_key("dataset")
    store.put(legacy, b"PAR1 old")
    store.update_json(catalog.collection_key("dataset"), lambda doc: dict(doc, assets={"geoparquet": {
        "href": "./dataset.parquet", "type": catalog.PARQUET, "roles": ["data", "collection-mirror"]}}))
    clock = [1000.0]
    geoparquet.regenerate(store, SearchIndex(store), "dataset", now=lambda: clock[0])
    assets = store.get_json(catalog.collection_key("dataset"))["assets"]
    assert set(assets) == {"geoparquet-0"}
    assert store.exists(legacy)  # retired, still readable for GRACE
    clock[0] += geoparquet.GRACE
    geoparquet.regenerate(store, SearchIndex(store), "dataset", now=lambda: clock[0])
    assert not store.exists(legacy)
    assert store.get_json(catalog.geoparquet_manifest_key("dataset"))["retired"] == []


def test_export_command_writes_one_file_per_collection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = published(tmp_path, synthetic(40))
    assert cli(["export", "--store", store.uri, "--format", "geoparquet", str(tmp_path / "out")]) == 0
    done = json.loads(capsys.readouterr().out)
    assert {d["collection"]: d["items"] for d in done} == {"ai-model": 14, "dataset": 26}
    rows = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out' / 'dataset.parquet'}'").fetchall()
    assert rows == [(26,)]


def test_export_one_collection_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = published(tmp_path, synthetic(40))
    out = tmp_path / "models.parquet"
    assert cli(["export", "--store", store.uri, "--collection", "ai-model", "-q", str(out)]) == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall() == [(14,)]


def test_serve_regenerates_after_a_publication_and_serves_the_file(tmp_path: Path) -> None:
    store: ObjectStore = published(tmp_path, [make_item("one", "dataset")])
    server = LiveServer(store.uri)
    try:
        stac = server.url + "/stac"
        r = requests.post(f"{stac}/collections/dataset/items", json=make_item("two", "dataset"), timeout=10)
        assert r.status_code == 201, r.text
        deadline, ids = time.monotonic() + 20, set()
        while time.monotonic() < deadline and ids != {"one", "two"}:
            listed = requests.get(f"{stac}/collections/dataset/geoparquet", timeout=10)
            if listed.status_code == 200:
                ids = set()
                for n, f in enumerate(listed.json()["files"]):
                    target = tmp_path / f"served-{n}.parquet"
                    target.write_bytes(requests.get(f["href"], timeout=10).content)  # follows the 302
                    ids |= {row[0] for row in duckdb.sql(f"SELECT id FROM '{target}'").fetchall()}
            time.sleep(0.2)
        assert ids == {"one", "two"}
        assert requests.get(f"{stac}/collections/dataset/geoparquet/7", timeout=10).status_code == 404
        bad = requests.get(f"{stac}/collections/dataset/geoparquet/x", timeout=10)
        assert (bad.status_code, bad.json()["code"]) == (404, "NotFound")
    finally:
        server.stop()


def test_route_answers_404_before_the_first_regeneration(tmp_path: Path) -> None:
    from chalicelib.stac.errors import NotFoundError
    store = published(tmp_path, [make_item("one", "dataset")])
    with pytest.raises(NotFoundError):
        StacApi(store).geoparquet(BASE, "dataset")
    with pytest.raises(NotFoundError):
        StacApi(store).geoparquet_part("dataset", "0")


@pytest.mark.parametrize("part", ["\u00b2", "\u0661", "9" * 5000, "-1", "0x1", " 0", "", "1"])
def test_a_partition_that_is_not_a_small_ascii_number_is_absent(tmp_path: Path, part: str) -> None:
    """"²" passes str.isdigit and then fails int(); 5,000 digits exceed int()'s conversion limit:
    each is a 404 with a bounded message, never a server error (one partition here: "1" is out of range)."""
    from chalicelib.stac.errors import NotFoundError
    store = published(tmp_path, [make_item("one", "dataset")])
    geoparquet.regenerate(store, SearchIndex(store), "dataset")
    api = StacApi(store)
    assert api.geoparquet_part("dataset", "0", base_url=BASE)
    with pytest.raises(NotFoundError) as refused:
        api.geoparquet_part("dataset", part, base_url=BASE)
    assert len(str(refused.value)) < 200


def test_file_reads_back_as_the_stored_items_with_stac_geoparquet_and_geopandas(tmp_path: Path) -> None:
    import geopandas
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import stac_table_to_items
    items = synthetic(60)
    store = published(tmp_path, items)
    geoparquet.regenerate(store, SearchIndex(store), "ai-model")
    path = dataset(store, "ai-model")  # the folder: one dataset
    back = {item["id"]: item for item in stac_table_to_items(pq.read_table(path))}
    wanted = {item["id"]: item for item in items if item["collection"] == "ai-model"}
    assert set(back) == set(wanted)
    some = next(iter(wanted))
    assert back[some]["properties"]["platform"] == wanted[some]["properties"]["platform"]
    assert back[some]["bbox"] == pytest.approx(wanted[some]["bbox"])
    assert len(geopandas.read_parquet(path)) == len(wanted)


def test_the_api_never_imports_pyarrow(tmp_path: Path) -> None:
    """Serving the collection and the file's route (the API's whole geoparquet path) loads no pyarrow."""
    import subprocess
    import sys
    published(tmp_path, [make_item("one", "dataset")])
    code = ("import sys\nfrom chalice.test import Client\nfrom app import app\n"
            "with Client(app) as c:\n"
            "    assert c.http.get('/stac/collections/dataset').status_code == 200\n"
            "    assert c.http.get('/stac/collections/dataset/geoparquet').status_code == 404\n"
            "    assert c.http.get('/stac/collections/dataset/geoparquet/0').status_code == 404\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'stac_geoparquet', 'pandas')))\n")
    env = {"PATH": "/usr/bin:/bin", "STACFLOW_STORE": (tmp_path / "store").as_uri(),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"  # (after the auth-off warning)


# == partitions (small ones here: MAX_ROWS 40, MIN_ROWS 10) ==================================
@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geoparquet, "MAX_ROWS", 40)
    monkeypatch.setattr(geoparquet, "MIN_ROWS", 10)


def manifest(store: ObjectStore, cid: str = "dataset") -> dict[str, Any]:
    return store.get_json(catalog.geoparquet_manifest_key(cid))  # type: ignore[no-any-return]


def layouts(store: LocalStore, cid: str = "dataset") -> set[str]:
    return {info.key.split("/")[3] for info in store.list(catalog.geoparquet_prefix(cid)) if info.key.endswith(".parquet")}


def parquet_puts(store: InstrumentedStore) -> list[str]:
    return [call.key for call in store.log if call.verb == "PUT" and call.key.endswith(".parquet")]


def publish_one(store: ObjectStore, item: dict[str, Any]) -> None:
    key = catalog.item_key(item["collection"], item["id"])
    store.put_json(key, item)
    apply_item_events(store, [StoreEvent(True, key, "", "")])


def like_synthetic(iid: str, n: int = 1) -> dict[str, Any]:
    """One more item of the benchmark's shape (the same columns as its others: no schema change)."""
    return dict(synthetic(n + 1)[n], id=iid, collection="dataset")


def delete_one(store: ObjectStore, cid: str, iid: str) -> None:
    key = catalog.item_key(cid, iid)
    store.delete(key)
    apply_item_events(store, [StoreEvent(False, key, "", "")])


def test_partitioned_dataset_reads_as_one_and_answers_the_query_mix(tmp_path: Path, small_partitions: None) -> None:
    import geopandas
    import pyarrow.dataset as ds
    store = published(tmp_path, synthetic(500))
    results = {r.cid: r for r in geoparquet.regenerate_all(store, SearchIndex(store))}
    assert {cid: r.partitions for cid, r in results.items()} == {"ai-model": 8, "dataset": 16}  # 167 and 333 items
    assert len(list((dataset(store, "dataset")).glob("*.parquet"))) == 16
    check_mix(store)
    folder = dataset(store, "dataset")
    assert ds.dataset(folder, format="parquet").count_rows() == 333
    assert len(geopandas.read_parquet(folder)) == 333
    schemas = {str(ds.dataset(path, format="parquet").schema.remove_metadata()) for path in folder.glob("*.parquet")}
    assert len(schemas) == 1  # one schema across the files: readers need no union_by_name


def test_a_change_rewrites_only_its_partition(tmp_path: Path, small_partitions: None) -> None:
    local = published(tmp_path, synthetic(300))
    store = InstrumentedStore(local)
    index = SearchIndex(store)
    geoparquet.regenerate(store, index, "dataset")
    parts = manifest(local)["partitions"]
    assert parts == 8
    store.log.clear()
    publish_one(local, like_synthetic("new-one"))
    result = geoparquet.regenerate(store, index, "dataset")
    k = geoparquet.partition_of("new-one", parts)
    assert result.parts_written == (k,)
    assert parquet_puts(store) == [catalog.geoparquet_part_key("dataset", manifest(local)["layout"], k)]
    store.log.clear()
    delete_one(local, "dataset", "new-one")  # a deletion: the same partition, once more
    assert geoparquet.regenerate(store, index, "dataset").parts_written == (k,)
    assert len(parquet_puts(store)) == 1
    assert "new-one" not in {r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet({_files(local, ['dataset'])})").fetchall()}
    store.log.clear()
    assert not geoparquet.regenerate(store, index, "dataset").written
    assert parquet_puts(store) == []


def test_a_new_property_widens_every_partition_to_one_schema(tmp_path: Path, small_partitions: None) -> None:
    local = published(tmp_path, synthetic(110))  # 73 items in dataset: 2 partitions
    store = InstrumentedStore(local)
    index = SearchIndex(store)
    geoparquet.regenerate(store, index, "dataset")
    parts = manifest(local)["partitions"]
    store.log.clear()
    item = like_synthetic("odd-one")
    item["properties"]["sar:polarizations"] = ["VV"]
    publish_one(local, item)
    result = geoparquet.regenerate(store, index, "dataset")
    assert len(result.parts_written) == parts == len(parquet_puts(store))  # unchanged ones conformed from Parquet
    rows = duckdb.sql(f"SELECT count(*), count(\"sar:polarizations\") FROM read_parquet({_files(local, ['dataset'])})")
    assert rows.fetchall() == [(74, 1)]


def test_repartitioning_publishes_a_new_layout_and_retires_the_old_one(tmp_path: Path, small_partitions: None) -> None:
    local = published(tmp_path, [like_synthetic(f"i{n:03d}", n) for n in range(30)])
    index = SearchIndex(local)
    clock = [1000.0]
    first = geoparquet.regenerate(local, index, "dataset", now=lambda: clock[0])
    geoparquet.regenerate(local, index, "ai-model")  # (empty: the query mix reads both)
    old = dataset(local, "dataset")
    assert first.partitions == 1
    for n in range(30, 100):
        publish_one(local, like_synthetic(f"i{n:03d}", n))
    grown = geoparquet.regenerate(local, index, "dataset", now=lambda: clock[0])
    assert (grown.partitions, grown.relayout) == (4, True)
    assert check_mix(local)
    assert duckdb.sql(f"SELECT count(*) FROM '{old}/*.parquet'").fetchall() == [(30,)]  # retired, still whole
    assert {a["href"].split("/")[2] for a in local.get_json(catalog.collection_key("dataset"))["assets"].values()} \
        == {manifest(local)["layout"]}
    clock[0] += geoparquet.GRACE
    geoparquet.regenerate(local, index, "dataset", now=lambda: clock[0])
    assert layouts(local) == {manifest(local)["layout"]}
    for n in range(0, 85):  # 15 left: fewer than 4 x MIN_ROWS
        delete_one(local, "dataset", f"i{n:03d}")
    shrunk = geoparquet.regenerate(local, index, "dataset", now=lambda: clock[0])
    assert (shrunk.partitions, shrunk.items) == (1, 15)
    assert check_mix(local)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({_files(local, ['dataset'])})").fetchall() == [(15,)]


def test_an_update_racing_a_new_layout_converges(tmp_path: Path, small_partitions: None) -> None:
    """A re-layout built from an older snapshot (41 items: 2 partitions) is held before publishing
    its manifest; meanwhile an update from a newer snapshot (39 items: 1 partition) rewrites the old
    layout. Released, the re-layout publishes, sees the old layout moved, and updates its own layout
    from a fresh snapshot: the dataset ends without the items deleted meanwhile."""
    local = published(tmp_path, [make_item(f"i{n:03d}", "dataset") for n in range(40)])
    store = InstrumentedStore(local)
    geoparquet.regenerate(store, SearchIndex(store), "dataset")
    publish_one(local, make_item("i040", "dataset"))
    key = catalog.geoparquet_manifest_key("dataset")
    held = store.pause("before", "PUT", lambda call: call.key == key, thread="relayout")
    slow = threading.Thread(target=geoparquet.regenerate, args=(store, SearchIndex(store), "dataset"), name="relayout")
    slow.start()
    assert held.reached.wait(10)
    delete_one(local, "dataset", "i040")
    delete_one(local, "dataset", "i003")
    update = geoparquet.regenerate(store, SearchIndex(store), "dataset")
    assert (update.written, update.relayout, update.partitions) == (True, False, 1)
    held.release.set()
    slow.join(10)
    assert manifest(local)["partitions"] == 2
    ids = {r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet({_files(local, ['dataset'])})").fetchall()}
    assert ids == {f"i{n:03d}" for n in range(40)} - {"i003"}


def test_racing_first_layouts_leave_one(tmp_path: Path, small_partitions: None) -> None:
    """Two regenerations of a collection with no dataset: the one that loses the manifest's
    create-only write deletes the layout it wrote, then finds the winner's current."""
    local = published(tmp_path, [make_item(f"i{n:03d}", "dataset") for n in range(50)])
    store = InstrumentedStore(local)
    key = catalog.geoparquet_manifest_key("dataset")
    held = store.pause("before", "PUT", lambda call: call.key == key, thread="slow")
    slow = threading.Thread(target=geoparquet.regenerate, args=(store, SearchIndex(store), "dataset"), name="slow")
    slow.start()
    assert held.reached.wait(10)
    assert geoparquet.regenerate(store, SearchIndex(store), "dataset").written
    held.release.set()
    slow.join(10)
    assert store.lost[key] == 1
    assert layouts(local) == {manifest(local)["layout"]}
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({_files(local, ['dataset'])})").fetchall() == [(50,)]


def test_a_file_changed_behind_the_process_is_repaired_at_the_next_full_check(
        tmp_path: Path, small_partitions: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm runs trust what this process wrote while the index and the manifest match it (no LIST);
    every VERIFY_EVERY seconds they list the files and repair any another writer left behind."""
    local = published(tmp_path, synthetic(150))
    store = InstrumentedStore(local)
    index = SearchIndex(store)
    geoparquet.regenerate(store, index, "dataset")
    victim = catalog.geoparquet_part_key("dataset", manifest(local)["layout"], 1)
    local.delete(victim)
    store.log.clear()
    assert not geoparquet.regenerate(store, index, "dataset").written  # trusted: not listed
    assert not any(call.verb == "LIST" and "geoparquet" in call.key for call in store.log)
    monkeypatch.setattr(geoparquet, "VERIFY_EVERY", 0.0)
    assert geoparquet.regenerate(store, index, "dataset").parts_written == (1,)
    assert local.exists(victim)
