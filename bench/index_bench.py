"""Search index at scale: serving memory, warm query latency and cold start, on a local store and on
S3 (moto's server), for this checkout and (interleaved, same run) another commit's checkout.

    python bench/index_bench.py --n 100000 [--baseline DIR] [--s3] [--repeat 30] [--layout bulk|one]

DIR: ``git archive <commit> | tar -x -C DIR``. Per checkout, each step in a fresh process that imports
only that checkout (PYTHONPATH=its root):

- build: N synthetic items (``stac_bench.synthetic``: ``make_items`` in the two configured collections)
  written through the index's own bulk API exactly as that checkout's ``stacflow publish`` writes them:
  ``add(compact=False)`` per ``publish.BATCH`` items, then ``optimize(max_rows=publish.MERGE_ROWS)``, its
  last step (``--layout one``: ``optimize()``, everything merged into one segment). Item files, shards
  and collection pages are not written: only the search index is measured.
- cold: process start to the first ``/stac/search`` answered in-process (``StacApi``), its CPU time, and
  the store requests and bytes read for it (the store's meter: what the same calls cost on S3);
- warm: p50 of ``stac_bench.SEARCHES`` plus 100 items of one collection and paging 10 x 100 in-process;
  RSS after imports and after the mix, bytes per item of the loaded index (RSS growth / N);
- http: the API served as ``stacflow serve`` does, without its stac-geoparquet refresher (a Lambda's
  API function has none): the query mix, then the server's RSS, then p50 of paging 1,000 items (10
  pages of 100) and one page of 1,000, keep-alive client.
The stored bytes per item are the segment objects' total size / N.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

STARTED = time.perf_counter()
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIRST = {"bbox": [-10, 35, 30, 60], "datetime": "2020-01-01T00:00:00Z/..", "limit": 10}


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_build(uri: str, n: int, layout: str) -> dict[str, Any]:
    from chalicelib.stac.index import MANIFEST, SEGMENT_PREFIX, SearchIndex
    from chalicelib.stac.publish import BATCH, MERGE_ROWS
    from chalicelib.store import open_store
    from tests.helpers.synthetic import make_item
    import random
    store = open_store(uri)
    index = SearchIndex(store)
    rng = random.Random(1)
    started = time.perf_counter()
    for lo in range(0, n, BATCH):
        batch = [make_item(i, rng) for i in range(lo, min(n, lo + BATCH))]
        for i, item in zip(range(lo, lo + len(batch)), batch):
            item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
        index.add(batch, [], compact=False)
    index.optimize(None if layout == "one" else MERGE_ROWS)
    live = {seg["key"] for seg in store.get_json(MANIFEST)["segments"]}  # not the retired ones (kept for grace)
    segments = [o for o in store.list(SEGMENT_PREFIX) if o.key in live]
    return {"build_s": round(time.perf_counter() - started, 1), "segments": len(segments),
            "stored_bytes": sum(o.size for o in segments)}


def _p50(fn: Any, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(samples), 2)


def child_serve(uri: str, n: int, repeat: int) -> dict[str, Any]:
    from chalicelib.stac.api import StacApi
    from chalicelib.store import open_store
    sys.path.insert(0, str(HERE))
    from stac_bench import SEARCHES
    imported = time.perf_counter() - STARTED
    store = open_store(uri)
    rss_imports = _rss_mb()
    api, base = StacApi(store), "http://localhost/stac"
    before, cpu0 = store.meter.usage(), time.process_time()
    t = time.perf_counter()
    api.search_post(base, FIRST)
    first_s = time.perf_counter() - t
    cold = store.meter.usage() - before
    out: dict[str, Any] = {
        "import_s": round(imported, 3), "first_search_s": round(first_s, 3),
        "cold_start_s": round(imported + first_s, 3), "cold_cpu_s": round(time.process_time() - cpu0, 3),
        "cold_requests": dict(cold.requests), "cold_bytes_read": cold.bytes_read, "rss_imports_mb": round(rss_imports)}
    mix: dict[str, float] = {"100 items of one collection": _p50(
        lambda: api.items(base, "dataset", {"limit": ["100"]}), repeat)}
    for label, body in SEARCHES.items():
        mix[label] = _p50(lambda: api.search_post(base, body), repeat)
    tokens: list[dict[str, list[str]]] = [{"limit": ["100"]}]
    for _ in range(9 if n else 0):
        doc = json.loads(api.search_get(base, tokens[-1]))
        href = next(link["href"] for link in doc["links"] if link["rel"] == "next")
        tokens.append({"limit": ["100"], "token": [href.rsplit("token=", 1)[1]]})
    mix["paging 1,000 (10 x 100)"] = _p50(lambda: [api.search_get(base, tk) for tk in tokens], max(5, repeat // 5))
    out["inprocess_ms"] = mix
    out["rss_after_mix_mb"] = round(_rss_mb(), 2)
    out["peak_rss_mb"] = round(_rss_mb("VmHWM"))
    out["mix_cpu_s"] = round(time.process_time() - cpu0, 2)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ``stacflow serve`` without its stac-geoparquet refresher (which regenerates every collection's parquet
# file from a second index in the same process, ~200 MB at 100k items): the API as a Lambda runs it.
API_ONLY = """
import sys
from chalicelib import cli, services
from chalicelib.stac.catalog import ensure_root
from chalicelib.http.local_server import make_server
cli._use_store(sys.argv[1])
ensure_root(services.store())
sys.path.insert(0, ".")
from app import app
make_server(app, "127.0.0.1", int(sys.argv[2])).server.serve_forever()
"""


def http_paging(root: Path, uri: str, env: dict[str, str], repeat: int) -> dict[str, float]:
    import requests
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", API_ONLY, uri, str(port)],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/stac"
    try:
        session = requests.Session()
        deadline = time.time() + 300
        while True:
            try:
                session.get(url + "/search?limit=1", timeout=120).raise_for_status()
                break
            except requests.RequestException:
                if proc.poll() is not None or time.time() > deadline:
                    raise
                time.sleep(0.05)
        sys.path.insert(0, str(HERE))
        from stac_bench import SEARCHES
        for body in SEARCHES.values():  # the query mix, then the server's RSS (as stac_bench.py reads it)
            session.post(url + "/search", json=body, timeout=120).raise_for_status()
        session.get(url + "/collections/dataset/items?limit=100", timeout=120).raise_for_status()
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        rss = {f: int(next(x for x in status if x.startswith(f + ":")).split()[1]) / 1024 for f in ("VmRSS", "VmHWM")}
        pages = [url + "/search?limit=100"]
        while len(pages) < 10:
            doc = session.get(pages[-1], timeout=60).json()
            pages.append(next(link["href"] for link in doc["links"] if link["rel"] == "next"))
        return {"server RSS after the mix (MB)": round(rss["VmRSS"], 1), "server peak RSS (MB)": round(rss["VmHWM"], 1),
                "paging 1,000 (10 x 100)": _p50(lambda: [session.get(p, timeout=60).raise_for_status()
                                                        for p in pages], max(5, repeat // 5)),
                "1 page of 1,000": _p50(lambda: session.post(url + "/search", json={"limit": 1000},
                                                             timeout=60).raise_for_status(), repeat)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_child(root: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    started = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, str(HERE / "index_bench.py"), "--child", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=7200)
    if proc.returncode:
        raise RuntimeError(f"{args[0]} in {root} failed:\n{proc.stderr[-3000:]}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = round(time.perf_counter() - started, 3)
    out["process_cpu_s"] = round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3)
    return out


@contextmanager
def moto() -> Iterator[str]:
    import logging
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--baseline", type=Path, help="another commit's checkout, measured interleaved")
    parser.add_argument("--s3", action="store_true", help="stores on moto's S3 server instead of local dirs")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--layout", choices=("bulk", "one"), default="bulk")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"),
                        help="where the built stores are kept (and reused by later runs)")
    args = parser.parse_args()
    if args.child is not None:
        what, uri, n = args.child[0], args.child[1], int(args.child[2])
        if what == "build":
            print(json.dumps(child_build(uri, n, args.child[3])))
        else:
            print(json.dumps(child_serve(uri, n, int(args.child[3]))))
        return

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    variants = [("now", REPO)] + ([("base", args.baseline.resolve())] if args.baseline else [])
    print(f"# {time.strftime('%H:%M:%S')} load average {os.getloadavg()}", flush=True)
    with (moto() if args.s3 else _nothing()) as endpoint:
        results: dict[str, dict[str, Any]] = {}
        uris: dict[str, str] = {}
        envs: dict[str, dict[str, str]] = {}
        for name, root in variants:
            env = dict(os.environ, PYTHONPATH=str(root), MALLOC_ARENA_MAX="2")
            envs[name] = env
            # Built once per checkout, N and layout (kept in --workdir), then copied to S3 when asked.
            path = args.workdir / f"index-bench-{name}-{args.n}-{args.layout}"
            built = path / "build.json"
            if not built.exists():
                got = run_child(root, env, "build", path.as_uri(), str(args.n), args.layout)
                built.write_text(json.dumps(got))
            results[name] = {"build": json.loads(built.read_text())}
            uris[name] = path.as_uri()
            if endpoint:
                import boto3
                env["AWS_ENDPOINT_URL"] = endpoint
                bucket = f"bench-index-{name}-{os.getpid()}"
                client = boto3.client("s3", endpoint_url=endpoint)
                client.create_bucket(Bucket=bucket)
                for file in sorted((path / "stac-index").rglob("*")):
                    if file.is_file():
                        client.put_object(Bucket=bucket, Key="data/" + file.relative_to(path).as_posix(),
                                          Body=file.read_bytes())
                uris[name] = f"s3://{bucket}/data"
            print(name, "build", json.dumps(results[name]["build"]), flush=True)
        for name, root in variants:  # the same process over an empty index: what is not the index
            empty = (args.workdir / f"index-bench-empty-{os.getpid()}").as_uri()
            if endpoint:
                import boto3
                bucket = f"bench-index-empty-{name}-{os.getpid()}"
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
                empty = f"s3://{bucket}/data"
            results[name]["empty"] = run_child(root, envs[name], "serve", empty, "0", "3")
        for run in range(args.cold_runs):  # interleaved: now, base, now, base...
            for name, root in variants:
                got = run_child(root, envs[name], "serve", uris[name], str(args.n), str(args.repeat))
                results[name].setdefault("serve", []).append(got)
                print(name, "serve", run, json.dumps(got), flush=True)
        if not args.no_http:
            for name, root in variants:
                results[name]["http_ms"] = http_paging(root, uris[name], envs[name], args.repeat)
                print(name, "http", json.dumps(results[name]["http_ms"]), flush=True)
    print(f"# {time.strftime('%H:%M:%S')} load average {os.getloadavg()}")
    report(results, args.n)


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(results: dict[str, dict[str, Any]], n: int) -> None:
    names = list(results)
    rows = [["figure"] + names + (["now / base"] if len(names) > 1 else [])]

    def add(label: str, values: list[float], fmt: str = "{:,.3f}") -> None:
        row = [label] + [fmt.format(v) for v in values]
        if len(values) > 1:
            row.append(f"{values[0] / values[1]:.2f}" if values[1] else "-")
        rows.append(row)
    add("stored bytes / item", [results[k]["build"]["stored_bytes"] / n for k in names], "{:,.0f}")
    add("segments", [results[k]["build"]["segments"] for k in names], "{:.0f}")
    for k in names:
        for r in results[k]["serve"]:
            r["index_bytes_per_item"] = (r["rss_after_mix_mb"] - results[k]["empty"]["rss_after_mix_mb"]) * 2 ** 20 / n
    for key in ("cold_start_s", "first_search_s", "cold_cpu_s", "process_cpu_s", "rss_after_mix_mb", "peak_rss_mb",
                "index_bytes_per_item", "mix_cpu_s"):
        add(key, [_median(results[k]["serve"], key) for k in names], "{:,.3f}" if key.endswith("_s") else "{:,.0f}")
    add("cold requests (median total)", [statistics.median(sum(r["cold_requests"].values())
                                                           for r in results[k]["serve"]) for k in names], "{:.0f}")
    add("cold bytes read (MB)", [statistics.median(r["cold_bytes_read"] for r in results[k]["serve"]) / 1e6
                                 for k in names], "{:,.1f}")
    for label in results[names[0]]["serve"][0]["inprocess_ms"]:
        add(f"{label} p50 ms (in-process)",
            [statistics.median(r["inprocess_ms"][label] for r in results[k]["serve"]) for k in names], "{:,.2f}")
    if "http_ms" in results[names[0]]:
        for label in results[names[0]]["http_ms"]:
            add(label if "RSS" in label else f"{label} p50 ms (HTTP)", [results[k]["http_ms"][label] for k in names],
                "{:,.2f}")
    rows.insert(1, ["---"] * len(rows[0]))
    print(f"N = {n:,}")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))


if __name__ == "__main__":
    main()
