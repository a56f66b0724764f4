"""bench/cost.py's arithmetic: memory as Chalice resolves it, each price applied to what it bills."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from types import ModuleType

import pytest

from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cost", REPO / "bench" / "cost.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prices() -> dict:  # type: ignore[type-arg]
    doc = json.loads((REPO / "bench" / "aws_prices_us-east-1.json").read_text())
    assert doc["as_of"]
    assert doc["source"]
    assert "verify" in doc["warning"]
    return doc  # type: ignore[no-any-return]


def test_memory_follows_chalice_precedence(cost: ModuleType) -> None:
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    assert cost.memory_mb(config, "dev", "api_handler") == 1769
    assert cost.memory_mb(config, "dev", "on_store_event") == 1024
    assert cost.memory_mb(config, "prod", "api_handler") == 2048
    assert cost.memory_mb(config, "prod", "on_store_event") == 2048
    assert cost.memory_mb({"lambda_memory_size": 512}, "x", "f") == 512


def test_each_price_applies_to_what_it_bills(cost: ModuleType, prices: dict) -> None:  # type: ignore[type-arg]
    measured = {"api_calls": 1, "api_ms": 99.2, "api_store_requests": 2, "event_invocations": 2, "event_ms": 40,
                "requests": {"GET": 3, "HEAD": 1, "LIST": 1, "PUT": 2, "MULTIPART": 1, "DELETE": 5, "PRESIGN": 4},
                "bytes_read": 0, "bytes_written": 0, "response_bytes": 2 * cost.GB}
    c = cost.operation_cost(measured, prices, {"api_handler": 2048, "on_store_event": 1024}, s3_ms=10)
    gbs = prices["lambda"]["gb_second_x86"]
    # API: 99.2 ms + 2 requests x 10 ms, rounded up to 120 ms at 2 GB; events: (40 + 11 x 10) / 2 = 75 ms at 1 GB (DELETEs are requests too)
    expected_lambda = 3 * prices["lambda"]["request_per_million"] / 1e6 + 0.120 * 2 * gbs + 2 * 0.075 * 1 * gbs
    assert c.lambda_ == pytest.approx(expected_lambda)
    assert c.api_gateway == pytest.approx(3.50e-6)
    assert c.sqs == pytest.approx(2 * 3 * 0.40e-6)
    # PUT, LIST and MULTIPART at the higher rate, GET and HEAD at the lower; DELETE is free, PRESIGN no request
    assert c.s3_requests == pytest.approx(4 * 0.005 / 1000 + 4 * 0.0004 / 1000)
    assert c.transfer == pytest.approx(2 * 0.09)
    assert c.cloudwatch == pytest.approx(3 * cost.LOG_BYTES / cost.GB * 0.50)
    assert not math.isclose(c.total, 0)


def _args(cost: ModuleType, tmp_path, **counts: float) -> argparse.Namespace:  # type: ignore[no-untyped-def]
    op = {"api_calls": 1, "api_ms": 10, "api_store_requests": 1, "event_invocations": 0, "event_ms": 0,
          "requests": {"GET": 1}, "bytes_read": 0, "bytes_written": 0, "response_bytes": 0}
    ops = {name: op for names, *_ in cost.WORKLOAD.values() for name in names}
    measured = tmp_path / "m.json"
    measured.write_text(json.dumps({"measured": "today", "items": 1, "repeat": 1, "bytes_per_item": {"s3": 1024},
                                    "results": {"s3": ops}}))
    flags = {flag: counts.get(flag, 0.0) for flag in cost.FLAGS.values()}
    return argparse.Namespace(measured=measured, prices=REPO / "bench" / "aws_prices_us-east-1.json", store="s3",
                              stage="dev", s3_ms=0.0, items_stored=1024 * 1024, artifact_gb_stored=9,
                              geoparquet_every=counts.get("geoparquet_every", 0.0), **flags)


def test_an_idle_month_costs_storage_and_polling_only(cost: ModuleType, prices: dict, tmp_path) -> None:  # type: ignore[no-untyped-def, type-arg]
    text = cost.report(_args(cost, tmp_path))
    storage = 10 * 0.023  # 1 GiB of items + 9 GB of artifacts
    polling = 2 * cost.IDLE_SQS_REQUESTS * 0.40 / 1e6  # the event function's queue and the geoparquet trigger's
    assert f"**{cost.money(storage + polling)}**" in text.split("Idle month")[1]
    month = next(line for line in text.splitlines() if line.startswith("| **the month**"))
    assert month.endswith(f"**{cost.money(storage + polling)}** |")  # no traffic: no metrics, no requests


def test_the_geoparquet_schedule_is_priced_per_run(cost: ModuleType, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def upkeep(every: float) -> str:
        text = cost.report(_args(cost, tmp_path, geoparquet_every=every))
        return next(line for line in text.splitlines() if line.startswith("| stac-geoparquet upkeep"))
    assert "| 8,640 |" in upkeep(5)  # every 5 minutes for 30 days
    assert "| 0 |" in upkeep(0)
    assert upkeep(5) != upkeep(0)


def test_traffic_is_priced_per_operation_count(cost: ModuleType, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = cost.report(_args(cost, tmp_path, log_batches=1_000_000))
    row = next(line for line in text.splitlines() if line.startswith("| log_batch calls"))
    assert "| $3.50 |" in row  # one API Gateway request per call
    assert "| $0.40 |" in row  # one GET per call


def test_the_bench_measures_each_operation_through_the_routes_and_events(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """bench/store_requests.py over a small local catalog: what a search, a write, a publication cost."""
    spec = importlib.util.spec_from_file_location("bench_store_requests", REPO / "bench" / "store_requests.py")
    assert spec is not None
    assert spec.loader is not None
    sys.path.insert(0, str(REPO / "bench"))  # its ``harness`` import
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        from chalicelib import services
        from chalicelib.store.local import LocalStore
        store = LocalStore(tmp_path / "store", fsync=False)
        module.seed_items(store, 30, tmp_path)
        try:
            out = module.operations(module.Bench(store), 30, 1)
        finally:
            services.configure()
    finally:
        sys.path.remove(str(REPO / "bench"))
    for kind in module.SEARCHES:  # the index log's LIST and the manifest's conditional GET, nothing else
        assert out[kind]["requests"] == {"GET": 1, "LIST": 1}, kind
    assert out["item by id"]["requests"] == {"GET": 1}
    publish = out["publish one item"]
    assert publish["api_calls"] == 0
    assert publish["event_invocations"] >= 1
    assert publish["requests"]["PUT"] >= 2  # the producer's item, then the event function's pages and index
    upload = out["artifact upload, 1 MB (proxied)"]
    assert upload["bytes_written"] == module.MB
    assert upload["requests"] == {"PUT": 1}
    registration = out["model registration (create + version + publication)"]
    assert registration["api_calls"] == 2
    assert registration["event_invocations"] >= 1
