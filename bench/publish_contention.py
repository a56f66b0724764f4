"""Concurrent publishers into one collection: throughput against one writer, and what they meet on.

    python bench/publish_contention.py --items 96 --threads 1 8 16 --latency-ms 20 [--baseline DIR]

The same ``--items`` items are published one event at a time through the real event path
(``apply_item_events``: item, shard and collection pages, search index) into the ``dataset``
collection of a local store, by each number of ``--threads`` writers (the items dealt out among
them). Every store request first sleeps ``--latency-ms`` (an S3 round trip; requests of different
writers overlap, as they do on S3). Workloads: ``spread`` (items all over the map and the year,
into an empty collection: extents keep growing), ``grown`` (the same into a collection already
holding 2,000 such items) and ``inside`` (every shard already holds an item at the same place and
time, so no publish changes a shard's extent). Prints per workload, writers and code tree
(``--baseline DIR``: another commit's checkout, run interleaved with this one) the items/s and its
ratio to one writer, requests per publish, writes and lost compare-and-swaps on the collection
document and on the shards, and errors.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

WORKLOADS = ("spread", "grown", "inside")
GROWN = 2000


def _spread(prefix: str, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    from tests.helpers.stac_items import make_item
    return [make_item(f"{prefix}-{i}", lon=rnd.uniform(-170, 170), lat=rnd.uniform(-80, 80),
                      dt=f"2022-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}T00:00:00Z") for i in range(n)]


def _seed(store: Any, items: list[dict[str, Any]]) -> None:
    """Items and their catalog pages, written as one batch (the search index is not what is measured)."""
    from chalicelib.stac import catalog
    from chalicelib.stac.items import normalize
    summaries = {}
    for raw in items:
        item, summary = normalize(raw, "dataset")
        store.put_json(catalog.item_key("dataset", item["id"]), item, notify=False)
        summaries[item["id"]] = summary
    catalog.update(store, "dataset", summaries, ())


def run(workload: str, threads: int, n: int, latency: float) -> dict[str, Any]:
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac import catalog
    from chalicelib.stac.publish import apply_item_events
    from chalicelib.store.local import LocalStore
    from tests.helpers.stac_items import make_item
    from tests.helpers.stores import InstrumentedStore

    inner = LocalStore(tempfile.mkdtemp(prefix="contention-"), fsync=False)
    catalog.ensure_root(inner)
    rnd = random.Random(7)
    if workload == "inside":  # one item per shard at make_item's default place and time
        seeds: dict[str, str] = {}
        i = 0
        while len(seeds) < 256:
            seeds.setdefault(catalog.shard_of(f"seed-{i}"), f"seed-{i}")
            i += 1
        _seed(inner, [make_item(iid) for iid in seeds.values()])
        items = [make_item(f"p-{i}") for i in range(n)]
    else:
        if workload == "grown":
            _seed(inner, _spread("seed", GROWN, random.Random(11)))
        items = _spread("p", n, rnd)
    store = InstrumentedStore(inner)
    if latency:
        store.hooks.append(lambda when, call: time.sleep(latency) if when == "before" else None)
    barrier = threading.Barrier(threads)
    errors: list[str] = []

    def publisher(chunk: list[dict[str, Any]]) -> None:
        barrier.wait()
        for item in chunk:
            key = catalog.item_key("dataset", item["id"])
            inner.put_json(key, item, notify=False)
            try:
                apply_item_events(store, [StoreEvent(True, key, "", "")])
            except Exception as err:  # counted: the event would be redelivered
                errors.append(f"{type(err).__name__}: {err}")

    workers = [threading.Thread(target=publisher, args=(items[t::threads],)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    coll = catalog.collection_key("dataset")
    return {"items/s": round(n / elapsed, 1), "requests/publish": round(store.total / n, 1),
            "collection writes": store.written[coll], "collection conflicts": store.lost[coll],
            "shard writes": sum(v for k, v in store.written.items() if "/shards/" in k),
            "shard conflicts": sum(v for k, v in store.lost.items() if "/shards/" in k),
            "errors": len(errors), "seconds": round(elapsed, 2), "first error": errors[0] if errors else ""}


def child(code: Path, workload: str, threads: int, n: int, latency: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(code), workload, str(threads), str(n), str(latency)],
                         cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=96, help="items published in each run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the commit to compare with")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        code, workload, threads, n, latency = args.child
        sys.path.insert(0, code)
        print(json.dumps(run(workload, int(threads), int(n), float(latency))), flush=True)
        return
    codes = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    for workload in args.workloads:
        one: dict[str, float] = {}
        for threads in args.threads:
            for label, code in codes.items():  # interleaved: the same machine load for both trees
                row = child(code, workload, threads, args.items, args.latency_ms / 1000)
                one.setdefault(label, row["items/s"])
                print(json.dumps({"workload": workload, "tree": label, "writers": threads,
                                  "vs one writer": round(row["items/s"] / one[label], 2)} | row), flush=True)


if __name__ == "__main__":
    main()
