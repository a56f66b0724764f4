"""Tracking benchmark: the real mlflow client against `stacflow serve` (local store) and against
`mlflow server` + SQLite on the same machine.

Workload per server: N runs x (10 params + 3 tags in one log_batch, 5 metrics x 100 steps in one
log_batch, set_terminated); search_runs with a filter and an order_by (p50/p95); get_metric_history
for 20 runs. Also: service start time and RSS, search_runs p50 at --search-runs runs (stacflow only),
and store requests per call (in-process, over a counting local store).

    .venv/bin/python bench/mlflow_bench.py [--runs 100] [--search-runs 1000] [--skip-mlflow]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """RSS of a process and its children (mlflow server runs workers in child processes)."""
    total = 0
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.append(int(child))
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def start(cmd: list[str], health: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(health, timeout=1).read()
            return proc, time.perf_counter() - t0
        except Exception:
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{cmd[0]} did not start")
            time.sleep(0.02)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def workload(uri: str, n_runs: int, label: str) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):  # the client prints a "View run" line per run
        return _workload(uri, n_runs, label)


def _workload(uri: str, n_runs: int, label: str) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    client = MlflowClient(uri)
    out: dict[str, Any] = {}
    t_all = time.perf_counter()
    exp_id = client.create_experiment(f"bench-{label}-{time.time_ns()}")
    run_ids: list[str] = []
    t0 = time.perf_counter()
    for i in range(n_runs):
        run = client.create_run(exp_id, run_name=f"run-{i}")
        run_ids.append(run.info.run_id)
    out["create_runs_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    for i, run_id in enumerate(run_ids):
        client.log_batch(run_id, params=[Param(f"p{k}", str(i * k)) for k in range(10)],
                         tags=[RunTag(f"t{k}", f"v{i % (k + 2)}") for k in range(3)])
        client.log_batch(run_id, metrics=[Metric(f"m{k}", (i + 1) / (s + 1) + k, now + s, s)
                                          for k in range(5) for s in range(100)])
        client.set_terminated(run_id)
    out["log_s"] = time.perf_counter() - t0
    searches = [timed(lambda: client.search_runs([exp_id], "metrics.m0 > 0.5 and params.p1 != '3'",
                                                 order_by=["metrics.m1 DESC"], max_results=100))
                for _ in range(30)]
    out["search_p50_ms"], out["search_p95_ms"] = pct(searches, 0.5), pct(searches, 0.95)
    t0 = time.perf_counter()
    for run_id in run_ids[:20]:
        assert len(client.get_metric_history(run_id, "m2")) == 100
    out["history_20_runs_s"] = time.perf_counter() - t0
    out["end_to_end_s"] = time.perf_counter() - t_all
    return out


def search_at_scale(uri: str, n_runs: int) -> dict[str, float]:
    """search_runs p50/p95 over an experiment of n_runs runs (runs are small: 3 params, 2 metrics)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from concurrent.futures import ThreadPoolExecutor
    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"scale-{time.time_ns()}")
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run_id = client.create_run(exp_id).info.run_id
        client.log_batch(run_id, metrics=[Metric("acc", (i % 97) / 97, now, 0), Metric("loss", 1 / (i + 1), now, 0)],
                         params=[Param("model", ["rf", "svm", "xgb"][i % 3]), Param("i", str(i)), Param("x", "y")])
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n_runs)))
    searches = [timed(lambda: client.search_runs([exp_id], "metrics.acc > 0.5 and params.model = 'rf'",
                                                 order_by=["metrics.loss ASC"], max_results=100))
                for _ in range(30)]
    # The same search as raw HTTP: the server's time without the client's protobuf decoding.
    body = json.dumps({"experiment_ids": [exp_id], "filter": "metrics.acc > 0.5 and params.model = 'rf'",
                       "order_by": ["metrics.loss ASC"], "max_results": 100}).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/search", data=body,
                                 headers={"Content-Type": "application/json"})
    raw = [timed(lambda: urllib.request.urlopen(req).read()) for _ in range(30)]
    return {"runs": n_runs, "search_p50_ms": pct(searches, 0.5), "search_p95_ms": pct(searches, 0.95),
            "search_http_p50_ms": pct(raw, 0.5), "search_http_p95_ms": pct(raw, 0.95)}


