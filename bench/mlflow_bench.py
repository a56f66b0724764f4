"""Tracking benchmark: the real mlflow client against `stacflow serve` (local store) and against
`mlflow server` + SQLite on the same machine.

Workload per server: N runs x (10 params + 3 tags in one log_batch, 5 metrics x 100 steps in one
log_batch, set_terminated); search_runs with a filter and an order_by (p50/p95); get_metric_history
for 20 runs. Also: service start time and RSS, search_runs p50 at --search-runs runs (stacflow only:
one filter repeated, and 30 different filters), and store requests per call (in-process, over a
counting local store). Ratios: the peer's time over ours, whole workload and search p50 (through the
client, and as raw HTTP: the servers' time without the client's decoding, which both pay).

    .venv/bin/python bench/mlflow_bench.py [--runs 100] [--search-runs 1000] [--skip-mlflow] [--s3]
        [--baseline DIR] [--peer-search-runs N] [--rounds K] [--paired N]

``--baseline DIR``: also `stacflow serve` from a checkout of another commit (``git archive <commit> |
tar -x -C DIR``), same workload, same run. ``--peer-search-runs N``: the at-scale search against
`mlflow server` too, its SQLite database filled with N runs through MLflow's own SQL store (going
through its server would take most of an hour). Before the timed workloads the client runs a small
one against every server, so its one-time imports are paid by none of them. Each server's CPU
time over the workload (its process and children) is reported beside the wall time, and so is the
client's own CPU time (this process's: JSON, protobuf, ``requests``), which no server can take away.

``--paired N`` (with ``--baseline``): the paired mode, for a change smaller than the noise of a shared
machine: N runs' calls alternated run by run between the two trees (see ``paired``).

``--rounds K``: the interleaved mode. Every server is started once and kept up; then K rounds each run
the whole workload against every server in turn (the order rotated each round), so a change of load
on a shared machine weighs on all of them alike. Reported: per server the median of each phase over
the rounds, and per round the ratios (the peer's time over ours) side by side, with their median.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from harness import REPO, elapsed_ms, free_port, memory_mb, percentiles, serving, stacflow_serve


def workload(uri: str, n_runs: int, label: str) -> dict[str, Any]:
    started = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the client prints a "View run" line per run
        out = _workload(uri, n_runs, label)
    out["client_cpu_s"] = time.process_time() - started
    return out


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
    searches = [elapsed_ms(lambda: client.search_runs([exp_id], "metrics.m0 > 0.5 and params.p1 != '3'",
                                                      order_by=["metrics.m1 DESC"], max_results=100))
                for _ in range(30)]
    out["search_p50_ms"], out["search_p95_ms"] = percentiles(searches)
    # The same search as raw HTTP: the server's time without the client's protobuf decoding.
    body = json.dumps({"experiment_ids": [exp_id], "filter": "metrics.m0 > 0.5 and params.p1 != '3'",
                       "order_by": ["metrics.m1 DESC"], "max_results": 100}).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/search", data=body,
                                 headers={"Content-Type": "application/json"})
    out["search_http_p50_ms"], out["search_http_p95_ms"] = percentiles(
        [elapsed_ms(lambda: urllib.request.urlopen(req).read()) for _ in range(30)])
    t0 = time.perf_counter()
    for run_id in run_ids[:20]:
        assert len(client.get_metric_history(run_id, "m2")) == 100
    out["history_20_runs_s"] = time.perf_counter() - t0
    out["end_to_end_s"] = time.perf_counter() - t_all
    return out


def _scale_run(i: int, now: int) -> tuple[list[Any], list[Any]]:
    from mlflow.entities import Metric, Param
    return ([Metric("acc", (i % 97) / 97, now, 0), Metric("loss", 1 / (i + 1), now, 0)],
            [Param("model", ["rf", "svm", "xgb"][i % 3]), Param("i", str(i)), Param("x", "y")])


def populate(uri: str, n_runs: int) -> str:
    """An experiment of n_runs small runs (3 params, 2 metrics), written through the client."""
    from mlflow import MlflowClient
    from concurrent.futures import ThreadPoolExecutor
    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"scale-{time.time_ns()}")
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run_id = client.create_run(exp_id).info.run_id
        metrics, params = _scale_run(i, now)
        client.log_batch(run_id, metrics=metrics, params=params)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n_runs)))
    return exp_id


def populate_sqlite(db_uri: str, artifacts: str, n_runs: int) -> str:
    """The same experiment written straight into `mlflow server`'s database with MLflow's SQL store."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    store = SqlAlchemyStore(db_uri, artifacts)
    exp_id = store.create_experiment(f"scale-{time.time_ns()}")
    now = int(time.time() * 1000)
    for i in range(n_runs):
        run_id = store.create_run(exp_id, "bench", now, [], f"r{i}").info.run_id
        metrics, params = _scale_run(i, now)
        store.log_batch(run_id, metrics, params, [])
    store.engine.dispose()
    return str(exp_id)


