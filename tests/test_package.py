"""The Lambda deployment package: built with `chalice package`, every deployed handler invoked from the zip.

The handlers run in a subprocess whose sys.path is the unzipped package plus a stand-in for the
Lambda runtime's own boto3 (nothing from the dev venv), so a module missing from the zip fails here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

EVENTS = Path(__file__).parent / "events"
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    for name in ("app.py", "requirements.txt"):
        shutil.copy(REPO / name, project / name)
    for name in ("chalicelib", "functions", ".chalice"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "deployments"))
    out = project / "out"
    env = dict(os.environ, AWS_DEFAULT_REGION="eu-west-1")
    # The chalice CLI through this interpreter, not the venv's script (its shebang pins the venv's path).
    subprocess.run([sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
                    "package", "--stage", "dev", str(out)],
                   cwd=project, env=env, check=True, capture_output=True, timeout=900)
    template = json.loads((out / "sam.json").read_text())
    handlers = {name: res["Properties"]["Handler"] for name, res in template["Resources"].items()
                if res["Type"] == "AWS::Serverless::Function"}
    assert handlers == {"APIHandler": "app.app", "OnStoreEvent": "app.on_store_event"}
    unzipped = project / "unzipped"
    with zipfile.ZipFile(out / "deployment.zip") as zf:
        zf.extractall(unzipped)
    # The Lambda runtime ships boto3; emulate it with links to exactly those packages.
    runtime = project / "runtime"
    runtime.mkdir()
    site = Path(__import__("boto3").__file__).parent.parent
    for name in RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site / name)
    return project


INVOKE = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
results = []
for path in sys.argv[4:]:
    event = json.load(open(path))
    handler = app.on_store_event if "Records" in event else app.app
    results.append(handler(event, None))
json.dump(results, open(sys.argv[3], "w"), default=str)
"""


def invoke(project: Path, store: Path, *events: Path, **extra_env: str) -> list:
    out = project / "results.json"
    env = {"PATH": os.environ["PATH"], "STACFLOW_STORE": store.as_uri(), "AWS_DEFAULT_REGION": "eu-west-1",
           **extra_env}
    # -S: no site-packages, -E: no PYTHON* variables; only the package and the runtime stand-in.
    subprocess.run([sys.executable, "-S", "-E", "-c", INVOKE, str(project / "unzipped"),
                    str(project / "runtime"), str(out), *map(str, events)],
                   env=env, check=True, timeout=120, cwd=project)
    return json.loads(out.read_text())


def api_event(tmp_path: Path, method: str, path: str, query: dict[str, str] | None = None) -> Path:
    event = json.loads((EVENTS / "apigw_get_health.json").read_text())
    resource = "/stac/collections/{collection_id}" if path.startswith("/stac/collections/") else path
    event.update(resource=resource, path=path, httpMethod=method,
                 queryStringParameters=query, multiValueQueryStringParameters=(
                     {k: [v] for k, v in query.items()} if query else None))
    if resource != path:
        event["pathParameters"] = {"collection_id": path.rsplit("/", 1)[1]}
    event["requestContext"].update(resourcePath=resource, httpMethod=method)
    dest = tmp_path / f"{method}-{path.strip('/').replace('/', '_') or 'root'}.json"
    dest.write_text(json.dumps(event))
    return dest


def test_package_contains_app_and_chalicelib_with_the_event_code(package_dir: Path) -> None:
    names = {p.relative_to(package_dir / "unzipped").as_posix() for p in (package_dir / "unzipped").rglob("*.py")}
    assert {"app.py", "chalicelib/services.py", "chalicelib/events/dispatch.py", "chalicelib/events/catalog.py",
            "chalicelib/events/registry.py"} <= names
    assert not any(name.startswith("functions/") for name in names)  # not shipped, and nothing deployed needs it


def test_api_handler_answers_from_the_zip(package_dir: Path, tmp_path: Path) -> None:
    health, landing = invoke(package_dir, tmp_path / "store", EVENTS / "apigw_get_health.json",
                             api_event(tmp_path, "GET", "/stac"))
    assert health["statusCode"] == 200
    assert json.loads(health["body"]) == {"status": "ok"}
    assert landing["statusCode"] == 200
    body = json.loads(landing["body"])
    assert body["type"] == "Catalog"
    # Links are absolute and carry the API Gateway stage of the request.
    assert any(link["href"] == "https://abc123.execute-api.eu-west-1.amazonaws.com/api/stac/search"
               for link in body["links"])


def test_event_handler_publishes_an_item_from_the_zip(package_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    item_key = "collections/dataset/items/sen1floods11+v1.json"
    (store / item_key).parent.mkdir(parents=True)
    (store / item_key).write_text(json.dumps({
        "type": "Feature", "stac_version": "1.1.0", "id": "sen1floods11+v1", "collection": "dataset",
        "geometry": {"type": "Point", "coordinates": [10.0, 50.0]}, "bbox": [10.0, 50.0, 10.0, 50.0],
        "properties": {"datetime": "2026-11-27T10:00:00Z", "title": "Sen1Floods11"}, "links": [], "assets": {}}))
    # The file was written behind the store's back: only the (SQS-delivered) S3 event publishes it.
    before, = invoke(package_dir, store, api_event(tmp_path, "GET", "/stac/search", {"ids": "sen1floods11+v1"}))
    assert json.loads(before["body"])["features"] == []
    event_result, after = invoke(package_dir, store, EVENTS / "sqs_s3_object_created.json",
                                 api_event(tmp_path, "GET", "/stac/search", {"ids": "sen1floods11+v1"}))
    assert [f["id"] for f in json.loads(after["body"])["features"]] == ["sen1floods11+v1"]
