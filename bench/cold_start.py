"""Cold start of the packaged API handler: a fresh process imports ``app`` from the unzipped
``chalice package`` output (only the Lambda runtime's boto3 besides it) and answers a sample API
Gateway event for ``GET /stac/search``, over a local store of N published items. Target: < 0.3 s.

    python bench/cold_start.py [--package OUT] [--n 1000] [--runs 5] [--strip-bytecode]

``--package`` takes an existing ``scripts/package.sh`` output (else the dev stage is packaged first,
about 2 minutes). Per run, three fresh processes on the same store and the same event:
- packaged: what Lambda's init + first invocation does (``python -S -E -B``, sys.path = zip + runtime;
  no bytecode written, as Lambda's code directory is read-only: only the zip's own .pyc help);
- in-repo handler: the same script importing ``app`` from the repository with the dev venv;
- ``stacflow serve``: process start to the first answered /stac/search over HTTP (the cold start
  ``bench/stac_bench.py`` reports).
Figures: median over runs of import time and first answer (in-process clocks from the script's
first line, so interpreter start-up is excluded, as Lambda's Init Duration excludes the runtime's),
the CPU time spent up to the first answer (robust to a busy machine), the process wall time, and
the ratios of the packaged figure to the in-repo ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from harness import REPO, stacflow_serve  # first: puts REPO on sys.path

from tests.helpers import lambda_package
from tests.helpers.lambda_package import INVOKE, Package, api_event
from tests.helpers.synthetic import make_items

TARGET_S = 0.3
QUERY = {"limit": "10", "bbox": "-10,35,30,60", "datetime": "2020-01-01T00:00:00Z/.."}


def build_store(root: Path, n: int) -> str:
    source = root / "items.ndjson"
    items = make_items(n)
    for i, item in enumerate(items):  # in the catalog's configured collections (as stac_bench.py)
        item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
    source.write_text("".join(json.dumps(item) + "\n" for item in items))
    uri = (root / "store").as_uri()
    subprocess.run([sys.executable, "-m", "chalicelib.cli", "publish", "--store", uri, "-q", str(source)],
                   cwd=REPO, check=True, capture_output=True)
    return uri


def fresh(cmd: list[str], env: dict[str, str], out: Path) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run(cmd, env={"PATH": os.environ["PATH"], **env}, check=True, timeout=300, cwd=out.parent)
    wall = time.perf_counter() - started
    result = json.loads(out.read_text())
    assert result["results"][0]["statusCode"] == 200, result["results"][0]
    return {"import_s": result["import_s"], "first_answer_s": result["answered_s"][0],
            "first_answer_cpu_s": result["answered_cpu_s"][0], "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, help="scripts/package.sh output (has sam/deployment.zip)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strip-bytecode", action="store_true",
                        help="remove the zip's .pyc first: the baseline of deploy/bytecode.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.package:
            pkg = Package(root / "project")
            (root / "project").mkdir()
            (pkg.root / "out").symlink_to(args.package.resolve())
            with zipfile.ZipFile(pkg.out / "sam" / "deployment.zip") as zf:
                zf.extractall(pkg.unzipped)
            lambda_package.link_runtime(pkg)
        else:
            pkg = lambda_package.build(root / "project")
        if args.strip_bytecode:
            for cache in list(pkg.unzipped.rglob("__pycache__")):
                shutil.rmtree(cache)
        uri = build_store(root, args.n)
        env = {"STACFLOW_STORE": uri, "AWS_DEFAULT_REGION": "eu-west-1"}
        events = root / "events"
        events.mkdir()
        event = api_event(events, "GET", "/stac/search", QUERY)
        out = root / "result.json"
        packaged = [sys.executable, "-S", "-E", "-B", "-c", INVOKE, str(pkg.unzipped), str(pkg.runtime), str(out), str(event)]
        # The same script with the repository and the venv (site-packages on): the in-repo handler.
        in_repo = [sys.executable, "-c", INVOKE, str(REPO), str(REPO), str(out), str(event)]
        runs: dict[str, list[dict[str, float]]] = {"packaged": [], "in-repo handler": []}
        serve: list[float] = []
        for _ in range(args.runs):
            runs["packaged"].append(fresh(packaged, env, out))
            runs["in-repo handler"].append(fresh(in_repo, env, out))
            query = "&".join(f"{k}={v}" for k, v in QUERY.items())
            with stacflow_serve(uri, f"/stac/search?{query}") as server:
                serve.append(server.start_s)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    print(f"cold start of GET /stac/search, {args.n} items, median of {args.runs} fresh processes"
          f"{', zip without bytecode' if args.strip_bytecode else ''}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (contention inflates wall clocks, not CPU time)")
    print(f"{'':18} {'import (s)':>10} {'first answer (s)':>17} {'its CPU time (s)':>17} {'process wall (s)':>17}")
    for name, m in med.items():
        print(f"{name:18} {m['import_s']:10.3f} {m['first_answer_s']:17.3f} {m['first_answer_cpu_s']:17.3f} "
              f"{m['wall_s']:17.3f}")
    print(f"{'stacflow serve':18} {'':10} {'':17} {'':17} {statistics.median(serve):17.3f}  (start to first answered search)")
    packaged_s = med["packaged"]["first_answer_s"]
    packaged_cpu = med["packaged"]["first_answer_cpu_s"]
    print(f"packaged first answer {packaged_s:.3f} s (CPU {packaged_cpu:.3f} s): target < {TARGET_S} s -> "
          f"{'met' if packaged_s < TARGET_S else 'NOT met'} on this machine")
    print(f"ratio packaged / in-repo handler (first answer): {packaged_s / med['in-repo handler']['first_answer_s']:.2f}")
    print(f"ratio packaged process wall / stacflow serve cold start: "
          f"{med['packaged']['wall_s'] / statistics.median(serve):.2f}")


if __name__ == "__main__":
    main()