def search_at_scale(uri: str, n_runs: int, exp_id: str | None = None) -> dict[str, float]:
    """search_runs p50/p95 over an experiment of n_runs runs (``exp_id``, else written now): 100 runs a
    page, and the client's default page (1,000 runs)."""
    from mlflow import MlflowClient
    client = MlflowClient(uri)
    exp_id = exp_id or populate(uri, n_runs)
    default_page = [elapsed_ms(lambda: client.search_runs([exp_id], "metrics.acc > 0.5 and params.model = 'rf'",
                                                           order_by=["metrics.loss ASC"]))
                    for _ in range(10)]
    searches = [elapsed_ms(lambda: client.search_runs([exp_id], "metrics.acc > 0.5 and params.model = 'rf'",
                                                      order_by=["metrics.loss ASC"], max_results=100))
                for _ in range(30)]
    # 30 different filters: no search repeats one before it (what a cache of results cannot serve).
    varied = [elapsed_ms(lambda k=k: client.search_runs([exp_id], f"metrics.acc > {k / 31:.4f} and params.model = 'rf'",
                                                         order_by=["metrics.loss ASC"], max_results=100))
              for k in range(30)]
    # The same search as raw HTTP: the server's time without the client's protobuf decoding.
    body = json.dumps({"experiment_ids": [exp_id], "filter": "metrics.acc > 0.5 and params.model = 'rf'",
                       "order_by": ["metrics.loss ASC"], "max_results": 100}).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/search", data=body,
                                 headers={"Content-Type": "application/json"})
    raw = [elapsed_ms(lambda: urllib.request.urlopen(req).read()) for _ in range(30)]
    (search_p50, search_p95), (http_p50, http_p95) = percentiles(searches), percentiles(raw)
    varied_p50, varied_p95 = percentiles(varied)
    return {"runs": n_runs, "search_default_page_1000_p50_ms": percentiles(default_page)[0],
            "search_p50_ms": search_p50, "search_p95_ms": search_p95,
            "search_http_p50_ms": http_p50, "search_http_p95_ms": http_p95,
            "search_varied_filters_p50_ms": varied_p50, "search_varied_filters_p95_ms": varied_p95,
            **client_decoding(urllib.request.urlopen(req).read())}


def client_decoding(body: bytes) -> dict[str, float]:
    """What the mlflow client spends on a search page once it has the bytes, as its REST store does
    (JSON, protobuf ``ParseDict``, ``Run`` entities): CPU milliseconds (this thread's), per page and per run."""
    from mlflow.entities import Run
    from mlflow.protos.service_pb2 import SearchRuns
    from mlflow.utils.proto_json_utils import parse_dict

    def decode() -> int:
        msg = SearchRuns.Response()
        parse_dict(json.loads(body), msg)
        return len([Run.from_proto(run) for run in msg.runs])
    runs = decode()
    samples = []
    for _ in range(20):
        started = time.thread_time()
        decode()
        samples.append((time.thread_time() - started) * 1000)
    page_ms = percentiles(samples)[0]
    return {"page_runs": runs, "page_bytes": len(body), "client_decode_page_cpu_ms": round(page_ms, 3),
            "client_decode_per_run_cpu_ms": round(page_ms / max(runs, 1), 4)}


