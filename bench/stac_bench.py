"""STAC search index benchmark: bulk load N synthetic EO items, then time warm searches and publishing.

    python bench/stac_bench.py --n 1000 10000 100000

Per N it reports: bulk apply time; cold snapshot load; warm search p50/p95 (in-process, local
store, each search includes the snapshot refresh: one LIST + one conditional GET); the cost of
publishing one more item (time and store requests, index only and through the catalog
publisher); how soon that item is searchable; the RSS growth of loading a cold reader; and the
process's peak RSS (which includes the generator's items and the writer's compactions).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.stac import search  # noqa: E402
from chalicelib.stac.index import SearchIndex  # noqa: E402
from chalicelib.store.local import LocalStore  # noqa: E402
from tests.stac.counting import CountingStore  # noqa: E402
from tests.stac.synthetic import COLLECTIONS, make_items  # noqa: E402

QUERIES: dict[str, dict[str, Any]] = {
    "ids": {"ids": ["item-0000007", "item-0000500", "item-0000999", "item-0000042", "item-0000300"]},
    "collections": {"collections": ["dem"]},
    "small bbox": {"bbox": [10.0, 40.0, 12.0, 42.0]},
    "large bbox + datetime": {"bbox": [-60, -40, 60, 40], "datetime": "2020-01-01T00:00:00Z/2020-12-31T23:59:59Z"},
    "q": {"q": "glacier"},
    "cql2 filter": {"filter": "eo:cloud_cover < 10 AND platform = 'sentinel-2a'", "filter-lang": "cql2-text"},
    "sortby cloud_cover": {"sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}]},
    "sortby id": {"sortby": [{"field": "id", "direction": "desc"}]},
    "fields": {"fields": {"include": ["properties.platform"], "exclude": ["geometry"]}},
}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def publish_via_catalog(store: Any, item: dict[str, Any]) -> bool:
    """Publish through chalicelib.stac.publish (the real event path), if it accepts the item."""
    try:
        from chalicelib.stac.publish import apply_item_events
        from functions import StoreEvent
    except ImportError:
        return False
    key = f"collections/{item['collection']}/items/{item['id']}.json"
    info = store.put_json(key, item)
    report = apply_item_events(store, [StoreEvent(created=True, key=key, etag=info.etag, sequencer="")])
    return report.published == 1


def bench(n: int, batch: int, repeat: int, settle: float) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n}
    root = tempfile.mkdtemp(prefix=f"stacbench-{n}-")
    store = CountingStore(LocalStore(root, fsync=False))
    writer = SearchIndex(store, settle=settle)
    items = make_items(n)
    started = time.perf_counter()
    for i in range(0, n, batch):
        writer.apply(items[i:i + batch], [])
    time.sleep(settle * 1.1)
    writer.apply(make_items(1, seed=2, prefix="settle"), [])  # compacts the bulk load
    out["bulk_apply_s"] = round(time.perf_counter() - started, 2)

    del items  # measure the reader's footprint, not the generator's
    reader = SearchIndex(store)
    rss_before = current_rss_mb()
    started = time.perf_counter()
    snap = reader.snapshot()
    out["cold_snapshot_s"] = round(time.perf_counter() - started, 2)
    out["reader_rss_growth_mb"] = round(current_rss_mb() - rss_before, 1)
    assert snap.count == n + 1, snap.count
    known = set(COLLECTIONS)

    def run(body: dict[str, Any]) -> search.SearchPage:
        return search.execute(reader.snapshot(), search.parse_post(body), known_collections=known)

    out["search_ms"] = {}
    for name, body in QUERIES.items():
        run(body)  # first use builds lazy columns
        p50, p95 = timed(lambda: run(body), repeat)
        out["search_ms"][name] = {"p50": round(p50, 2), "p95": round(p95, 2), "matched": run(body).number_matched}

    def pages(limit: int, count: int) -> None:
        token = None
        for _ in range(count):
            body: dict[str, Any] = {"limit": limit, "sortby": [{"field": "datetime", "direction": "desc"}]}
            if token:
                body["token"] = token
            token = run(body).next_token
    pages(100, 10)
    for label, limit, count in (("10 pages of 100", 100, 10), ("1 page of 1000", 1000, 1)):
        p50, p95 = timed(lambda: pages(limit, count), max(5, repeat // 5))
        out["search_ms"][label] = {"p50": round(p50, 2), "p95": round(p95, 2), "matched": n + 1}

    # One more item: index-only apply, then the full publisher path.
    one = []
    for k in range(repeat):
        item = make_items(1, seed=1000 + k, prefix=f"extra{k}")[0]
        store.calls.clear()
        started = time.perf_counter()
        writer.apply([item], [])
        elapsed = (time.perf_counter() - started) * 1000
        requests = store.total
        started = time.perf_counter()
        found = run({"ids": [item["id"]]}).number_matched
        visible = (time.perf_counter() - started) * 1000
        one.append((elapsed, requests, visible, found))
    out["apply_one"] = {"ms_p50": round(percentiles([o[0] for o in one])[0], 2),
                        "ms_p95": round(percentiles([o[0] for o in one])[1], 2),
                        "requests_median": statistics.median(o[1] for o in one),
                        "requests_max": max(o[1] for o in one),
                        "next_search_ms_p50": round(percentiles([o[2] for o in one])[0], 2),
                        "all_visible": all(o[3] == 1 for o in one)}
    via = []
    for k in range(min(repeat, 10)):
        item = make_items(1, seed=5000 + k, prefix=f"pub{k}", collection="dataset")[0]
        store.calls.clear()
        started = time.perf_counter()
        ok = publish_via_catalog(store, item)
        via.append(((time.perf_counter() - started) * 1000, store.total, ok))
    if via and all(v[2] for v in via):
        out["publish_one_via_catalog"] = {"ms_p50": round(percentiles([v[0] for v in via])[0], 2),
                                          "requests_median": statistics.median(v[1] for v in via)}
    else:
        out["publish_one_via_catalog"] = "unavailable (publisher rejected the synthetic item or is missing)"
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch", type=int, default=1000, help="items per bulk apply() call")
    parser.add_argument("--repeat", type=int, default=50, help="samples per measurement")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="index settle time in seconds (production default 10; shorter here so the bulk "
                             "load compacts without waiting)")
    args = parser.parse_args()
    for n in args.n:
        print(json.dumps(bench(n, args.batch, args.repeat, args.settle), indent=1), flush=True)


if __name__ == "__main__":
    main()
