"""``stacflow check`` at scale: the whole command on stores of N generated items, this tree against
a baseline checkout, interleaved.

    python bench/check_bench.py --n 10000 50000 100000 [--baseline DIR] [--workdir DIR] [--rounds 1]
                                [--timeout S] [--keep]

Each store is built once by ``stacflow publish`` of the shared synthetic items (``ingest_bench``'s
inputs, this tree's code) under ``--workdir`` (a tmpfs such as ``/dev/shm`` measures the checker, not
the disk), then checked by each tree in turn, ``--rounds`` times: wall time, CPU time (user + system,
steadier than wall on a shared machine), the peak RSS of the command (its VmHWM), the items checked
and the problems found (0 expected: both trees must agree). ``--baseline DIR``: a checkout of another
commit (``git archive <commit> | tar -x -C DIR``). ``--timeout S``: a run still going after S seconds
is stopped and reported as such (the baseline was quadratic: 200,000 items did not finish in 18 min).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO  # first: puts REPO on sys.path

from ingest_bench import _sample_tree, publish, write_items


def check(code: Path, store: Path, timeout: float) -> dict[str, Any]:
    """One ``stacflow check`` child run from ``code``: wall s, CPU s, peak RSS MB, its counts."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "check", "--store", store.as_uri()],
                                cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), stdout=out,
                                stderr=subprocess.DEVNULL)
        timer = _kill_after(proc, timeout)
        peaks = _sample_tree(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - started
        row: dict[str, Any] = {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                               "user_s": round(usage.ru_utime, 1), "sys_s": round(usage.ru_stime, 1),
                               "peak_rss_mb": round(peaks["main_hwm"] / 2**20)}
        if wall >= timeout:
            return dict(row, stopped_after_s=timeout)
        out.seek(0)
        report = json.loads(out.read().decode().strip().splitlines()[-1])
    assert os.waitstatus_to_exitcode(status) in (0, 1), status
    return dict(row, items=report["items"], problems=len(report["problems"]))


def _kill_after(proc: subprocess.Popen[bytes], seconds: float) -> Any:
    import threading
    timer = threading.Timer(seconds, proc.kill)
    timer.start()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--baseline", type=Path, help="a checkout of another commit, run interleaved")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the stores (reused by the next run)")
    args = parser.parse_args()
    trees = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    for n in args.n:
        store = args.workdir / f"check-bench-{n}"
        if not (store / "catalog.json").exists():
            source = args.workdir / f"check-bench-{n}.ndjson"
            write_items(source, n, "item-")
            store.mkdir(parents=True, exist_ok=True)
            publish(REPO, store, source)
            source.unlink()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, code in trees.items():
                runs[name].append(check(code, store, args.timeout))
                print(json.dumps({"n": n, "tree": name, **runs[name][-1]}), file=sys.stderr)
        results[str(n)] = runs
        if "baseline" in runs:
            best = {name: min(rows, key=lambda row: row["cpu_s"]) for name, rows in runs.items()}
            results[str(n)]["cpu_ratio"] = round(best["baseline"]["cpu_s"] / max(best["this"]["cpu_s"], 0.1), 2)
        if not args.keep:
            shutil.rmtree(store)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
