"""Concurrent publishers into one collection: compare-and-swap conflicts on the hot documents.

    python bench/publish_contention.py --threads 32 --per-thread 8

N threads each publish items one event at a time through the real event path
(``apply_item_events``: shard and collection pages, search index) on a local store, all into the
``dataset`` collection. Two workloads: ``spread`` (items all over the map and the year, into an
empty collection: extents keep growing) and ``inside`` (every shard already holds an item at the
same place and time, so no publish changes a shard's extent). Prints, per workload, the writes and
lost swaps (conflicts) on the collection document and on the shards, errors, and the wall time.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from typing import Any

from harness import REPO  # noqa: F401 (first: puts the repository on sys.path)

from chalicelib.stac import catalog
from chalicelib.stac.publish import apply_item_events
from chalicelib.store.local import LocalStore
from chalicelib.events.base import StoreEvent
from tests.helpers.stores import InstrumentedStore
from tests.helpers.stac_items import make_item


def _items(workload: str, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    if workload == "spread":
        return [make_item(f"p-{i}", lon=rnd.uniform(-170, 170), lat=rnd.uniform(-80, 80),
                          dt=f"2022-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}T00:00:00Z") for i in range(n)]
    return [make_item(f"p-{i}") for i in range(n)]  # make_item's default place and time


def run(workload: str, threads: int, per_thread: int) -> dict[str, Any]:
    inner = LocalStore(tempfile.mkdtemp(prefix="contention-"), fsync=False)
    catalog.ensure_root(inner)
    if workload == "inside":  # one item per shard at the default place and time
        seeds: dict[str, str] = {}
        i = 0
        while len(seeds) < catalog.SHARD_COUNT:
            seeds.setdefault(catalog.shard_of(f"seed-{i}"), f"seed-{i}")
            i += 1
        for iid in seeds.values():
            inner.put_json(catalog.item_key("dataset", iid), make_item(iid), notify=False)
        apply_item_events(inner, [StoreEvent(True, catalog.item_key("dataset", iid), "", "") for iid in seeds.values()])
    items = _items(workload, threads * per_thread, random.Random(7))
    store = InstrumentedStore(inner)
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
    shard_writes = sum(n for k, n in store.written.items() if "/shards/" in k)
    shard_lost = sum(n for k, n in store.lost.items() if "/shards/" in k)
    return {"workload": workload, "publishes": len(items), "collection writes": store.written[coll],
            "collection conflicts": store.lost[coll], "shard writes": shard_writes, "shard conflicts": shard_lost,
            "errors": len(errors), "seconds": round(elapsed, 2), "first error": errors[0] if errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--per-thread", type=int, default=8)
    args = parser.parse_args()
    for workload in ("spread", "inside"):
        print(run(workload, args.threads, args.per_thread), flush=True)


if __name__ == "__main__":
    main()
