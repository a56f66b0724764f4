"""GitLab + DVC datasets benchmark: webhook latency, time to searchable, store requests per webhook.

The dataset: a git repository (the loopback fake GitLab serves it to python-gitlab) whose ``data/``
directory of --files files is tracked by DVC 3 (``data.dvc`` -> a ``.dir`` manifest) in an S3 remote
on moto's server. The remote's objects are written as ``dvc push`` lays them out
(``files/md5/<2>/<30>``, the manifest as ``<md5>.dir``), directly with boto3, so the benchmark does
not time the dvc CLI. Items get one asset per file (``STACFLOW_DVC_DIR_ASSETS`` = --files).

1. Webhook response time, p50/p95 over --hooks posts to ``stacflow serve``:
   - deployed mode (an S3 store: the webhook writes the change record, the work runs on its S3 event);
   - local mode (a local store: its in-process dispatch processes the change inside the request).
2. Time to searchable: from posting the tag's webhook to ``POST /stac/search`` finding the version with
   every asset available (objects pushed first); and from the last S3 notification of a push
   (``stacflow replay-events``, objects pushed after the webhook) to the same.
3. Store requests of one webhook, in-process over a counting local store: the webhook alone, and the
   whole processing its record triggers (sync + catalog + index), first publication and a redelivery;
   and the requests to the DVC remote (``dvc_remote_requests``: HEADs/LISTs of the objects, the manifest).

    .venv/bin/python bench/datasets_bench.py [--files 1000] [--hooks 50]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from harness import REPO, percentiles, stacflow_serve

SECRET = "bench-webhook-secret"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Dataset:
    """A git repo with ``data.dvc`` over ``files`` files, and the remote objects ``dvc push`` would write."""

    def __init__(self, root: Path, bucket: str, files: int) -> None:
        from tests.helpers.fake_gitlab import init_repo, tag
        self.bucket, self.remote = bucket, f"s3://{bucket}/dvc"
        self.objects: dict[str, bytes] = {}
        entries = []
        for i in range(files):
            data = f"tile {i}\n".encode() * 16
            digest = _md5(data)
            self.objects[f"dvc/files/md5/{digest[:2]}/{digest[2:]}"] = data
            entries.append({"md5": digest, "relpath": f"t{i:05}.tif"})
        manifest = json.dumps(sorted(entries, key=lambda e: e["relpath"]), separators=(", ", ": ")).encode()
        dir_md5 = _md5(manifest)
        self.objects[f"dvc/files/md5/{dir_md5[:2]}/{dir_md5[2:]}.dir"] = manifest
        size = sum(len(v) for k, v in self.objects.items() if not k.endswith(".dir"))
        dvc_file = (f"outs:\n- md5: {dir_md5}.dir\n  size: {size}\n  nfiles: {files}\n  hash: md5\n"
                    f"  path: data\n")
        config = f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {self.remote}\n"
        self.repo = init_repo(root, {"README.md": "---\ntitle: Bench tiles\nlicense: CC-BY-4.0\n---\n",
                                     ".dvc/config": config, "data.dvc": dvc_file})
        tag(self.repo, "v1")

    def push(self) -> list[dict[str, Any]]:
        """Write the objects (``dvc push``); returns their S3 notifications, the manifest last."""
        import boto3
        s3 = boto3.client("s3")
        events = []
        for key, data in sorted(self.objects.items(), key=lambda kv: kv[0].endswith(".dir")):
            etag = s3.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"].strip('"')
            events.append({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"},
                       "object": {"key": key, "size": len(data), "eTag": etag, "sequencer": f"{time.time_ns():016X}"}}}]})
        return events


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _ready(url: str, item_id: str | None) -> bool:
    found = _post(f"{url}/stac/search", {"collections": ["dataset"], "limit": 10, **(
        {"ids": [item_id]} if item_id else {})})["features"]
    return bool(found) and found[0]["properties"].get("stacflow:pending_assets") == []


def _wait(url: str, item_id: str | None, timeout: float = 600.0) -> float:
    started = time.perf_counter()
    while not _ready(url, item_id):
        if time.perf_counter() - started > timeout:
            raise RuntimeError("the item never became searchable with every asset available")
        time.sleep(0.01)
    return time.perf_counter()


def _env(gl: Any, ds: Dataset, files: int) -> dict[str, str]:
    return {"STACFLOW_WEBHOOK_SECRET": SECRET, "STACFLOW_GITLAB_URL": gl.url, "STACFLOW_GITLAB_TOKEN": gl.token,
            "STACFLOW_DVC_REMOTES": ds.remote, "STACFLOW_DVC_DIR_ASSETS": str(files)}


def webhook_latency(gl: Any, pid: int, payload: dict[str, Any], store_uri: str, hooks: int) -> dict[str, float]:
    from tests.helpers.fake_gitlab import post_webhook
    with stacflow_serve(store_uri) as server:
        post_webhook(f"{server.url}/webhooks/gitlab", payload, token=SECRET, timeout=60)  # imports, first build
        samples = []
        for _ in range(hooks):
            t0 = time.perf_counter()
            status, _ = post_webhook(f"{server.url}/webhooks/gitlab", payload, token=SECRET, timeout=60)
            samples.append((time.perf_counter() - t0) * 1000)
            assert status == 200
    p50, p95 = percentiles(samples)
    return {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "n": hooks}


def to_searchable(gl: Any, ds: Dataset, pid: int, tmp: Path) -> dict[str, float]:
    from tests.helpers.fake_gitlab import post_webhook
    out: dict[str, float] = {}
    # a. pushed first, then the webhook
    ds.push()
    with stacflow_serve(f"file://{tmp}/store-a") as server:
        t0 = time.perf_counter()
        status, _ = post_webhook(f"{server.url}/webhooks/gitlab", gl.tag_push_payload(pid, "v1"), token=SECRET,
                                 timeout=120)
        answered = time.perf_counter()
        out["webhook_to_searchable_s"] = round(_wait(server.url, None) - t0, 3)
        out["webhook_answer_s"] = round(answered - t0, 3)
    # b. the webhook first (assets pending), then the push's notifications
    import boto3
    s3 = boto3.client("s3")
    for key in ds.objects:
        s3.delete_object(Bucket=ds.bucket, Key=key)
    with stacflow_serve(f"file://{tmp}/store-b") as server:
        post_webhook(f"{server.url}/webhooks/gitlab", gl.tag_push_payload(pid, "v1"), token=SECRET, timeout=120)
        events = ds.push()

        def replay(batch: list[dict[str, Any]], name: str) -> None:
            path = tmp / name
            path.write_text("\n".join(json.dumps(e) for e in batch) + "\n")
            done = subprocess.run([sys.executable, "-m", "chalicelib.cli", "replay-events", "--store",
                                   f"file://{tmp}/store-b", str(path)], cwd=REPO, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
        t0 = time.perf_counter()
        replay(events[:-1], "push.ndjson")  # every file's notification (the item still lists the pending manifest)
        out["push_events"] = len(events)
        out["replay_first_events_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        replay(events[-1:], "last.ndjson")  # the .dir manifest: the directory becomes its 1,000 file assets
        ready = _wait(server.url, None)
        out["last_event_to_searchable_s"] = round(ready - t1, 3)  # includes the CLI's own start (~1 s)
    return out


    return out


def requests_per_webhook(gl: Any, ds: Dataset, pid: int, files: int, tmp: Path) -> dict[str, Any]:
    from chalice.test import Client

    from app import app
    from chalicelib import services
    from chalicelib.settings import Settings
    from chalicelib.store import open_store
    from chalicelib.store.local import LocalStore
    from tests.helpers.stores import InstrumentedStore
    payload = json.dumps(gl.tag_push_payload(pid, "v1"))
    headers = {"Content-Type": "application/json", "X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Tag Push Hook"}
    out: dict[str, Any] = {}
    for mode, dispatch in (("webhook_alone", False), ("first_publication", True), ("redelivery", True)):
        base = LocalStore(tmp / ("counted-alone" if not dispatch else "counted"), fsync=False)
        store = InstrumentedStore(base)
        cfg = Settings(store_uri=base.uri, public_url=None, dispatch_events=dispatch, webhook_secret=SECRET,
                       gitlab_url=gl.url, gitlab_token=gl.token, dvc_remotes=(ds.remote,), dvc_dir_assets=files)
        services.configure(store=store, settings=cfg)
        remote_calls: list[InstrumentedStore] = []

        def counted_remote(url: str) -> InstrumentedStore:
            remote_calls.append(InstrumentedStore(open_store(url)))
            return remote_calls[-1]
        services.dataset_context().remote._opener = counted_remote  # type: ignore[attr-defined]
        if not dispatch:
            services.root().close()  # as deployed: nothing runs in-process, S3 notifies the event function
        before = len(gl.requests)
        with Client(app) as client:
            t0 = time.perf_counter()
            resp = client.http.post("/webhooks/gitlab", body=payload, headers=headers)
            elapsed = time.perf_counter() - t0
        assert resp.status_code == 200, resp.body
        out[mode] = {"requests": dict(sorted(store.calls.items())), "total": store.total,
                     "gitlab_requests": len(gl.requests) - before, "seconds": round(elapsed, 3),
                     "dvc_remote_requests": dict(sorted(sum((c.calls for c in remote_calls), Counter()).items()))}
    services.configure()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--hooks", type=int, default=50)
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    from moto.server import ThreadedMotoServer

    from harness import free_port
    from tests.helpers.fake_gitlab import FakeGitLab
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    import boto3
    bucket, store_bucket = f"dvc-{uuid.uuid4().hex[:8]}", f"store-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=store_bucket)
    report: dict[str, Any] = {"files": args.files}
    try:
        with tempfile.TemporaryDirectory() as tmp_name, FakeGitLab() as gl:
            tmp = Path(tmp_name)
            ds = Dataset(tmp / "repo", bucket, args.files)
            pid = gl.add_project(ds.repo, "bench/tiles", topics=["sharinghub:dataset"]).id
            os.environ.update(_env(gl, ds, args.files))
            payload = gl.tag_push_payload(pid, "v1")
            report["webhook_deployed_mode"] = webhook_latency(gl, pid, payload, f"s3://{store_bucket}/stacflow",
                                                              args.hooks)
            report.update(to_searchable(gl, ds, pid, tmp))
            report["webhook_local_mode_redelivery"] = webhook_latency(gl, pid, payload, f"file://{tmp}/store-a",
                                                                      max(5, args.hooks // 10))
            report["store_requests"] = requests_per_webhook(gl, ds, pid, args.files, tmp)
    finally:
        moto.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
