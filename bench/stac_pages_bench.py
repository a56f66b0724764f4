"""STAC pages benchmark: `/stac/collections`, the landing pages and one collection, over HTTP
(`stacflow serve`) and in-process (`StacApi`, the whole body serialised), side by side with
stac-fastapi-pgstac 7.2 / pgstac 0.10 serving the same collection and item documents, and with
`stacflow serve` from a baseline checkout. `/health` is the HTTP floor: a server's cost of any
answer (pgstac's is `/_mgmt/ping`). The client's own floor is measured too: "floor" is a bare
loopback socket server (no HTTP library) sending `stacflow serve`'s own answer bytes for the landing
and conformance pages, to the same client in the same rounds.

    .venv/bin/python bench/stac_pages_bench.py [--n 1000] [--repeat 300] [--baseline DIR] [--pgstac-venv DIR]

DIR for ``--baseline``: ``git archive <commit> | tar -x -C DIR``. ``--pgstac-venv``: a virtualenv with
the peer (see bench/pgstac_peer.py; default /tmp/pgstac-venv); without it the issue's 4.5 ms is used.
Every server gets the same client (one keep-alive `http.client` connection each: a lighter client
than `requests`, whose own ~0.7 ms per call would hide the servers' differences) and the same
requests, interleaved in rounds, so load from other jobs hits them alike. Reported per page and
server: p50/p95 wall time and the server process's CPU time per request.

The store holds N synthetic items published with `stacflow publish` (collection documents with
real extents and summaries). After the timings one more item is published and the collection's
page must show it at once (a cache may never serve a page older than the last publication).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from harness import REPO, elapsed_ms, free_port, percentiles, serving, stacflow_serve  # first: puts REPO on sys.path

from chalicelib.stac.api import StacApi
from chalicelib.stac.catalog import collection_key
from chalicelib.store.local import LocalStore
from tests.helpers.synthetic import make_items

PGSTAC_COLLECTIONS_MS = 4.5  # the figure, used when the peer cannot run here
# label -> (stacflow path, pgstac path or None)
PAGES = {"/health": ("/health", "/_mgmt/ping"), "landing /": ("/", None), "STAC landing /stac": ("/stac", "/"),
         "/stac/conformance": ("/stac/conformance", "/conformance"),
         "/stac/collections": ("/stac/collections", "/collections"),
         "/stac/collections/dataset": ("/stac/collections/dataset", "/collections/dataset")}


# The floor: reads each request up to its blank line, sends the bytes recorded for its target.
FLOOR_SERVER = r"""
import json, socket, sys, threading
port, answers = int(sys.argv[1]), {k: bytes.fromhex(v) for k, v in json.load(open(sys.argv[2])).items()}
server = socket.create_server(("127.0.0.1", port))
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            conn.sendall(answers.get(head.split(b" ", 2)[1].decode(), answers["/"]))
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""
FLOOR_PAGES = {"STAC landing /stac": "/stac", "/stac/conformance": "/stac/conformance"}


def recorded(url: str, path: str) -> bytes:
    """The raw answer (status line, headers, body) a server gives to the bench's request for ``path``."""
    import socket
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
                     f"Connection: close\r\n\r\n".encode())
        return sock.makefile("rb").read()


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    for _ in range(5):
        fn()  # warm
    p50, p95 = percentiles([elapsed_ms(fn) for _ in range(repeat)])
    return {"p50": round(p50, 3), "p95": round(p95, 3)}


