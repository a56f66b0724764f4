"""Where a bulk load's CPU goes: ``publish_paths`` of N generated items into an empty store, then N more,
with the CPU of each stage per item, in the publishing process and in the parsing workers.

    python bench/ingest_stages.py --n 100000 [--workdir /dev/shm]

Publishing process: its stages timed with ``process_time`` (its other threads are idle meanwhile, but for
the flusher: the figures are CPU, not wall). Workers: their whole CPU (``RUSAGE_CHILDREN``), and three
tasks' stages parsed in this process after the loads as a worker parses them (parse, normalise and schema check, index rows,
item file writes). Load average printed: on a shared machine compare CPU, not wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from harness import REPO  # noqa: F401  (first: puts the repository on sys.path)

from chalicelib.stac import index, publish, sources
from chalicelib.store.local import LocalStore
from ingest_bench import write_items


def _timed(owner: Any, name: str, label: str, into: dict[str, float], clock: Callable[[], float]) -> None:
    inner = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            into[label] += clock() - started
    setattr(owner, name, timed)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    stages: dict[str, float] = defaultdict(float)
    _timed(publish._Bulk, "take", "main: take results", stages, time.process_time)
    _timed(LocalStore, "put_many", "main: item writes (rewrites)", stages, time.process_time)
    _timed(index.SearchIndex, "add_encoded", "main: index segments", stages, time.process_time)
    _timed(publish._Listing, "apply", "main: catalog (in process, or handing to workers)", stages, time.process_time)
    _timed(index.SearchIndex, "optimize", "main: index packing", stages, time.process_time)
    with tempfile.TemporaryDirectory(prefix="ingest-stages-", dir=args.workdir) as tmp:
        work = Path(tmp)
        store = LocalStore(work / "store")
        for label, prefix in (("into an empty store", "item-"), (f"into a {args.n:,}-item store", "more-")):
            source = work / f"{prefix}.ndjson"
            write_items(source, args.n, prefix)
            stages.clear()
            before, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            published = publish.publish_paths(store, [source], progress=False).published
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            workers = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
            main_cpu = time.process_time() - before
            print(json.dumps({"run": f"{published:,} {label}", "wall_s": round(wall, 1),
                              "main_us_per_item": round(main_cpu / published * 1e6, 1),
                              "workers_us_per_item": round(workers / published * 1e6, 1)}
                             | {k: round(v / published * 1e6, 1) for k, v in stages.items()}), flush=True)
        # Three tasks' worker stages, in this process as a worker parses them (warm: a task parsed first).
        worker: dict[str, float] = defaultdict(float)
        _timed(sources, "parse", "worker: parse JSON", worker, _cpu)
        _timed(sources, "normalize_timed", "worker: normalise + schema check", worker, _cpu)
        _timed(index, "encode_part", "worker: index rows", worker, _cpu)
        _timed(sources, "_write", "worker: item file writes", worker, _cpu)
        shutil.rmtree(work / "store")
        tasks = sources.tasks([work / "item-.ndjson"])
        kept: dict[str, Any] = {}  # as a worker: dictionaries trained on its first task, no cycle collection
        with publish._no_cycle_collection():
            sources.parse_task(next(tasks), None, LocalStore(work / "store"), 1, kept)
        worker.clear()
        count, started = 0, _cpu()
        for _, task in zip(range(3), tasks):
            with publish._no_cycle_collection():
                count += len(sources.parse_task(task, None, LocalStore(work / "store"), 1, kept).items)
        total = _cpu() - started
        print(json.dumps({"worker stages (us/item, os.times: 10 ms resolution)": {
            k: round(v / count * 1e6, 1) for k, v in worker.items()} | {"parse_task total": round(total / count * 1e6, 1)}}))
    print(json.dumps({"load average": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
