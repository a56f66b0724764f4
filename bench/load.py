"""Load and faults: several ``stacflow serve`` workers over one store, mixed calls, then an audit.

    python bench/load.py                      # 3 workers, 8 client threads, 20 s or 3000 calls, no faults
    python bench/load.py --faults 0.05        # the same with 5% of store requests failing as S3 fails
    python bench/load.py --seconds 60 --max-calls 20000 --workers 4 --threads 16 --faults 0.05 --latency-max 4

Per run: throughput and p50/p99 of acknowledged calls (retries included), retries by status, faults
injected (counted from the workers' logs), wrong answers (must be 0), then — faults stopped — every
source event replayed (``stacflow replay-events``), ``stacflow check`` (problems found before and after
the replay) and the ledger audit: every acknowledged metric exactly once, every acknowledged version.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness  # noqa: F401  (puts the repository on sys.path)

from tests.helpers.load import run_load, setup_world, verify, write_source_events
from tests.helpers.servers import LiveServer


ENV = {"STACFLOW_PUBLIC_URL": "http://stacflow.test"}  # the service's settings: the CLI must share them


def _cli(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], cwd=harness.REPO, capture_output=True,
                          text=True, timeout=1800, env=dict(os.environ, **ENV))
    return proc.returncode, proc.stdout


def _kinds(problems: list[dict[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in problems:
        kind = p["problem"].split("(")[0].strip()
        kind = " ".join(w for w in kind.split() if not w.isdigit() and "'" not in w)
        out[kind] = out.get(kind, 0) + 1
    return out


def one_run(args: argparse.Namespace, faults: float) -> dict[str, object]:
    from chalicelib.store.local import LocalStore
    root = Path(tempfile.mkdtemp(prefix="stacflow-load-"))
    uri = f"file://{root}"
    env = dict(ENV)
    kinds = "slowdown,timeout,reset,latency,crash"
    with ThreadPoolExecutor(args.workers + 1) as pool:
        plain_f = pool.submit(LiveServer, uri, env)
        worker_fs = [pool.submit(LiveServer, uri, dict(env, STACFLOW_TEST_FAULTS=f"{faults}:{i}:{kinds}:{args.latency_max}")
                                 if faults else env, "tests.helpers.faulty_serve") for i in range(args.workers)]
        plain, workers = plain_f.result(), [f.result() for f in worker_fs]
    try:
        world = setup_world(plain.url, threads=args.threads, tag="bench")
        result, ledger = run_load([w.url for w in workers], world, seconds=args.seconds, max_calls=args.max_calls,
                                  seed=args.seed)
        injected: dict[str, int] = {}
        for w in workers:
            for line in Path(w.log.name).read_text().splitlines():
                if line.startswith("FAULT "):
                    kind = line.split()[1]
                    injected[kind] = injected.get(kind, 0) + 1
            w.stop()
        code_before, out_before = _cli("check", "--store", uri)
        events = root.parent / (root.name + "-events.ndjson")
        replayed = write_source_events(LocalStore(root), events)
        replay_code, _ = _cli("replay-events", "--store", uri, str(events))
        code_after, out_after = _cli("check", "--store", uri)
        audit = verify(plain.url, world, ledger)
    finally:
        plain.stop()
    return {"faults_share": faults, "workers": args.workers, "client_threads": args.threads,
            "load": result.summary(), "wrong_answers": result.wrong[:5], "faults_injected": injected,
            "check_before_replay": {"exit": code_before, "problems": len(json.loads(out_before)["problems"]),
                                    "kinds": _kinds(json.loads(out_before)["problems"])},
            "events_replayed": replayed, "replay_exit": replay_code,
            "check_after_replay": {"exit": code_after, "problems": json.loads(out_after)["problems"][:10],
                                   "items": json.loads(out_after)["items"]},
            "audit": audit}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--max-calls", type=int, default=3000)
    p.add_argument("--faults", type=float, default=0.0, help="share of store requests that fail (0: none)")
    p.add_argument("--latency-max", type=float, default=3.0, help="longest latency spike, seconds")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    report = one_run(args, args.faults)
    print(json.dumps(report, indent=1))
    ok = (not report["wrong_answers"] and report["check_after_replay"]["exit"] == 0  # type: ignore[index]
          and not any(report["audit"][k] for k in ("metrics_lost", "metrics_duplicated", "versions_lost",  # type: ignore[index]
                                                   "versions_duplicated_without_retry")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
