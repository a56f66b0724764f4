"""The Lambda package as AWS would run it: built by ``scripts/package.sh``, unzipped, and invoked in a
subprocess whose ``sys.path`` is the unzipped package plus a stand-in for the Lambda runtime's own
packages (boto3 and its dependencies), nothing from the dev venv, so a module missing from the zip fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO

# What the python3.11 Lambda runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
PROJECT_FILES = ("app.py", "requirements.txt", "requirements-geoparquet.txt")
PROJECT_DIRS = ("chalicelib", "functions", ".chalice", "deploy", "scripts")


@dataclass(frozen=True)
class Package:
    root: Path  # the copied project

    @property
    def out(self) -> Path:  # scripts/package.sh's output: sam/, terraform/, merge.json
        return self.root / "out"

    @property
    def unzipped(self) -> Path:
        return self.root / "unzipped"

    @property
    def runtime(self) -> Path:
        return self.root / "runtime"

    def sam(self) -> dict:
        return json.loads((self.out / "sam" / "sam.json").read_text())


def build(root: Path, stage: str = "dev") -> Package:
    """Copy the project to ``root``, package ``stage`` in both formats, unzip, link the runtime stand-in."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, root / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "deployments"))
    pkg = Package(root)
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("AWS_ENDPOINT_URL", None)
    subprocess.run(["bash", "scripts/package.sh", stage, str(pkg.out)], cwd=root, env=env, check=True,
                   capture_output=True, timeout=900)
    with zipfile.ZipFile(pkg.out / "sam" / "deployment.zip") as zf:
        zf.extractall(pkg.unzipped)
    link_runtime(pkg)
    return pkg


def link_runtime(pkg: Package) -> None:
    """The Lambda runtime's packages, as links to the dev venv's copies of exactly those."""
    import boto3
    pkg.runtime.mkdir()
    site = Path(str(boto3.__file__)).parent.parent
    for name in RUNTIME_PACKAGES:
        (pkg.runtime / name).symlink_to(site / name)


# argv: package dir, runtime dir, results file, event files... Each event goes to the handler Lambda
# would call: SQS batches to app.on_store_event, API Gateway events to app.app. With
# STACFLOW_TEST_FAULT_KEY set, the S3 adapter's GET of that store key fails (a store fault).
INVOKE = r"""
import json, os, sys, time
started = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[2]]
fault = os.environ.pop("STACFLOW_TEST_FAULT_KEY", None)
if fault:
    from chalicelib.store import s3
    real_get = s3.S3Store.get
    def get(self, key, **kw):
        if key == fault:
            raise ConnectionResetError("injected: connection reset by peer")
        return real_get(self, key, **kw)
    s3.S3Store.get = get
import app
imported = time.perf_counter()
results, answered, cpu = [], [], []
for path in sys.argv[4:]:
    event = json.load(open(path))
    handler = app.on_store_event if "Records" in event else app.app
    results.append(handler(event, None))
    answered.append(time.perf_counter() - started)
    cpu.append(time.process_time())  # CPU time of the process: what a busy machine does not inflate
json.dump({"results": results, "import_s": imported - started, "answered_s": answered, "answered_cpu_s": cpu},
          open(sys.argv[3], "w"), default=str)
"""


def invoke_timed(pkg: Package, env: dict[str, str], *events: Path) -> dict:
    """Run the events through the packaged handlers in one fresh process; results and timings."""
    out = pkg.root / "results.json"
    # -S: no site-packages, -E: no PYTHON* variables; only the package and the runtime stand-in.
    # -B: no __pycache__ written, as on Lambda's read-only code directory.
    subprocess.run([sys.executable, "-S", "-E", "-B", "-c", INVOKE, str(pkg.unzipped), str(pkg.runtime), str(out),
                    *map(str, events)], env={"PATH": os.environ["PATH"], **env}, check=True, timeout=300,
                   cwd=pkg.root)
    return dict(json.loads(out.read_text()))


def invoke(pkg: Package, env: dict[str, str], *events: Path) -> list:
    return list(invoke_timed(pkg, env, *events)["results"])


def api_event(dest_dir: Path, method: str, path: str, query: dict[str, str] | None = None) -> Path:
    """A real-format API Gateway (REST, proxy) event for ``path``, written to a file in ``dest_dir``."""
    event = json.loads((REPO / "tests" / "events" / "apigw_get_health.json").read_text())
    resource = "/stac/collections/{collection_id}" if path.startswith("/stac/collections/") else path
    event.update(resource=resource, path=path, httpMethod=method,
                 queryStringParameters=query, multiValueQueryStringParameters=(
                     {k: [v] for k, v in query.items()} if query else None))
    if resource != path:
        event["pathParameters"] = {"collection_id": path.rsplit("/", 1)[1]}
    event["requestContext"].update(resourcePath=resource, httpMethod=method)
    dest = dest_dir / f"{method}-{path.strip('/').replace('/', '_') or 'root'}-{len(list(dest_dir.iterdir()))}.json"
    dest.write_text(json.dumps(event))
    return dest
