"""STAC Browser benchmark: time to a rendered item list of a big collection, and the UI assets' size.

    python bench/ui_browser_bench.py --n 100000

Publishes N synthetic items into the ``dataset`` collection (``stacflow publish``) and a baseline of
100 items into another store, serves each with ``stacflow serve`` and the built STAC Browser
(build/ui/browser, ``make setup``), and opens ``/browser/stac/collections/dataset`` in headless
Chromium: time from navigation to the first page of item cards on screen, cold (new browser
context: nothing cached) and warm (same context, reloaded: hashed files from cache, index.html and
the STAC documents revalidated), p50 over ``--repeat`` runs; plus the time of the API call the list
makes. The ratio N / baseline says whether the list's cost grows with the collection. Then the
built UIs' total size (files, bytes, gzip bytes) and what the browser transfers on a cold load.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import REPO, stacflow_serve  # first: puts REPO on sys.path

from chalicelib.settings import BUILT_UI
from tests.helpers.browser import chromium
from tests.helpers.stac_browser import offline_web
from tests.helpers.synthetic import make_items

LIST = "/browser/stac/collections/dataset"
CARDS = ".items .card"  # one per item of the rendered page


def publish(n: int, root: Path) -> tuple[str, float]:
    source = root / "items.ndjson"
    with source.open("w") as fh:
        for item in make_items(n, collection="dataset"):
            fh.write(json.dumps(item) + "\n")
    uri = (root / "store").as_uri()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", uri, "-q", str(source)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return uri, time.perf_counter() - started


def time_list(browser: Any, url: str, repeat: int) -> dict[str, Any]:
    cold, warm, api, cards = [], [], [], 0
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(120_000)
        offline_web(page)
        page.on("requestfinished", lambda r: "/stac/collections/dataset/items" in r.url
                and api.append(r.timing["responseEnd"] - r.timing["requestStart"]))
        for samples, go in ((cold, lambda: page.goto(url + LIST)), (warm, page.reload)):
            started = time.perf_counter()
            go()
            page.locator(CARDS).first.wait_for()
            samples.append((time.perf_counter() - started) * 1000)
        cards = page.locator(CARDS).count()
        context.close()
    return {"cold_ms": round(statistics.median(cold)), "warm_ms": round(statistics.median(warm)),
            "items_call_ms": round(statistics.median(api)) if api else None, "cards": cards}


def transferred(browser: Any, url: str) -> dict[str, int]:
    """Bytes of the UI's own files a cold load of the list fetches (bodies as sent, before decoding)."""
    context = browser.new_context()
    page = context.new_page()
    offline_web(page)
    sizes: dict[str, int] = {}
    page.on("requestfinished", lambda r: "/browser/" in r.url and sizes.__setitem__(r.url, r.sizes()["responseBodySize"]))
    page.goto(url + LIST)
    page.locator(CARDS).first.wait_for(timeout=120_000)
    context.close()
    return {"files": len(sizes), "bytes": sum(sizes.values())}


def built_sizes() -> dict[str, dict[str, int]]:
    out = {}
    for site in sorted(p for p in BUILT_UI.iterdir() if p.is_dir()):
        files = [p for p in site.rglob("*") if p.is_file()]
        out[site.name] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
                          "gzip_bytes": sum(len(gzip.compress(p.read_bytes(), 6)) for p in files)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not (BUILT_UI / "browser" / "index.html").is_file():
        sys.exit("STAC Browser is not built: run `make setup` (or sh ui/stac-browser/build.sh)")
    os.environ["STACFLOW_UI"] = str(BUILT_UI)
    results: dict[str, Any] = {"ui_assets": built_sizes()}
    work = Path(tempfile.mkdtemp(prefix="uibench-"))
    try:
        with chromium() as browser:
            for n in (args.baseline, args.n):
                root = work / str(n)
                root.mkdir()
                uri, seconds = publish(n, root)
                with stacflow_serve(uri, "/stac/collections/dataset") as server:
                    results[str(n)] = {"publish_s": round(seconds, 1), **time_list(browser, server.url, args.repeat)}
                    if n == args.n:
                        results["cold_load_transfer"] = transferred(browser, server.url)
                print(json.dumps({n: results[str(n)]}), flush=True)
    finally:
        shutil.rmtree(work)
    big, base = results[str(args.n)], results[str(args.baseline)]
    results["ratio_vs_baseline"] = {k: round(big[k] / base[k], 2) for k in ("cold_ms", "warm_ms") if base[k]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