def publish(store_dir: Path, items: list[dict[str, Any]]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as fh:
        for item in items:
            fh.write(json.dumps(item) + "\n")
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", store_dir.as_uri(), "-q", fh.name],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    Path(fh.name).unlink()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """One server under test: a keep-alive connection, its samples and CPU time per page."""

    def __init__(self, name: str, url: str, pid: int, paths: dict[str, str]) -> None:
        self.name, self.pid, self.paths, self.url = name, pid, paths, url
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.samples: dict[str, list[float]] = {label: [] for label in paths}
        self.cpu: dict[str, float] = {label: 0.0 for label in paths}

    def get(self, path: str, accept: str = "application/json") -> bytes:
        self.conn.request("GET", path, headers={"Accept": accept})
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (self.name, path, resp.status, body[:200])
        return body

    def batch(self, label: str, count: int) -> None:
        path = self.paths[label]
        accept = "text/html" if label.endswith("(HTML)") else "application/json"
        cpu0 = cpu_s(self.pid)
        self.samples[label] += [elapsed_ms(lambda: self.get(path, accept)) for _ in range(count)]
        self.cpu[label] += cpu_s(self.pid) - cpu0

    def report(self) -> dict[str, dict[str, float]]:
        out = {}
        for label, samples in self.samples.items():
            p50, p95 = percentiles(samples)
            out[label] = {"p50": round(p50, 3), "p95": round(p95, 3),
                          "cpu_ms_per_request": round(self.cpu[label] * 1000 / len(samples), 3)}
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=300, help="requests per page and server")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the requests are split into")
    parser.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--pgstac-venv", type=Path, default=Path("/tmp/pgstac-venv"))
    args = parser.parse_args()
    items = make_items(args.n + 1)
    for i, item in enumerate(items):
        item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
    extra = items.pop()
    extra["collection"] = "dataset"
    extra["bbox"] = [170.0, 80.0, 179.5, 89.5]  # outside every synthetic footprint: the extent must grow
    extra["geometry"] = {"type": "Polygon", "coordinates": [[[170.0, 80.0], [179.5, 80.0], [179.5, 89.5],
                                                             [170.0, 89.5], [170.0, 80.0]]]}
    report: dict[str, Any] = {"n": args.n, "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        store_dir = Path(tmp) / "store"
        publish(store_dir, items)
        api, base = StacApi(LocalStore(store_dir, fsync=False)), "http://localhost/stac"
        report["inprocess_ms"] = {
            "/stac/collections": timed(lambda: json.dumps(api.collections(base)), args.repeat),
            "/stac/collections/dataset": timed(lambda: json.dumps(api.collection(base, "dataset")), args.repeat)}
        ours = {label: paths[0] for label, paths in PAGES.items()} | {"landing / (HTML)": "/"}
        servers = {"stacflow": stacflow_serve(store_dir.as_uri(), "/stac/collections", code=REPO)}
        if args.baseline:
            servers["baseline"] = stacflow_serve(store_dir.as_uri(), "/stac/collections", code=args.baseline.resolve())
        targets = [Target(name, s.url, s.proc.pid, ours) for name, s in
                   ((name, stack.enter_context(cm)) for name, cm in servers.items())]
        answers = {path: recorded(targets[0].url, path).hex() for path in FLOOR_PAGES.values()}
        answers["/"] = answers["/stac"]
        (Path(tmp) / "floor.json").write_text(json.dumps(answers))
        port = free_port()
        floor = stack.enter_context(serving([sys.executable, "-c", FLOOR_SERVER, str(port), str(Path(tmp) / "floor.json")],
                                            port, "/"))
        targets.append(Target("floor", floor.url, floor.proc.pid, FLOOR_PAGES))
        from pgstac_peer import available, pgstac
        why_not = available(args.pgstac_venv)
        if why_not is None:
            collections = [json.loads((store_dir / collection_key(c)).read_text()) for c in ("ai-model", "dataset")]
            peer = stack.enter_context(pgstac(args.pgstac_venv, collections, items))
            targets.append(Target("pgstac", peer.url, peer.proc.pid,
                                  {label: paths[1] for label, paths in PAGES.items() if paths[1]}))
        else:
            report["pgstac"] = f"not run: {why_not}; using the issue's {PGSTAC_COLLECTIONS_MS} ms for /collections"
        for target in targets:
            for label in target.paths:
                target.batch(label, 5)  # warm
                target.samples[label], target.cpu[label] = [], 0.0
        per_round = max(1, args.repeat // args.rounds)
        for _ in range(args.rounds):
            for label in ours:
                for target in targets:
                    if label in target.paths:
                        target.batch(label, per_round)
        report["http_ms"] = {t.name: t.report() for t in targets}
        now = targets[0]
        before = json.loads(now.get("/stac/collections/dataset"))["extent"]["spatial"]["bbox"][0]
        publish(store_dir, [extra])
        after = json.loads(now.get("/stac/collections/dataset"))["extent"]["spatial"]["bbox"][0]
        listed = next(c for c in json.loads(now.get("/stac/collections"))["collections"] if c["id"] == "dataset")
        stored = json.loads((store_dir / collection_key("dataset")).read_text())["extent"]["spatial"]["bbox"][0]
        report["fresh_after_publish"] = (after == stored == listed["extent"]["spatial"]["bbox"][0]
                                         and after != before)
    print(json.dumps(report, indent=2))
    http_ms = report["http_ms"]
    names = list(http_ms)
    rows = ["| page: p50 ms (server CPU ms/request) | " + " | ".join(names) + " | in-process |",
            "| --- |" + " ---: |" * (len(names) + 1)]
    for label in ours:
        cells = [f"{http_ms[n][label]['p50']:.3f} ({http_ms[n][label]['cpu_ms_per_request']:.3f})"
                 if label in http_ms[n] else "-" for n in names]
        inproc = report["inprocess_ms"].get(label)
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {inproc['p50']:.3f} |" if inproc
                    else f"| {label} | " + " | ".join(cells) + " | - |")
    print("\n".join(rows))
    ours_p50 = http_ms["stacflow"]["/stac/collections"]["p50"]
    peer = http_ms["pgstac"]["/stac/collections"]["p50"] if "pgstac" in http_ms else PGSTAC_COLLECTIONS_MS
    for label in ours:
        ratios = [f"{n} {http_ms[n][label]['p50'] / http_ms['stacflow'][label]['p50']:.2f}x"
                  for n in names[1:] if label in http_ms[n] and n != "floor"]
        if ratios:
            print(f"{label}: stacflow faster than " + ", ".join(ratios))
    for label in FLOOR_PAGES:
        if "pgstac" in http_ms and label in http_ms["pgstac"]:
            print(f"{label}: 5x the peer is {http_ms['pgstac'][label]['p50'] / 5:.3f} ms; the client and loopback "
                  f"alone (floor) {http_ms['floor'][label]['p50']:.3f} ms; stacflow {http_ms['stacflow'][label]['p50']:.3f} ms")
    print(f"/stac/collections: pgstac {peer:.2f} ms / stacflow {ours_p50:.2f} ms = {peer / ours_p50:.1f}x; "
          f"fresh after a publication: {report['fresh_after_publish']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
