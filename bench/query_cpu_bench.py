"""The in-process query mix of ``index_bench.py`` timed in CPU time as well as wall time, for this checkout
and (interleaved, same run) another commit's: on a shared, loaded machine a query's wall time counts the
other jobs' turns on the cores, its CPU time mostly not.

    python bench/query_cpu_bench.py --n 1000000 --baseline DIR [--workdir /dev/shm/x] [--runs 2] [--repeat 30]

Reads the stores ``index_bench.py`` builds (``--workdir``, default /tmp: ``index-bench-<now|base>-<n>-bulk``;
run it first). Per checkout and run, a fresh process (PYTHONPATH = that checkout) loads the index, answers
each query once (lazy columns, grid), then ``--repeat`` times: p50 and min of CPU and wall ms per query.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def child(uri: str, repeat: int) -> dict[str, dict[str, float]]:
    from chalicelib.stac.api import StacApi
    from chalicelib.store import open_store
    sys.path.insert(0, str(HERE))
    from stac_bench import SEARCHES
    api, base = StacApi(open_store(uri)), "http://localhost/stac"
    mix: dict[str, Any] = {"100 items of one collection": lambda: api.items(base, "dataset", {"limit": ["100"]})}
    for label, body in SEARCHES.items():
        mix[label] = lambda body=body: api.search_post(base, body)
    out = {}
    for label, fn in mix.items():
        fn()
        cpu, wall = [], []
        for _ in range(repeat):
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu.append((time.process_time() - c) * 1000)
            wall.append((time.perf_counter() - w) * 1000)
        out[label] = {"cpu_p50": statistics.median(cpu), "cpu_min": min(cpu), "wall_p50": statistics.median(wall)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    variants = [("now", REPO)] + ([("base", args.baseline.resolve())] if args.baseline else [])
    print(f"# {time.strftime('%H:%M:%S')} load average {os.getloadavg()}", flush=True)
    runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name, _ in variants}
    for _ in range(args.runs):  # interleaved: now, base, now, base...
        for name, root in variants:
            uri = (args.workdir / f"index-bench-{name}-{args.n}-bulk").as_uri()
            env = dict(os.environ, PYTHONPATH=str(root), MALLOC_ARENA_MAX="2")
            proc = subprocess.run([sys.executable, str(HERE / "query_cpu_bench.py"), "--child", uri, str(args.repeat)],
                                  cwd=root, env=env, capture_output=True, text=True, check=True, timeout=7200)
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(name, json.dumps(runs[name][-1]), flush=True)
    print(f"# {time.strftime('%H:%M:%S')} load average {os.getloadavg()}")
    names = [name for name, _ in variants]
    head = ["query"] + [f"{n} {k}" for k in ("CPU p50", "CPU min", "wall p50") for n in names]
    if len(names) > 1:
        head += ["CPU p50 now / base"]
    print(f"N = {args.n:,} (medians over {args.runs} processes)")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for label in runs[names[0]][0]:
        cell = {(n, k): statistics.median(r[label][k] for r in runs[n]) for n in names
                for k in ("cpu_p50", "cpu_min", "wall_p50")}
        row = [label] + [f"{cell[(n, k)]:.2f}" for k in ("cpu_p50", "cpu_min", "wall_p50") for n in names]
        if len(names) > 1:
            row.append(f"{cell[('now', 'cpu_p50')] / cell[('base', 'cpu_p50')]:.2f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
