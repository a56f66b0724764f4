"""MLflow web UI benchmark: time to a rendered runs table for a big experiment, and the UI's size.

    python bench/ui_bench.py --runs 1000 --repeat 3

Writes an experiment of ``--runs`` runs (params, tags and a 5-step metric history each, through the
tracking service straight into a local store) and a 24-run baseline experiment into the same store,
serves it with ``stacflow serve`` (MLflow's UI from build/ui/mlflow, ``make setup``) and opens
``/mlflow/#/experiments/<id>/runs`` in headless Chromium: time from navigation until the table shows
its first row (the newest run), cold (new browser context, nothing cached) and warm (same context,
reloaded: hashed bundle files from cache), p50 over ``--repeat``. The ratio big / baseline says
whether the table's cost grows with the experiment (the UI asks for 100 runs a page, newest first). Then the
bundle's size on disk (files, bytes, gzip bytes) and what the browser transferred on a cold load.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import free_port, serving, stacflow_serve  # first: puts REPO on sys.path

from scripts.build_mlflow_ui import DEFAULT_DEST, build
from tests.helpers.browser import chromium

BASELINE_RUNS = 24
STEPS = 5


def write_experiment(store_uri: str, name: str, runs: int) -> str:
    """An experiment of ``runs`` finished runs, written through the tracking service (fast, in-process)."""
    from chalicelib import services
    from chalicelib.store.local import LocalStore
    services.configure(store=LocalStore(Path(store_uri.removeprefix("file://")), fsync=False))
    tracking = services.tracking()
    eid = tracking.create_experiment(name, None, [])
    for i in range(runs):
        rid = tracking.create_run({"experiment_id": eid, "run_name": f"run-{i:05d}"}).info.run_id
        metrics = [{"key": "loss", "value": 1.0 / (i + s + 1), "timestamp": 1_700_000_000_000 + s, "step": s}
                   for s in range(STEPS)]
        tracking.log_batch(rid, metrics, [{"key": "lr", "value": str(i)}], [{"key": "team", "value": "eo"}])
        tracking.update_run_info(rid, "FINISHED", 1_700_000_000_000 + STEPS, None)
    services.configure()
    return eid


def time_table(context: Any, url: str, runs: int) -> float:
    """Seconds from navigation to the table's first row (the newest run) on screen."""
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.get_by_text(f"run-{runs - 1:05d}", exact=True).wait_for(timeout=120_000)
    took = time.perf_counter() - started
    page.close()
    return took


def measure(browser: Any, base: str, eid: str, runs: int, repeat: int) -> dict[str, float]:
    url = f"{base}/mlflow/#/experiments/{eid}/runs"
    cold, warm = [], []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        cold.append(time_table(context, url, runs))
        warm.append(time_table(context, url, runs))
        context.close()
    return {"cold": statistics.median(cold), "warm": statistics.median(warm)}


def mlflow_server_baseline(browser: Any, tmp: str, runs: int, repeat: int) -> dict[str, float]:
    """The same UI and table against ``mlflow server`` + SQLite (seeded with the mlflow client)."""
    import shutil
    from tests.helpers.mlflow_seed import seed
    port = free_port()
    cmd = [shutil.which("mlflow") or "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
           "--artifacts-destination", f"{tmp}/mlflow-artifacts", "--port", str(port), "--static-prefix", "/mlflow"]
    with serving(cmd, port, "/mlflow/health") as served:
        seeded = seed(served.url + "/mlflow", runs=runs, steps=STEPS, models=False, name_width=5)
        return measure(browser, served.url, seeded.experiment_id, runs, repeat)


def transferred(browser: Any, base: str, eid: str, runs: int) -> tuple[int, int]:
    """(requests, bytes) a cold load of the runs table fetched, bodies as received."""
    sizes: list[int] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
    page.goto(f"{base}/mlflow/#/experiments/{eid}/runs")
    page.get_by_text(f"run-{runs - 1:05d}", exact=True).wait_for(timeout=120_000)
    page.wait_for_timeout(1_000)
    context.close()
    return len(sizes), sum(sizes)


def bundle_size(root: Path) -> tuple[int, int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return (len(files), sum(p.stat().st_size for p in files),
            sum(len(gzip.compress(p.read_bytes(), 6)) for p in files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlflow-server", action="store_true",
                        help=f"also time the same UI against `mlflow server` + SQLite with {BASELINE_RUNS} runs")
    args = parser.parse_args()
    if not (DEFAULT_DEST / "index.html").is_file():
        build()
    with tempfile.TemporaryDirectory() as tmp:
        store_uri = f"file://{tmp}/store"
        started = time.perf_counter()
        big = write_experiment(store_uri, "big", args.runs)
        small = write_experiment(store_uri, "baseline", BASELINE_RUNS)
        print(f"wrote {args.runs} + {BASELINE_RUNS} runs in {time.perf_counter() - started:.1f} s")
        with stacflow_serve(store_uri) as served, chromium() as browser:
            base_t = measure(browser, served.url, small, BASELINE_RUNS, args.repeat)
            big_t = measure(browser, served.url, big, args.runs, args.repeat)
            requests, received = transferred(browser, served.url, big, args.runs)
        with chromium() as browser:
            ref_t = mlflow_server_baseline(browser, tmp, BASELINE_RUNS, args.repeat) if args.mlflow_server else None
    print(f"runs table, {BASELINE_RUNS} runs: cold {base_t['cold']:.2f} s, warm {base_t['warm']:.2f} s (p50 of "
          f"{args.repeat})")
    print(f"runs table, {args.runs} runs: cold {big_t['cold']:.2f} s, warm {big_t['warm']:.2f} s "
          f"(target < 2 s); ratio to {BASELINE_RUNS} runs: cold {big_t['cold'] / base_t['cold']:.2f}, "
          f"warm {big_t['warm'] / base_t['warm']:.2f}")
    if ref_t:
        print(f"runs table, {BASELINE_RUNS} runs on mlflow server + SQLite: cold {ref_t['cold']:.2f} s, warm "
              f"{ref_t['warm']:.2f} s; stacflow / mlflow server: cold {base_t['cold'] / ref_t['cold']:.2f}, "
              f"warm {base_t['warm'] / ref_t['warm']:.2f}")
    files, size, gz = bundle_size(DEFAULT_DEST)
    print(f"MLflow UI bundle: {files} files, {size / 1e6:.1f} MB on disk, {gz / 1e6:.1f} MB gzipped")
    print(f"cold load of the runs table: {requests} requests, {received / 1e6:.1f} MB received")


if __name__ == "__main__":
    main()
