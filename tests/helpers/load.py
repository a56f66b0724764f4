"""A mixed load over one or more ``stacflow serve`` workers, and the ledger that proves nothing was lost.

Threads pick a worker per call and mix STAC searches, tracking writes (``runs/log-batch``, a metric
key per call) and model registrations (``model-versions/create`` tagged with a call id). Calls are
retried as the MLflow client does (408/429/5xx and dropped connections); any other failure, or a
2xx whose body is not what was asked, is a **wrong answer**. ``verify`` then reads everything back:
every acknowledged metric exactly once, every acknowledged version present with its source.
"""
from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
API = "/mlflow/api/2.0/mlflow"
MLMODEL = b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"


@dataclass
class Ledger:
    """What the service acknowledged, to be accounted for afterwards."""

    metrics: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)  # run -> (key, value, step)
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # call id -> (model, version)
    retried_versions: set[str] = field(default_factory=set)  # call ids whose create was retried
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Result:
    calls: Counter[str] = field(default_factory=Counter)  # by operation, acknowledged
    attempts: int = 0
    retries: int = 0
    retry_statuses: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0  # still failing (retryably) after every attempt
    wrong: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds per acknowledged call, retries included
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)) if lat else (lambda q: None)
        done = sum(self.calls.values())
        return {"calls": dict(self.calls), "acknowledged": done, "attempts": self.attempts, "retries": self.retries,
                "retry_statuses": dict(self.retry_statuses), "gave_up": self.gave_up, "wrong": len(self.wrong),
                "seconds": round(self.seconds, 2), "throughput_per_s": round(done / self.seconds, 1) if self.seconds else 0,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


class Caller:
    def __init__(self, urls: list[str], result: Result, rng: random.Random, attempts: int = 8,
                 timeout: float = 30.0) -> None:
        self.urls, self.result, self.rng, self.attempts, self.timeout = urls, result, rng, attempts, timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, *, check: Callable[[requests.Response], bool] = lambda r: True,
             accept: Callable[[requests.Response, int], bool] = lambda r, attempt: False, **kwargs: Any
             ) -> tuple[requests.Response | None, int]:
        """(the acknowledged response, or None after every attempt failed retryably; attempts used)."""
        for attempt in range(1, self.attempts + 1):
            url = self.rng.choice(self.urls) + path
            with self.result.lock:
                self.result.attempts += 1
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as err:  # dropped connection: retry, like the MLflow client
                self._retry(type(err).__name__)
                continue
            if resp.status_code in RETRYABLE:
                self._retry(str(resp.status_code))
                continue
            if (resp.ok and check(resp)) or accept(resp, attempt):
                return resp, attempt
            with self.result.lock:
                self.result.wrong.append(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
            return None, attempt
        with self.result.lock:
            self.result.gave_up += 1
        return None, self.attempts

    def _retry(self, why: str) -> None:
        with self.result.lock:
            self.result.retries += 1
            self.result.retry_statuses[why] += 1
        time.sleep(min(0.05 * self.rng.random() * 4, 0.2))


def setup_world(url: str, threads: int, tag: str) -> list[dict[str, str]]:
    """One experiment, run and registered model per thread, and a model file under each run."""
    s, out = requests.Session(), []
    for k in range(threads):
        eid = s.post(url + API + "/experiments/create", json={"name": f"load-{tag}-{k}"}).json()["experiment_id"]
        run = s.post(url + API + "/runs/create", json={"experiment_id": eid}).json()["run"]["info"]
        artifacts = run["artifact_uri"].split(":", 1)[1].strip("/")
        put = s.put(f"{url}/mlflow/api/2.0/mlflow-artifacts/artifacts/{artifacts}/model/MLmodel", data=MLMODEL)
        assert put.ok, put.text
        model = f"load-{tag}-{k}"
        assert s.post(url + API + "/registered-models/create", json={"name": model}).ok
        out.append({"experiment": eid, "run": run["run_id"], "model": model})
    return out


def run_load(urls: list[str], world: list[dict[str, str]], *, seconds: float, max_calls: int, seed: int = 0,
             mix: tuple[float, float, float] = (0.5, 0.35, 0.15)) -> tuple[Result, Ledger]:
    """Each thread of ``world`` calls until ``seconds`` pass or ``max_calls`` (in all) are made."""
    result, ledger = Result(), Ledger()
    budget = [max_calls]
    budget_lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(k: int, own: dict[str, str]) -> None:
        rng = random.Random(seed * 1000 + k)
        caller = Caller(urls, result, rng)
        n = 0
        while time.monotonic() < deadline:
            with budget_lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            n += 1
            started = time.perf_counter()
            draw = rng.random()
            if draw < mix[0]:
                op, ok = "search", _search(caller, rng)
            elif draw < mix[0] + mix[1]:
                op, ok = "log_batch", _log_batch(caller, own, k, n, ledger)
            else:
                op, ok = "register", _register(caller, own, ledger)
            if ok:
                with result.lock:
                    result.calls[op] += 1
                    result.latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(k, own), name=f"load-{k}") for k, own in enumerate(world)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result, ledger


