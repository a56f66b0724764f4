"""STAC pages benchmark: `/stac/collections`, the landing pages and one collection, over HTTP
(`stacflow serve`, keep-alive client) and in-process (`StacApi`, the whole body serialised), against
the figure stac-fastapi-pgstac 7.2 / pgstac 0.10 gives for `/collections` on the same machine
(4.5 ms p50, from issue 13). `/health` is the HTTP floor: the server's cost of any answer.

    .venv/bin/python bench/stac_pages_bench.py [--n 1000] [--repeat 300]

The store holds N synthetic items published with `stacflow publish` (collection documents with
real extents and summaries). After the timings one more item is published and the collection's
page must show it at once (a cache may never serve a page older than the last publication).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from harness import REPO, elapsed_ms, percentiles, stacflow_serve  # first: puts REPO on sys.path

import requests

from chalicelib.stac.api import StacApi
from chalicelib.stac.catalog import collection_key
from chalicelib.store.local import LocalStore
from tests.helpers.synthetic import make_items

PGSTAC_COLLECTIONS_MS = 4.5
PAGES = {"/health": "/health", "landing /": "/", "STAC landing /stac": "/stac",
         "/stac/conformance": "/stac/conformance", "/stac/collections": "/stac/collections",
         "/stac/collections/dataset": "/stac/collections/dataset"}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    items = make_items(args.n + 1)
    for i, item in enumerate(items):
        item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
    extra = items.pop()
    extra["collection"] = "dataset"
    extra["bbox"] = [170.0, 80.0, 179.5, 89.5]  # outside every synthetic footprint: the extent must grow
    extra["geometry"] = {"type": "Polygon", "coordinates": [[[170.0, 80.0], [179.5, 80.0], [179.5, 89.5],
                                                             [170.0, 89.5], [170.0, 80.0]]]}
    report: dict[str, Any] = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        publish(store_dir, items)
        api, base = StacApi(LocalStore(store_dir, fsync=False)), "http://localhost/stac"
        report["inprocess_ms"] = {
            "/stac/collections": timed(lambda: json.dumps(api.collections(base)), args.repeat),
            "/stac/collections/dataset": timed(lambda: json.dumps(api.collection(base, "dataset")), args.repeat)}
        with stacflow_serve(store_dir.as_uri(), "/stac/collections") as server:
            session = requests.Session()

            def get(path: str, accept: str = "application/json") -> requests.Response:
                r = session.get(server.url + path, headers={"Accept": accept})
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                return r
            report["http_ms"] = {label: timed(lambda p=path: get(p), args.repeat) for label, path in PAGES.items()}
            report["http_ms"]["landing / (HTML)"] = timed(lambda: get("/", "text/html"), args.repeat)
            before = get("/stac/collections/dataset").json()["extent"]["spatial"]["bbox"][0]
            publish(store_dir, [extra])
            after = get("/stac/collections/dataset").json()["extent"]["spatial"]["bbox"][0]
            listed = next(c for c in get("/stac/collections").json()["collections"] if c["id"] == "dataset")
            stored = json.loads((store_dir / collection_key("dataset")).read_text())["extent"]["spatial"]["bbox"][0]
            report["fresh_after_publish"] = (after == stored == listed["extent"]["spatial"]["bbox"][0]
                                             and after != before)
    p50 = report["http_ms"]["/stac/collections"]["p50"]
    report["collections_vs_pgstac"] = round(PGSTAC_COLLECTIONS_MS / p50, 1)
    print(json.dumps(report, indent=2))
    rows = ["| page (p50 ms) | HTTP | in-process |", "| --- | ---: | ---: |"]
    for label, times in report["http_ms"].items():
        inproc = report["inprocess_ms"].get(label)
        rows.append(f"| {label} | {times['p50']:.2f} | {inproc['p50']:.3f} |" if inproc
                    else f"| {label} | {times['p50']:.2f} | - |")
    print("\n".join(rows))
    print(f"/stac/collections: {PGSTAC_COLLECTIONS_MS} ms (pgstac) / {p50:.2f} ms = "
          f"{report['collections_vs_pgstac']}x; fresh after a publication: {report['fresh_after_publish']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
