"""stac-geoparquet mirror benchmark: publish N synthetic items (bench/stac_bench.py's), then time what
keeping ``collections/<cid>/<cid>.parquet`` current costs.

    python bench/geoparquet_bench.py --n 10000 100000

Per N: a cold regeneration of both collections (a new process's index reader: segments loaded, every
file written), a warm check with nothing changed (what most scheduled runs do), one more item
published then regenerated (warm reader), the files' sizes (and bytes per item), store requests of
the no-change check, `stacflow export` of everything, and a DuckDB query over the files.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

import duckdb

from chalicelib.events.base import StoreEvent
from chalicelib.stac import catalog, geoparquet
from chalicelib.stac.index import SearchIndex
from chalicelib.stac.publish import apply_item_events, publish_paths
from chalicelib.store.local import LocalStore
from stac_bench import synthetic
from tests.helpers.stores import InstrumentedStore
from tests.helpers.synthetic import make_item


def bench(n: int, workdir: Path) -> dict[str, Any]:
    source = workdir / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in synthetic(n)))
    store = LocalStore(workdir / "store", fsync=False)
    t = time.perf_counter()
    publish_paths(store, [source], progress=False)
    out: dict[str, Any] = {"n": n, "publish_s": round(time.perf_counter() - t, 1)}
    index = SearchIndex(store)
    t = time.perf_counter()
    cold = geoparquet.regenerate_all(store, index, force=True)
    out["cold_regenerate_s"] = round(time.perf_counter() - t, 2)
    out["per_collection_s"] = {r.cid: round(r.seconds, 2) for r in cold}
    out["file_mb"] = {r.cid: round(r.bytes / 1e6, 2) for r in cold}
    out["bytes_per_item"] = round(sum(r.bytes for r in cold) / n)
    out["ndjson_mb"] = round(source.stat().st_size / 1e6, 1)
    counted = InstrumentedStore(store)
    warm_index = SearchIndex(counted)
    geoparquet.regenerate_all(counted, warm_index)  # loads the reader
    counted.calls.clear()
    t = time.perf_counter()
    again = geoparquet.regenerate_all(counted, warm_index)
    out["warm_unchanged_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["warm_unchanged_requests"] = dict(counted.calls)
    assert not any(r.written for r in again)
    key = catalog.item_key("dataset", "one-more")
    store.put_json(key, dict(make_item(0, __import__("random").Random(1), collection="dataset"), id="one-more"))
    apply_item_events(store, [StoreEvent(True, key, "", "")])
    t = time.perf_counter()
    changed = geoparquet.regenerate_all(store, index)
    out["one_more_regenerate_s"] = round(time.perf_counter() - t, 2)
    out["one_more_written"] = [r.cid for r in changed if r.written]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "export", "-q", "--store", store.uri,
                    str(workdir / "export")], check=True, capture_output=True, cwd=REPO)
    out["export_cli_s"] = round(time.perf_counter() - t, 2)
    files = [str(store.root / catalog.geoparquet_key(c)) for c in sorted(catalog.config().collection_ids)]
    t = time.perf_counter()
    hits = duckdb.sql(f"SELECT count(*) FROM read_parquet({files}) WHERE bbox.xmax >= -60 AND bbox.xmin <= 60 "
                      "AND bbox.ymax >= -40 AND bbox.ymin <= 40 AND \"eo:cloud_cover\" < 10").fetchall()[0]
    out["duckdb_query_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["duckdb_hits"] = hits[0] if hits else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[10000])
    args = parser.parse_args()
    for n in args.n:
        work = Path(tempfile.mkdtemp(prefix=f"gpq-{n}-"))
        try:
            print(json.dumps(bench(n, work)), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