def _search(caller: Caller, rng: random.Random) -> bool:
    if rng.random() < 0.5:
        x, y = rng.uniform(-170, 160), rng.uniform(-80, 70)
        body = {"limit": rng.choice([1, 10, 50]), "bbox": [x, y, x + 10, y + 10]}
        resp, _ = caller.call("POST", "/stac/search", json=body,
                              check=lambda r: r.json().get("type") == "FeatureCollection")
    else:
        resp, _ = caller.call("GET", "/stac/collections/ai-model/items?limit=20",
                              check=lambda r: isinstance(r.json().get("features"), list))
    return resp is not None


def _log_batch(caller: Caller, own: dict[str, str], k: int, n: int, ledger: Ledger) -> bool:
    metrics = [{"key": f"m{k}_{n}_{i}", "value": float(n * 10 + i), "timestamp": 1_700_000_000_000 + n, "step": i}
               for i in range(3)]
    resp, _ = caller.call("POST", API + "/runs/log-batch", json={"run_id": own["run"], "metrics": metrics},
                          check=lambda r: r.json() == {})
    if resp is None:
        return False
    with ledger.lock:
        ledger.metrics.setdefault(own["run"], []).extend((m["key"], m["value"], m["step"]) for m in metrics)
    return True


def _register(caller: Caller, own: dict[str, str], ledger: Ledger) -> bool:
    call_id = uuid.uuid4().hex
    source = f"runs:/{own['run']}/model"
    resp, attempts = caller.call(
        "POST", API + "/model-versions/create",
        json={"name": own["model"], "source": source, "run_id": own["run"], "tags": [{"key": "call", "value": call_id}]},
        check=lambda r: r.json()["model_version"]["name"] == own["model"])
    with ledger.lock:
        if attempts > 1:  # answered or not, a retried create may have registered more than once
            ledger.retried_versions.add(call_id)
        if resp is not None:
            ledger.versions[call_id] = (own["model"], resp.json()["model_version"]["version"])
    return resp is not None


def verify(url: str, world: list[dict[str, str]], ledger: Ledger) -> dict[str, Any]:
    """Read everything back (no faults): lost or duplicated metrics and versions."""
    s = requests.Session()
    lost_metrics = duplicated_metrics = checked = 0
    for run_id, logged in ledger.metrics.items():
        for key, value, step in logged:
            hist = s.get(url + API + "/metrics/get-history", params={"run_id": run_id, "metric_key": key}).json()
            got = [(m["value"], m["step"]) for m in hist.get("metrics", [])]
            checked += 1
            lost_metrics += (value, step) not in got
            duplicated_metrics += max(0, got.count((value, step)) - 1)
    by_call: Counter[str] = Counter()
    versions: dict[tuple[str, str], str] = {}
    for own in world:
        found = s.get(url + API + "/model-versions/search", params={"filter": f"name='{own['model']}'",
                                                                  "max_results": 10000}).json()
        for mv in found.get("model_versions", []):
            tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
            by_call[tags.get("call", "")] += 1
            versions[(mv["name"], mv["version"])] = tags.get("call", "")
    lost_versions = sum(1 for call_id, mv in ledger.versions.items() if versions.get(mv) != call_id)
    extra = {c: n for c, n in by_call.items() if n > 1}
    return {"metrics_checked": checked, "metrics_lost": lost_metrics, "metrics_duplicated": duplicated_metrics,
            "versions_acknowledged": len(ledger.versions), "versions_found": len(versions),
            "versions_lost": lost_versions,
            # a create whose response was lost (crash after its write) and was retried: MLflow's API has no
            # idempotency key, so the retry registers a second version; only retried calls may do that
            "versions_duplicated_by_retries": sum(n - 1 for n in extra.values()),
            "versions_duplicated_without_retry": sum(n - 1 for c, n in extra.items() if c not in ledger.retried_versions)}


def write_source_events(store: Any, path: Any) -> int:
    """Every source object's ObjectCreated notification (items, registry records, model files), one per
    line, as a queue would redeliver them: what ``stacflow replay-events`` takes after an outage."""
    import json

    from chalicelib.events.dispatch import handler_for
    from chalicelib.events.notifications import s3_event_for
    from chalicelib.store import CREATED, Change
    changes = [Change(CREATED, info.key, info.etag, info.size) for info in store.list("")
               if not info.key.startswith("datasets/") and handler_for(info.key) is not None]
    with open(path, "w") as out:
        for change in changes:
            out.write(json.dumps(s3_event_for(store.event_source, [change])) + "\n")
    return len(changes)
