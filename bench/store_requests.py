"""Store requests, bytes and time per operation, as deployed: the API function answers the call, and
the event function takes every write S3 would notify (deploy/stack.py's rules), until nothing is left.

Each operation runs --repeat times through the real routes (chalice.test.Client, the API handler's
code) over the local store and over S3 on moto's server; it reports the medians: store requests by
kind (the adapters' meter), bytes read/written, the API call's and the event functions' wall time,
the notifications (one SQS message and one event invocation each, at low traffic) and the response
size. ``bench/cost.py`` turns the JSON it writes into dollars.

    .venv/bin/python bench/store_requests.py [--items 1000] [--repeat 5] [--out bench/measured_requests.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import REPO, free_port  # first: puts REPO on sys.path

MB = 1 << 20
DIRECT_MB = 64
DIRECT = f"artifact upload, {DIRECT_MB} MB (straight to S3)"
SEARCHES: dict[str, dict[str, Any]] = {
    "search: ids (5)": {"ids": [f"item-{i:07d}" for i in (7, 42, 300, 500, 999)]},
    "search: bbox": {"bbox": [10.0, 40.0, 12.0, 42.0], "limit": 100},
    "search: datetime": {"datetime": "2020-01-01T00:00:00Z/2020-06-30T23:59:59Z", "limit": 100},
    "search: CQL2 filter": {"filter": "eo:cloud_cover < 10 AND platform = 'sentinel-2a'",
                            "filter-lang": "cql2-text", "limit": 100},
    "search: free text (q)": {"q": "glacier", "limit": 100},
}


@dataclass
class Sample:
    api_calls: int = 0
    api_ms: float = 0.0
    api_store_requests: int = 0  # of ``requests``, those the API function made (the rest: event functions)
    event_invocations: int = 0  # notifications delivered (one SQS message each)
    event_ms: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0
    bytes_written: int = 0
    response_bytes: int = 0


class Bench:
    """One store, the app's services over it with in-process dispatch off (as deployed), a collector
    of the changes S3 would notify, and the event function to hand them to."""

    def __init__(self, store: Any) -> None:
        from chalice.test import Client

        from app import app
        from chalicelib import services
        from chalicelib.settings import Settings
        from deploy.stack import store_rules
        self.store, self.services = store, services
        services.configure(store=store, settings=Settings(store_uri=store.uri, public_url="http://bench",
                                                          dispatch_events=False))
        services.root().close()  # nothing runs in-process: S3 notifies the event function
        self.rules = store_rules()
        self.pending: list[Any] = []
        store.subscribe(self._collect)
        self.client = Client(app)

    def _collect(self, change: Any) -> None:
        if any(change.key.startswith(p) and change.key.endswith(s) for p, s in self.rules):
            self.pending.append(change)

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             sample: Sample) -> Any:
        headers = {"Content-Type": "application/octet-stream" if raw is not None else "application/json"}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        before = self.store.meter.usage()
        started = time.perf_counter()
        resp = getattr(self.client.http, method.lower())(path, body=data, headers=headers)
        sample.api_ms += (time.perf_counter() - started) * 1000
        sample.api_store_requests += (self.store.meter.usage() - before).total
        sample.api_calls += 1
        sample.response_bytes += len(resp.body or b"")
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.body[:300]!r}")
        try:
            return json.loads(resp.body)
        except ValueError:
            return resp.body

    def drain(self, sample: Sample) -> None:
        """Deliver what S3 would notify, one message per invocation (low traffic), cascades included."""
        from chalicelib.events.notifications import s3_event_for
        from chalicelib.events.sqs import handle_sqs_batch
        for _ in range(10):
            if not self.pending:
                return
            changes, self.pending = self.pending, []
            for change in changes:
                body = json.dumps(s3_event_for(self.store.event_source, [change]))
                event = {"Records": [{"messageId": uuid.uuid4().hex, "receiptHandle": "r", "body": body,
                                      "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                                      "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                                      "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench"}]}
                started = time.perf_counter()
                failed = handle_sqs_batch(event, self.services.root())["batchItemFailures"]
                sample.event_ms += (time.perf_counter() - started) * 1000
                sample.event_invocations += 1
                if failed:
                    raise RuntimeError(f"event of {change.key} failed")
        raise RuntimeError("events still cascading after 10 rounds")

    def measure(self, fn: Callable[[Sample], None], repeat: int) -> dict[str, Any]:
        samples = []
        for _ in range(repeat + 1):  # the first run warms caches (a warm Lambda), not counted
            sample = Sample()
            before = self.store.meter.usage()
            fn(sample)
            self.drain(sample)
            used = self.store.meter.usage() - before
            sample.requests.update(used.requests)
            sample.bytes_read, sample.bytes_written = used.bytes_read, used.bytes_written
            samples.append(sample)
        samples = samples[1:]

        def med(get: Callable[[Sample], float]) -> float:
            return float(statistics.median(get(s) for s in samples))
        kinds = sorted({k for s in samples for k in s.requests})
        return {"api_calls": med(lambda s: s.api_calls), "api_ms": round(med(lambda s: s.api_ms), 2),
                "api_store_requests": med(lambda s: s.api_store_requests),
                "event_invocations": med(lambda s: s.event_invocations),
                "event_ms": round(med(lambda s: s.event_ms), 2),
                "requests": {k: med(lambda s: s.requests.get(k, 0)) for k in kinds},
                "bytes_read": med(lambda s: s.bytes_read), "bytes_written": med(lambda s: s.bytes_written),
                "response_bytes": med(lambda s: s.response_bytes)}


def seed_items(store: Any, n: int, tmp: Path) -> float:
    """Publish ``n`` synthetic items; the bytes the store holds per item (item JSON, pages, index)."""
    from chalicelib.stac.publish import publish_paths
    from tests.helpers.synthetic import make_items
    path = tmp / "items.ndjson"
    with path.open("w") as fh:
        for i, item in enumerate(make_items(n)):
            item["collection"] = "ai-model" if i % 3 == 0 else "dataset"
            fh.write(json.dumps(item) + "\n")
    report = publish_paths(store, [path], progress=False)
    assert report.published == n, report.as_dict()
    return sum(o.size for o in store.list("")) / n


def operations(b: Bench, items: int, repeat: int) -> dict[str, dict[str, Any]]:
    import random

    from chalicelib.stac import catalog
    from tests.helpers.synthetic import make_item
    api = "/mlflow/api/2.0/mlflow"
    seed = Sample()
    exp = b.call("POST", f"{api}/experiments/create", {"name": f"bench-{uuid.uuid4().hex[:8]}"}, sample=seed)
    exp_id = exp["experiment_id"]
    runs = [b.call("POST", f"{api}/runs/create", {"experiment_id": exp_id}, sample=seed)["run"]["info"]
            for _ in range(20)]
    run_id = runs[0]["run_id"]
    for i, run in enumerate(runs):
        b.call("POST", f"{api}/runs/log-batch", {"run_id": run["run_id"], "metrics": [
            {"key": "loss", "value": 1 / (i + 1), "timestamp": 1, "step": 0}], "params": [
            {"key": "lr", "value": str(i)}]}, sample=seed)
    b.drain(seed)
    out: dict[str, dict[str, Any]] = {}
    def search(body: dict[str, Any]) -> Callable[[Sample], None]:
        return lambda s: b.call("POST", "/stac/search", body, sample=s)
    for label, body in SEARCHES.items():
        out[label] = b.measure(search(body), repeat)
    out["item by id"] = b.measure(
        lambda s: b.call("GET", "/stac/collections/dataset/items/item-0000001", sample=s), repeat)
    rng = random.Random(7)

    def publish(s: Sample) -> None:  # a producer writes an item JSON (1 PUT); the event function publishes it
        item = make_item(rng.randrange(10**9), rng, collection="dataset", prefix=f"new{time.time_ns()}")
        b.store.put_json(catalog.item_key("dataset", item["id"]), item)
    out["publish one item"] = b.measure(publish, repeat)
    step = iter(range(10**6))
    out["log_batch (10 metrics)"] = b.measure(lambda s: b.call("POST", f"{api}/runs/log-batch", {
        "run_id": run_id, "metrics": [{"key": f"m{k}", "value": k / 3, "timestamp": 1, "step": next(step)}
                                      for k in range(10)]}, sample=s), repeat)
    out["create_run"] = b.measure(lambda s: b.call("POST", f"{api}/runs/create", {"experiment_id": exp_id},
                                                   sample=s), repeat)
    out["search_runs (1 experiment, 20+ runs)"] = b.measure(lambda s: b.call("POST", f"{api}/runs/search", {
        "experiment_ids": [exp_id], "max_results": 100}, sample=s), repeat)
    model_path = f"{exp_id}/{run_id}/artifacts/model"
    b.call("PUT", f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{model_path}/MLmodel",
           raw=b"artifact_path: model\nflavors: {}\n", sample=seed)
    b.drain(seed)

    def register(s: Sample) -> None:
        name = f"model-{uuid.uuid4().hex[:8]}"
        b.call("POST", f"{api}/registered-models/create", {"name": name}, sample=s)
        b.call("POST", f"{api}/model-versions/create", {"name": name, "run_id": run_id,
                                                        "source": f"mlflow-artifacts:/{model_path}"}, sample=s)
    out["model registration (create + version + publication)"] = b.measure(register, repeat)
    blob = os.urandom(MB)
    out["artifact upload, 1 MB (proxied)"] = b.measure(lambda s: b.call(
        "PUT", f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts/data-{uuid.uuid4().hex}.bin",
        raw=blob, sample=s), repeat)
    if hasattr(b.store, "client"):  # S3: what the client does with STACFLOW_ARTIFACT_ROOT=s3://… (boto3, 8 MB parts)
        import io
        from chalicelib.store import CREATED, Change
        big = os.urandom(DIRECT_MB * MB)

        def direct(s: Sample) -> None:
            key = f"artifacts/{exp_id}/{run_id}/data-{uuid.uuid4().hex}.bin"
            b.store.client.upload_fileobj(io.BytesIO(big), b.store.bucket, b.store.prefix + key)
            b.pending.append(Change(CREATED, key, "", len(big)))  # the stack notifies the artifact root too
        out[DIRECT] = b.measure(direct, repeat)
    return out


@contextmanager
def backend(kind: str, tmp: Path) -> Iterator[Any]:
    if kind == "local":
        from chalicelib.store.local import LocalStore
        yield LocalStore(tmp / "store", fsync=False)
        return
    import boto3
    from moto.server import ThreadedMotoServer

    from chalicelib.store.s3 import S3Store
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3").create_bucket(Bucket="bench-store")
        yield S3Store("bench-store", "data", emit_events=True)  # events only to the bench's collector
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.stop()


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    kinds = ("GET", "PUT", "LIST", "HEAD", "DELETE", "MULTIPART")
    lines = [f"| operation | store | API ms | events | event ms | {' | '.join(kinds)} | KB read | KB written | response KB |",
             "|" + " --- |" * (5 + len(kinds) + 3)]
    for store_kind, ops in results.items():
        for op, r in ops.items():
            cells = [op, store_kind, f"{r['api_ms']:.1f}", f"{r['event_invocations']:g}", f"{r['event_ms']:.1f}",
                     *(f"{r['requests'].get(k, 0):g}" for k in kinds), f"{r['bytes_read'] / 1024:.1f}",
                     f"{r['bytes_written'] / 1024:.1f}", f"{r['response_bytes'] / 1024:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1000, help="catalog size before the searches")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stores", default="local,s3")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "measured_requests.json")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import logging
    logging.disable(logging.WARNING)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    stored: dict[str, int] = {}
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp, backend(kind, Path(tmp)) as store:
            stored[kind] = round(seed_items(store, args.items, Path(tmp)))
            results[kind] = operations(Bench(store), args.items, args.repeat)
    from chalicelib import services
    services.configure()
    doc = {"measured": time.strftime("%Y-%m-%d"), "items": args.items, "repeat": args.repeat, "bytes_per_item": stored,
           "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    print(f"\nstore bytes per catalog item (item, pages, search index) at {args.items} items: {stored}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
