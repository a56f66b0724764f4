"""Registry -> STAC publication benchmark.

1. Latency (real mlflow client against ``stacflow serve`` on a local store): time from
   ``create_model_version`` returning to the version's item being found by ``POST /stac/search``,
   p50/p95 over --versions versions (all backed by one logged ONNX model, so files are present).
2. Cost of publishing one version when the model already has N registered versions (in-process,
   over a counting local store, with the same event dispatch ``stacflow serve`` uses): wall time and
   store requests of ``create_model_version`` + the registry function + the catalog function, and of
   republishing one version (the registry function, plus the catalog function its item write
   triggers). Earlier versions are written directly (no events) to set up N fast.

    .venv/bin/python bench/registry_bench.py [--versions 50] [--scales 10,10000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import REPO, percentiles, stacflow_serve


def _onnx_model() -> Any:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    return to_onnx(LogisticRegression(max_iter=300).fit(X, y), X[:1], options={"zipmap": False})


def _found(url: str, item_id: str) -> bool:
    body = json.dumps({"collections": ["ai-model"], "ids": [item_id]}).encode()
    req = urllib.request.Request(f"{url}/stac/search", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return bool(json.loads(resp.read())["features"])


def latency(versions: int) -> dict[str, Any]:
    import mlflow
    with tempfile.TemporaryDirectory() as tmp, stacflow_serve(f"file://{tmp}/store") as server:
        url = server.url
        mlflow.set_tracking_uri(f"{url}/mlflow")
        client = mlflow.MlflowClient()
        with mlflow.start_run():
            info = mlflow.onnx.log_model(_onnx_model(), name="model")
        client.create_registered_model("bench")
        create, visible = [], []
        for _ in range(versions):
            t0 = time.perf_counter()
            mv = client.create_model_version("bench", f"models:/{info.model_id}", model_id=info.model_id)
            t1 = time.perf_counter()
            while not _found(url, f"bench-v{mv.version}"):
                time.sleep(0.005)
            visible.append(time.perf_counter() - t1)
            create.append(t1 - t0)
    return {"versions": versions, "create_ms": _stats(create), "create_to_searchable_ms": _stats(visible)}


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    p50, p95 = percentiles(ms)
    return {"p50": round(p50, 1), "p95": round(p95, 1), "max": round(max(ms), 1)}


def scale_cost(n: int, repeat: int) -> dict[str, Any]:
    from chalicelib import services
    from chalicelib.registry import records as rec
    from chalicelib.registry.lineage import ServiceTracking
    from chalicelib.registry.publication import Context, publish_keys
    from chalicelib.registry.service import RegistryService
    from chalicelib.store.local import LocalStore
    from chalicelib.tracking.service import TrackingService
    from tests.helpers.stores import InstrumentedStore

    with tempfile.TemporaryDirectory() as tmp:
        store = InstrumentedStore(LocalStore(Path(tmp) / "store", fsync=False))
        services.configure(store=store)  # in-process dispatch, as under `stacflow serve`
        tracking = TrackingService(store)
        registry = RegistryService(store, ServiceTracking(tracking))
        run = tracking.create_run({"experiment_id": tracking.create_experiment("e", None, [])}).info
        files = "mlflow-artifacts/" + run.artifact_uri.split(":", 1)[1].strip("/") + "/model"
        store.put(f"{files}/model.onnx", _onnx_model().SerializeToString())
        store.put(f"{files}/MLmodel", b"flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.23.2\n")
        uid = registry.create_registered_model("scale").uid
        template = registry.create_model_version("scale", f"runs:/{run.run_id}/model")  # version 1, published
        quiet = copy.copy(store.inner)
        quiet._listeners = []  # setup writes without events
        for number in range(2, n + 1):
            template.version = number
            quiet.put_json(rec.version_key(uid, number), template.to_record())
        quiet.put_json(rec.hint_key(uid), {"next": n + 1})
        registry.index.refresh(uid, all_versions=True)  # as if they had been registered one by one

        chain, chain_requests = [], []
        for _ in range(repeat + 1):  # the first one warms caches and imports: not counted
            store.calls.clear()
            t0 = time.perf_counter()
            registry.create_model_version("scale", f"runs:/{run.run_id}/model")
            chain.append(time.perf_counter() - t0)
            chain_requests.append(dict(store.calls))
        chain = chain[1:]
        alone, alone_requests = [], []
        ctx = Context(store=store, tracking=ServiceTracking(tracking), public_url="http://127.0.0.1:8000")
        for i in range(repeat):
            number = n + 2 + i
            store.delete(f"collections/ai-model/items/scale-v{number}.json")
            store.calls.clear()
            t0 = time.perf_counter()
            publish_keys(ctx, [rec.version_key(uid, number)])
            alone.append(time.perf_counter() - t0)
            alone_requests.append(dict(store.calls))
        services.configure()
    return {"registered_versions": n, "create_and_publish_ms": _stats(chain), "requests": chain_requests[-1],
            "registry_function_ms": _stats(alone), "registry_function_requests": alone_requests[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--scales", default="10,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--one-scale", type=int, help=argparse.SUPPRESS)  # internal: one scale, JSON out
    args = parser.parse_args()
    if args.one_scale:
        print(json.dumps(scale_cost(args.one_scale, args.repeat)))
        return
    report: dict[str, Any] = {}
    if not args.skip_latency:
        report["latency"] = latency(args.versions)
    # Each scale in a fresh process: in-process state left by one scale must not tilt the other.
    report["scale"] = [json.loads(subprocess.run(
        [sys.executable, __file__, "--one-scale", n, "--repeat", str(args.repeat)], cwd=REPO, check=True,
        capture_output=True, text=True).stdout.strip().splitlines()[-1]) for n in args.scales.split(",")]
    if len(report["scale"]) >= 2:
        first, last = report["scale"][0], report["scale"][-1]
        report["ratio_create_and_publish_p50"] = round(
            last["create_and_publish_ms"]["p50"] / first["create_and_publish_ms"]["p50"], 2)
        report["ratio_registry_function_p50"] = round(
            last["registry_function_ms"]["p50"] / first["registry_function_ms"]["p50"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
