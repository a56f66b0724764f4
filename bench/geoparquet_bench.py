"""stac-geoparquet mirror benchmark: publish N synthetic items (bench/stac_bench.py's), then time what
keeping each collection's dataset current costs, this checkout against a baseline checkout (the
single-file version) interleaved over the same store.

    python bench/geoparquet_bench.py --n 10000 100000 [--baseline /tmp/base-geo] [--rounds 5]

Each version runs in a worker process of its own (``PYTHONPATH`` its checkout) that keeps its index
reader warm, like the scheduled function's warm instance. Per N and version: the index's cold load,
a cold regeneration of both collections (every file written), a warm run with nothing changed (time
and store requests), then ``--rounds`` times: the driver publishes one more item (its PUT and the
event function's index write, timed) and each worker regenerates (order alternating per round); the
driver checks with DuckDB that the item is in that version's files. The lag a user sees on AWS adds
what invokes the regeneration: the trigger's S3 notification and 2 s batching window (this version),
or the schedule's wait, up to 60 s (the single-file version). For this checkout also: the
dataset's size, the partitions, a DuckDB query over the dataset, `stacflow export` (one file).
Both workers skip the collection-asset update (the two versions link different assets; each would
rewrite collection.json every round).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

import duckdb

from chalicelib.events.base import StoreEvent
from chalicelib.stac import catalog
from chalicelib.stac.publish import apply_item_events, publish_paths
from chalicelib.store.local import LocalStore
from stac_bench import synthetic
from tests.helpers.synthetic import make_item

# The worker: one version's regenerations over the shared store, driven by JSON lines on stdin.
WORKER = r'''
import json, sys, time
from chalicelib.stac import geoparquet
from chalicelib.stac.index import SearchIndex
from chalicelib.store.local import LocalStore
from tests.helpers.stores import InstrumentedStore
geoparquet.link_from_collection = lambda *a, **k: None
if hasattr(geoparquet, "link"):
    geoparquet.link = lambda *a, **k: None
local = LocalStore(sys.argv[1], fsync=False)
store = InstrumentedStore(local)
index = SearchIndex(store)
def send(doc):
    print(json.dumps(doc), flush=True)
t, c = time.perf_counter(), time.process_time()
index.snapshot()
send({"index_load_s": time.perf_counter() - t, "index_load_cpu_s": time.process_time() - c})
for line in sys.stdin:
    cmd = json.loads(line)
    store.calls.clear()
    t, c = time.perf_counter(), time.process_time()
    results = geoparquet.regenerate_all(store, index, force=cmd.get("force", False))
    send({"s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "requests": dict(store.calls),
          "results": [r.as_dict() | {"timings": getattr(r, "timings", {})} for r in results]})
'''


class Worker:
    def __init__(self, name: str, checkout: Path, root: Path) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(checkout))
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(root)], cwd=checkout, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.started = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def files_of(store: LocalStore, version: str, cid: str) -> list[str]:
    if version == "base":
        return [str(store.root / f"collections/{cid}/{cid}.parquet")]
    layout = store.get_json(catalog.geoparquet_manifest_key(cid))["layout"]
    return [str(p) for p in sorted((store.root / catalog.geoparquet_prefix(cid) / layout).glob("*.parquet"))]


def holds(store: LocalStore, version: str, cid: str, iid: str) -> bool:
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet({files_of(store, version, cid)}) WHERE id = '{iid}'")
    return rows.fetchall() == [(1,)]


def bench(n: int, workdir: Path, baseline: Path | None, rounds: int) -> dict[str, Any]:
    source = workdir / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in synthetic(n)))
    store = LocalStore(workdir / "store", fsync=False)
    t = time.perf_counter()
    publish_paths(store, [source], progress=False)
    out: dict[str, Any] = {"n": n, "publish_s": round(time.perf_counter() - t, 1), "load": os.getloadavg()[0]}
    versions = {"new": REPO} | ({"base": baseline} if baseline else {})
    workers = {name: Worker(name, path, store.root) for name, path in versions.items()}
    per: dict[str, dict[str, Any]] = {name: {"index_load_s": round(w.started["index_load_s"], 2)}
                                      for name, w in workers.items()}
    for name, w in workers.items():  # cold: every file written
        cold = w.run(force=True)
        per[name]["cold_regenerate_s"] = round(cold["s"], 2)
        per[name]["cold_regenerate_cpu_s"] = round(cold["cpu_s"], 2)
        per[name]["cold_per_collection_s"] = {r["collection"]: r["seconds"] for r in cold["results"]}
        per[name]["partitions"] = {r["collection"]: r.get("partitions", 1) for r in cold["results"]}
    for name, w in workers.items():  # warm, nothing changed: what most scheduled runs do
        w.run()
        warm = w.run()
        assert not any(r["written"] for r in warm["results"]), warm
        per[name]["warm_unchanged_ms"] = round(warm["s"] * 1000, 1)
        per[name]["warm_unchanged_requests"] = warm["requests"]
    rng = random.Random(1)
    lags: dict[str, list[float]] = {name: [] for name in workers}
    cpus: dict[str, list[float]] = {name: [] for name in workers}
    for r in range(rounds):
        iid = f"one-more-{r}"
        key = catalog.item_key("dataset", iid)
        t = time.perf_counter()
        store.put_json(key, dict(make_item(r, rng, collection="dataset"), id=iid))
        apply_item_events(store, [StoreEvent(True, key, "", "")])  # the event function's work
        published = time.perf_counter() - t
        order = list(workers) if r % 2 == 0 else list(reversed(workers))
        for name in order:
            done = workers[name].run()
            assert holds(store, name, "dataset", iid), (name, iid)
            lags[name].append(published + done["s"])
            cpus[name].append(done["cpu_s"])
            if name == "new":
                res = next(x for x in done["results"] if x["collection"] == "dataset")
                per[name].setdefault("one_more_parts_written", []).append(len(res["parts_written"]))
                per[name]["one_more_timings"] = res["timings"]
                per[name]["one_more_requests"] = done["requests"]
    for name in workers:
        per[name]["publish_to_dataset_s"] = {"median": round(statistics.median(lags[name]), 2),
                                             "max": round(max(lags[name]), 2)}
        per[name]["one_more_cpu_s"] = round(statistics.median(cpus[name]), 2)
        workers[name].close()
    if "base" in per:
        out["ratio_new_over_base"] = {
            "publish_to_dataset": round(per["new"]["publish_to_dataset_s"]["median"]
                                        / per["base"]["publish_to_dataset_s"]["median"], 3),
            "one_more_cpu": round(per["new"]["one_more_cpu_s"] / per["base"]["one_more_cpu_s"], 3),
            "cold_regenerate": round(per["new"]["cold_regenerate_s"] / per["base"]["cold_regenerate_s"], 3)}
    out["versions"] = per
    cids = sorted(catalog.config().collection_ids)
    files = [f for cid in cids for f in files_of(store, "new", cid)]
    size = sum(os.path.getsize(f) for f in files)
    out["dataset_mb"] = round(size / 1e6, 2)
    out["bytes_per_item"] = round(size / (n + rounds))
    out["ndjson_mb"] = round(source.stat().st_size / 1e6, 1)
    t = time.perf_counter()
    globs = [f"{store.root / catalog.geoparquet_prefix(cid)}/{store.get_json(catalog.geoparquet_manifest_key(cid))['layout']}/*.parquet"
             for cid in cids]
    hits = duckdb.sql(f"SELECT count(*) FROM read_parquet({globs}, union_by_name=true) WHERE bbox.xmax >= -60 "
                      "AND bbox.xmin <= 60 AND bbox.ymax >= -40 AND bbox.ymin <= 40 AND \"eo:cloud_cover\" < 10").fetchall()
    out["duckdb_query_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["duckdb_hits"] = hits[0][0] if hits else 0
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "export", "-q", "--store", store.uri,
                    str(workdir / "export")], check=True, capture_output=True, cwd=REPO)
    out["export_cli_s"] = round(time.perf_counter() - t, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[10000])
    parser.add_argument("--baseline", type=Path, help="a checkout of the single-file version (e.g. main at 03ff5dc)")
    parser.add_argument("--rounds", type=int, default=5, help="one-more-item publications per N")
    args = parser.parse_args()
    for n in args.n:
        work = Path(tempfile.mkdtemp(prefix=f"gpq-{n}-"))
        try:
            print(json.dumps(bench(n, work, args.baseline, args.rounds)), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
