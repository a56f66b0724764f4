"""Bulk ingest benchmark: ``stacflow publish`` of N generated items into an empty store and into a
store already holding N, and the store requests it makes per 1,000 items.

    python bench/ingest_bench.py --n 100000 [--baseline DIR]

Per run: wall time, items/s, CPU time (user + system: steadier than wall time on a shared machine)
and peak RSS of the child process. ``--baseline DIR``: a checkout of another commit (e.g. ``git
archive <commit> | tar -x -C DIR``) run on the same files, interleaved with this one. Then the
requests of publishing 1,000 items through ``InstrumentedStore`` (counted by S3 verb, as S3 bills
them), into an empty store and into one holding 1,000 items. pgstac's load of 100,000 items takes
5.9 s (16,900 items/s) on the reference machine (issue 13).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

from chalicelib.store.local import LocalStore
from chalicelib.stac.publish import publish_paths
from tests.helpers.stores import InstrumentedStore
from stac_bench import synthetic


def write_items(path: Path, n: int, prefix: str) -> None:
    with path.open("w") as fh:
        for item in synthetic(n):
            item["id"] = item["id"].replace("item-", prefix)
            fh.write(json.dumps(item) + "\n")


def publish(code: Path, store: Path, source: Path) -> dict[str, Any]:
    """One ``stacflow publish`` child: wall s, CPU s, peak RSS MB."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "publish", "--store", store.as_uri(), "-q",
                             str(source)], cwd=code, env=dict(os.environ, PYTHONPATH=str(code)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert os.waitstatus_to_exitcode(status) == 0 and not report["rejected"], report
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "items_per_s": round(report["published"] / wall)}


def requests_per_1000(workdir: Path) -> dict[str, dict[str, int]]:
    out = {}
    store = InstrumentedStore(LocalStore(workdir / "counted", fsync=False))
    for label, prefix in (("into an empty store", "cnt-a-"), ("into a 1,000-item store", "cnt-b-")):
        source = workdir / f"{prefix}.ndjson"
        write_items(source, 1000, prefix)
        store.calls.clear()
        publish_paths(store, [source], progress=False)
        out[label] = dict(sorted(store.calls.items())) | {"total": store.total}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the commit to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        first, second = work / "a.ndjson", work / "b.ndjson"
        write_items(first, args.n, "item-")
        write_items(second, args.n, "more-")
        codes = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
        results: dict[str, dict[str, Any]] = {}
        # Interleaved (the machine may be shared); the second file goes into the store the first filled.
        for source, into in ((first, "empty"), (second, f"{args.n:,}")):
            for label, code in codes.items():
                results[f"{label}: {args.n:,} into {into}"] = publish(code, work / label, source)
        for label, row in results.items():
            print(json.dumps({"run": label} | row), flush=True)
        print(json.dumps({"requests per 1,000 items": requests_per_1000(work)}), flush=True)


if __name__ == "__main__":
    main()