def store_requests_per_call() -> dict[str, dict[str, float]]:
    """Store requests each service call makes, warm process, over a counting local store."""
    from chalicelib.store.local import LocalStore
    from chalicelib.tracking.service import TrackingService
    from tests.helpers.stores import InstrumentedStore

    with tempfile.TemporaryDirectory() as tmp:
        store = InstrumentedStore(LocalStore(tmp, fsync=False))
        counts = store.calls
        svc = TrackingService(store)
        eid = svc.create_experiment("count", None, [])
        rid = svc.create_run({"experiment_id": eid, "start_time": 1}).info.run_id
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


def s3_workload(n_runs: int) -> dict[str, Any]:
    """The same workload with the store in S3: moto's server over HTTP, as the tests use."""
    import boto3
    port = free_port()
    with serving([str(Path(sys.executable).parent / "moto_server"), "-p", str(port)], port, "/moto-api/") as moto:
        os.environ.update(AWS_ENDPOINT_URL=moto.url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
        boto3.client("s3").create_bucket(Bucket="bench-tracking")
        with stacflow_serve("s3://bench-tracking/store", "/mlflow/health") as server:
            out = {"start_s": server.start_s, **workload(server.url + "/mlflow", n_runs, "s3")}
            out["rss_mb_after"] = memory_mb(server.proc.pid, children=True)
            return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its current children."""
    total = 0.0
    for p in [pid, *(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(server: Any, uri: str, n_runs: int, label: str) -> dict[str, Any]:
    """The workload against one server, with the server's start time, RSS and CPU time."""
    pid = server.proc.pid
    workload(uri, 3, f"{label}-warm")  # the client's and the server's one-time costs, untimed
    out: dict[str, Any] = {"start_s": server.start_s, "rss_mb_idle": memory_mb(pid, children=True)}
    cpu0 = cpu_s(pid)
    out.update(workload(uri, n_runs, label))
    out["server_cpu_s"] = cpu_s(pid) - cpu0
    out["rss_mb_after"] = memory_mb(pid, children=True)
    return out


PHASES = ["create_runs_s", "log_s", "search_p50_ms", "search_http_p50_ms", "history_20_runs_s", "end_to_end_s",
          "server_cpu_s", "client_cpu_s"]


def interleaved(servers: dict[str, Any], n_runs: int, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds of the workload against every server (name -> (server, uri)) in turn, the order
    rotated each round; each server's median per phase, and each round's ratios against the peer."""
    names = list(servers)
    for name, (server, uri) in servers.items():
        workload(uri, 3, f"{name}-warm")  # the client's and the server's one-time costs, untimed
    per_round: list[dict[str, dict[str, Any]]] = []
    for r in range(rounds):
        results: dict[str, dict[str, Any]] = {}
        for name in names[r % len(names):] + names[:r % len(names)]:
            server, uri = servers[name]
            cpu0 = cpu_s(server.proc.pid)
            results[name] = workload(uri, n_runs, f"{name}-{r}")
            results[name]["server_cpu_s"] = cpu_s(server.proc.pid) - cpu0
        results["load_average"] = {"1min": os.getloadavg()[0]}
        per_round.append(results)
    out: dict[str, Any] = {"rounds": rounds, "per_round": per_round}
    for name in names:
        out[name] = {p: statistics.median(rnd[name][p] for rnd in per_round) for p in PHASES}
    if "mlflow_sqlite" in servers:
        for name in (n for n in names if n != "mlflow_sqlite"):
            ratios = [{p: rnd["mlflow_sqlite"][p] / max(rnd[name][p], 1e-9)
                       for p in ("end_to_end_s", "log_s", "create_runs_s", "server_cpu_s", "search_p50_ms")}
                      for rnd in per_round]
            out[f"{name}_vs_mlflow"] = {"per_round_end_to_end": [round(x["end_to_end_s"], 2) for x in ratios],
                                        **{f"median_{p}": statistics.median(x[p] for x in ratios) for p in ratios[0]}}
    if "baseline" in servers:
        out["stacflow_vs_baseline"] = {
            "per_round_end_to_end": [round(rnd["baseline"]["end_to_end_s"] / rnd["stacflow"]["end_to_end_s"], 2)
                                     for rnd in per_round],
            "median_end_to_end": statistics.median(rnd["baseline"]["end_to_end_s"] / rnd["stacflow"]["end_to_end_s"]
                                                   for rnd in per_round)}
    return out


def user_sys_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def paired(servers: dict[str, Any], n_runs: int) -> dict[str, Any]:
    """The workload's per-run calls (create_run, the two log_batch, set_terminated) against every server
    (name -> (server, uri)), alternated run by run (the order swapped each run), so a change of load
    on a shared machine weighs on each run's pair alike; then the filtered search as raw HTTP, alternated
    the same way. Per server: each run's wall time (median, mean), its CPU per run (user, system), the
    search's p50; and the median of the per-run ratios against the first server."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    names = list(servers)
    for name, (_, uri) in servers.items():
        workload(uri, 3, f"{name}-warm")
    clients = {name: MlflowClient(uri) for name, (_, uri) in servers.items()}
    exps = {name: client.create_experiment(f"paired-{name}-{time.time_ns()}") for name, client in clients.items()}
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpu = {name: [0.0, 0.0] for name in names}
    now = int(time.time() * 1000)
    for i in range(n_runs):
        for name in names if i % 2 == 0 else names[::-1]:
            client, pid = clients[name], servers[name][0].proc.pid
            user0, sys0 = user_sys_s(pid)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                run_id = client.create_run(exps[name], run_name=f"run-{i}").info.run_id
                client.log_batch(run_id, params=[Param(f"p{k}", str(i * k)) for k in range(10)],
                                 tags=[RunTag(f"t{k}", f"v{i % (k + 2)}") for k in range(3)])
                client.log_batch(run_id, metrics=[Metric(f"m{k}", (i + 1) / (s + 1) + k, now + s, s)
                                                  for k in range(5) for s in range(100)])
                client.set_terminated(run_id)
            walls[name].append(time.perf_counter() - started)
            user1, sys1 = user_sys_s(pid)
            cpu[name][0] += user1 - user0
            cpu[name][1] += sys1 - sys0
    searches: dict[str, list[float]] = {name: [] for name in names}
    for j in range(100):
        for name in names if j % 2 == 0 else names[::-1]:
            body = json.dumps({"experiment_ids": [exps[name]], "filter": "metrics.m0 > 0.5 and params.p1 != '3'",
                               "order_by": ["metrics.m1 DESC"], "max_results": 100}).encode()
            req = urllib.request.Request(f"{servers[name][1]}/api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
            searches[name].append(elapsed_ms(lambda: urllib.request.urlopen(req).read()))
    out: dict[str, Any] = {"runs": n_runs}
    for name in names:
        out[name] = {"run_wall_median_ms": 1000 * statistics.median(walls[name]),
                     "run_wall_mean_ms": 1000 * statistics.mean(walls[name]),
                     "server_user_ms_per_run": 1000 * cpu[name][0] / n_runs,
                     "server_sys_ms_per_run": 1000 * cpu[name][1] / n_runs,
                     "search_http_p50_ms": statistics.median(searches[name])}
    first = names[0]
    for name in names[1:]:
        out[f"{name}_over_{first}"] = statistics.median(b / a for a, b in zip(walls[first], walls[name]))
    return out


def main_interleaved(args: argparse.Namespace, codes: dict[str, Path], tmp: str) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        servers: dict[str, Any] = {}
        for name, code in codes.items():
            server = stack.enter_context(stacflow_serve(f"file://{tmp}/store-{name}", "/mlflow/health", code=code))
            servers[name] = (server, server.url + "/mlflow")
        if not args.skip_mlflow:
            port = free_port()
            server = stack.enter_context(serving(
                [str(Path(sys.executable).parent / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1",
                 "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                 "--default-artifact-root", f"{tmp}/artifacts"], port, "/health"))
            servers["mlflow_sqlite"] = (server, server.url)
        return interleaved(servers, args.runs, args.rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--peer-search-runs", type=int, default=0)
    parser.add_argument("--skip-mlflow", action="store_true", help="only stacflow")
    parser.add_argument("--s3", action="store_true", help="also stacflow over S3 (a moto server on loopback)")
    parser.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=0,
                        help="interleaved mode: K rounds of the workload against every server in turn (no at-scale "
                             "search: --search-runs is not run)")
    parser.add_argument("--paired", type=int, default=0,
                        help="paired mode: N runs' calls alternated run by run between this tree and --baseline "
                             "(no peer): per-run wall and server CPU, and the raw search, side by side")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    py = sys.executable
    report: dict[str, Any] = {"load_average_before": os.getloadavg()}
    codes = {"stacflow": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    if args.paired:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            servers = {}
            for name, code in codes.items():
                server = stack.enter_context(stacflow_serve(f"file://{tmp}/store-{name}", "/mlflow/health", code=code))
                servers[name] = (server, server.url + "/mlflow")
            report["paired"] = paired(servers, args.paired)
        report["load_average_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        return 0
    if args.rounds:
        with tempfile.TemporaryDirectory() as tmp:
            report["interleaved"] = main_interleaved(args, codes, tmp)
        report["load_average_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        inter = report["interleaved"]
        names = [n for n in ("stacflow", "baseline", "mlflow_sqlite") if n in inter]
        print(f"| phase (median of {args.rounds} interleaved rounds) | " + " | ".join(names) + " |\n|---|"
              + "---:|" * len(names), flush=True)
        for phase in PHASES:
            print(f"| {phase} | " + " | ".join(f"{inter[n][phase]:.3f}" for n in names) + " |", flush=True)
        for key in (k for k in inter if k.endswith("_vs_mlflow") or k.endswith("_vs_baseline")):
            print(key, json.dumps(inter[key]), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in codes.items():
            with stacflow_serve(f"file://{tmp}/store-{name}", "/mlflow/health", code=code) as server:
                uri = server.url + "/mlflow"
                report[name] = measured(server, uri, args.runs, name)
                if args.search_runs:
                    report[name]["at_scale"] = search_at_scale(uri, args.search_runs)
                    report[name]["rss_mb_after_scale"] = memory_mb(server.proc.pid, children=True)
        if args.s3:
            report["stacflow_s3"] = s3_workload(args.runs)
        if not args.skip_mlflow:
            port = free_port()
            mlflow_bin = str(Path(py).parent / "mlflow")
            db = f"sqlite:///{tmp}/mlflow.db"
            scale_exp = populate_sqlite(db, f"{tmp}/artifacts", args.peer_search_runs) \
                if args.peer_search_runs else None
            with serving([mlflow_bin, "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                          "--backend-store-uri", db, "--default-artifact-root", f"{tmp}/artifacts"],
                         port, "/health") as server:
                report["mlflow_sqlite"] = measured(server, server.url, args.runs, "mlflow")
                if scale_exp:
                    report["mlflow_sqlite"]["at_scale"] = search_at_scale(server.url, args.peer_search_runs,
                                                                          scale_exp)
            peer = report["mlflow_sqlite"]
            for name in codes:
                ours = report[name]
                report[f"{name}_vs_mlflow"] = {
                    "end_to_end": peer["end_to_end_s"] / ours["end_to_end_s"],
                    "server_cpu": peer["server_cpu_s"] / max(ours["server_cpu_s"], 1e-9),
                    "search_p50": peer["search_p50_ms"] / ours["search_p50_ms"],
                    "search_http_p50": peer["search_http_p50_ms"] / ours["search_http_p50_ms"]}
        report["load_average_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))  # before the stores' removal, which takes a while at 10,000 runs
        phases = PHASES
        names = [n for n in ("stacflow", "baseline", "mlflow_sqlite") if n in report]
        print("| phase | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names), flush=True)
        for phase in phases:
            print(f"| {phase} | " + " | ".join(f"{report[n][phase]:.3f}" for n in names) + " |", flush=True)
    print(json.dumps({"store_requests_per_call": store_requests_per_call()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