def store_requests_per_call() -> dict[str, dict[str, float]]:
    """Store requests each service call makes, warm process, over a counting local store."""
    from collections import Counter

    from chalicelib.store.local import LocalStore
    from chalicelib.tracking.service import TrackingService

    counts: Counter[str] = Counter()

    class CountingStore(LocalStore):
        def get(self, key, **kw):  # type: ignore[no-untyped-def]
            counts["GET"] += 1
            return super().get(key, **kw)

        def head(self, key):  # type: ignore[no-untyped-def]
            counts["HEAD"] += 1
            return super().head(key)

        def _put(self, key, body, **kw):  # type: ignore[no-untyped-def]
            counts["PUT"] += 1
            return super()._put(key, body, **kw)

        def list(self, prefix="", **kw):  # type: ignore[no-untyped-def]
            counts["LIST"] += 1
            return super().list(prefix, **kw)

    with tempfile.TemporaryDirectory() as tmp:
        svc = TrackingService(CountingStore(tmp, fsync=False))
        eid = svc.create_experiment("count", None, [])
        rid = svc.create_run({"experiment_id": eid, "start_time": 1})["run"]["info"]["run_id"]
        svc.get_run(rid)
        calls: dict[str, Callable[[], Any]] = {
            "log_batch(500 metrics)": lambda: svc.log_batch(
                rid, [{"key": f"m{k}", "value": s, "timestamp": 1, "step": s} for k in range(5) for s in range(100)],
                [], []),
            "log_batch(10 params, 3 tags)": lambda: svc.log_batch(
                rid, [], [{"key": f"p{time.time_ns()}", "value": "1"} for _ in range(10)],
                [{"key": f"t{k}", "value": "v"} for k in range(3)]),
            "get_run": lambda: svc.get_run(rid),
            "search_runs": lambda: svc.search_runs([eid], "metrics.m0 > 1", None, None, ["metrics.m1 DESC"], None),
            "get_metric_history": lambda: svc.get_metric_history(rid, "m1", None, None),
            "create_run": lambda: svc.create_run({"experiment_id": eid, "start_time": time.time_ns()}),
        }
        out = {}
        for name, call in calls.items():
            call()  # warm
            counts.clear()
            for _ in range(5):
                call()
            out[name] = {k: v / 5 for k, v in sorted(counts.items())}
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--skip-mlflow", action="store_true", help="only stacflow")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    py = sys.executable
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, started = start([py, "-m", "chalicelib.cli", "serve", "--port", str(port),
                               "--store", f"file://{tmp}/store"], f"http://127.0.0.1:{port}/mlflow/health")
        uri = f"http://127.0.0.1:{port}/mlflow"
        try:
            report["stacflow"] = {"start_s": started, "rss_mb_idle": rss_mb(proc.pid),
                                  **workload(uri, args.runs, "stacflow")}
            report["stacflow"]["rss_mb_after"] = rss_mb(proc.pid)
            if args.search_runs:
                report["stacflow"]["at_scale"] = search_at_scale(uri, args.search_runs)
                report["stacflow"]["rss_mb_after_scale"] = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        if not args.skip_mlflow:
            port = free_port()
            mlflow_bin = str(Path(py).parent / "mlflow")
            proc, started = start([mlflow_bin, "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                                   "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                                   "--default-artifact-root", f"{tmp}/artifacts"],
                                  f"http://127.0.0.1:{port}/health")
            try:
                report["mlflow_sqlite"] = {"start_s": started, "rss_mb_idle": rss_mb(proc.pid),
                                           **workload(f"http://127.0.0.1:{port}", args.runs, "mlflow")}
                report["mlflow_sqlite"]["rss_mb_after"] = rss_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait()
            report["speedup_end_to_end"] = (report["mlflow_sqlite"]["end_to_end_s"]
                                            / report["stacflow"]["end_to_end_s"])
    report["store_requests_per_call"] = store_requests_per_call()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
