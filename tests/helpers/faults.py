"""Fault injection over the store port: what S3 does on a bad day, on a chosen share of requests.

``inject(store, FaultPlan(...))`` adds a hook to an ``InstrumentedStore``: before a request it may
raise S3's 503 SlowDown, a read timeout or a dropped connection (botocore's own exception types, as
the S3 adapter would let them through), or hold the request for a latency spike of seconds; after
a PUT it may "crash": the write landed, the caller's operation dies before its next write (its
client sees a dropped connection). Seeded, so a run can be repeated; ``counts`` says what was
injected; ``active`` switches it off ("after the faults stop").
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from chalicelib.store import ObjectStore

from .stores import Call, InstrumentedStore

KINDS = ("slowdown", "timeout", "reset", "latency", "crash")
ENDPOINT = "https://s3.amazonaws.com"


@dataclass
class FaultPlan:
    share: float = 0.05  # of requests that get a fault
    kinds: tuple[str, ...] = KINDS
    latency_s: tuple[float, float] = (2.0, 4.0)  # a spike's length
    seed: int = 0
    active: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    report: Callable[[str, Call], None] | None = None  # told of every fault injected
    spare_main_thread: bool = False  # a server's start-up (its main thread) runs fault-free
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _draw(self, call: Call, when: str) -> str | None:
        with self._lock:
            if when == "before":
                self.requests += 1
            if self.spare_main_thread and threading.current_thread() is threading.main_thread():
                return None
            if not self.active or self._rng.random() >= self.share:
                return None
            kinds = [k for k in self.kinds if (k == "crash") == (when == "after")]
            if when == "after" and call.verb != "PUT":
                return None
            if not kinds:
                return None
            kind = self._rng.choice(kinds)
            self.counts[kind] += 1
        if self.report is not None:
            self.report(kind, call)
        return kind

    def hook(self, when: str, call: Call) -> None:
        kind = self._draw(call, when)
        if kind is None:
            return
        raise_fault(kind, call, self.latency_s)


def raise_fault(kind: str, call: Call, latency_s: tuple[float, float] = (2.0, 4.0)) -> None:
    from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
    if kind == "slowdown":
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                           "ResponseMetadata": {"HTTPStatusCode": 503}}, _operation(call))
    if kind == "timeout":
        raise ReadTimeoutError(endpoint_url=ENDPOINT)
    if kind == "reset":
        raise ConnectionClosedError(endpoint_url=ENDPOINT)
    if kind == "latency":
        time.sleep(random.uniform(*latency_s))
        return
    if kind == "crash":  # the PUT landed; whatever the operation meant to write next never is
        raise ConnectionResetError(f"crashed after PUT {call.key}")
    raise ValueError(kind)


def _operation(call: Call) -> str:
    return {"GET": "GetObject", "PUT": "PutObject", "LIST": "ListObjectsV2", "HEAD": "HeadObject",
            "DELETE": "DeleteObject", "POST": "CreateMultipartUpload"}.get(call.verb, "GetObject")


def inject(store: ObjectStore, plan: FaultPlan) -> InstrumentedStore:
    wrapped = store if isinstance(store, InstrumentedStore) else InstrumentedStore(store)
    wrapped.hooks.append(plan.hook)
    return wrapped


def plan_from_env(env: Any) -> FaultPlan | None:
    """``STACFLOW_TEST_FAULTS=share[:seed[:kinds,…[:latency_max]]]`` (the faulty server's setting)."""
    spec = env.get("STACFLOW_TEST_FAULTS")
    if not spec:
        return None
    parts = spec.split(":")
    plan = FaultPlan(share=float(parts[0]), seed=int(parts[1]) if len(parts) > 1 else 0)
    if len(parts) > 2 and parts[2]:
        plan.kinds = tuple(parts[2].split(","))
    if len(parts) > 3:
        top = float(parts[3])
        plan.latency_s = (top / 2, top)
    plan._rng = random.Random(plan.seed)
    return plan
