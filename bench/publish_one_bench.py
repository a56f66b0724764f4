"""Publishing one more item stays flat: its cost in an N-item catalog against a small one.

    python bench/publish_one_bench.py --n 1000 100000 [--baseline DIR] [--samples 40]

Per code tree (this checkout, and ``--baseline DIR``: another commit's, e.g. ``git archive <commit> |
tar -x -C DIR``) and per N: ``stacflow publish`` of N generated items (that tree's bulk path), then a
worker process of that tree publishes one more ``dataset`` item at a time through the event path
(the item's PUT, then ``apply_item_events``: item, shard and collection pages, search index). The
workers take turns, one item each round, so every tree and size sees the same machine load. Prints
per tree and N the p50 of wall and CPU time, store requests and bytes moved (request and response
bodies) per publish, and the largest-N / smallest-N ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path


def build(code: Path, store: Path, source: Path) -> float:
    """The tree's own bulk publish of ``source`` into ``store``; seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", store.as_uri(), "-q", str(source)],
                   cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def worker(code: Path, store_dir: Path) -> None:
    """Publish one item per line of stdin (its number); one JSON line of costs per item on stdout."""
    sys.path.insert(0, str(code))
    import random
    from chalicelib.events.base import StoreEvent
    from chalicelib.stac import catalog
    from chalicelib.stac.publish import apply_item_events
    from chalicelib.store.local import LocalStore
    from tests.helpers.stores import InstrumentedStore
    from tests.helpers.synthetic import make_item

    store = InstrumentedStore(LocalStore(store_dir, fsync=False))
    moved = [0]

    def count(when: str, call: Any) -> None:
        if when == "after" and call.body is not None:
            moved[0] += len(call.body)

    store.hooks.append(count)
    rng = random.Random(99)
    for line in sys.stdin:
        k = int(line)
        item = make_item(k, rng, collection="dataset", prefix="one-more")
        key = catalog.item_key("dataset", item["id"])
        store.calls.clear()
        moved[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        store.put_json(key, item)
        report = apply_item_events(store, [StoreEvent(True, key, "", "")])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert report.published == 1, report.as_dict()
        print(json.dumps({"ms": wall * 1000, "cpu_ms": cpu * 1000, "requests": store.total, "bytes": moved[0]}),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the commit to compare with")
    parser.add_argument("--samples", type=int, default=40, help="items published per tree and N")
    parser.add_argument("--worker", nargs=2, metavar=("CODE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]))
        return
    from stac_bench import synthetic
    codes = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="publish-one-") as tmp:
        work = Path(tmp)
        workers: dict[tuple[str, int], subprocess.Popen[str]] = {}
        for n in args.n:
            source = work / f"{n}.ndjson"
            with source.open("w") as fh:
                for item in synthetic(n):
                    fh.write(json.dumps(item) + "\n")
            for label, code in codes.items():
                store = work / f"{label}-{n}"
                print(json.dumps({"build": label, "n": n, "seconds": round(build(code, store, source), 1)}), flush=True)
                workers[label, n] = subprocess.Popen(
                    [sys.executable, __file__, "--worker", str(code), str(store)], cwd=code, text=True,
                    env=dict(os.environ, PYTHONPATH=str(code)), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            source.unlink()
        samples: dict[tuple[str, int], list[dict[str, float]]] = {key: [] for key in workers}
        for k in range(args.samples):  # round robin: the same load for every tree and size
            for key, proc in workers.items():
                assert proc.stdin and proc.stdout
                proc.stdin.write(f"{k}\n")
                proc.stdin.flush()
                samples[key].append(json.loads(proc.stdout.readline()))
        for proc in workers.values():
            assert proc.stdin
            proc.stdin.close()
            proc.wait()
        # Printed before the stores are removed (removing 2 x N items takes a while).
        rows = {key: {m: round(statistics.median(s[m] for s in got), 2) for m in ("ms", "cpu_ms", "requests", "bytes")}
                for key, got in samples.items()}
        for (label, n), row in rows.items():
            print(json.dumps({"tree": label, "n": n} | row), flush=True)
        small, large = min(args.n), max(args.n)
        for label in codes:
            a, b = rows[label, small], rows[label, large]
            print(json.dumps({"tree": label, f"ratio {large:,} / {small:,}": {
                m: round(b[m] / a[m], 2) if a[m] else None for m in a}}), flush=True)
        if "baseline" in codes:
            for n in args.n:
                a, b = rows["baseline", n], rows["this", n]
                print(json.dumps({f"this / baseline at {n:,}": {m: round(b[m] / a[m], 2) if a[m] else None for m in a}}),
                      flush=True)


if __name__ == "__main__":
    main()
