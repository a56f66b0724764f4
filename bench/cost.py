"""What a month of stacflow costs on AWS, from measured requests, next to what its peers cost idle.

Reads the per-operation measurements of ``bench/store_requests.py`` (store requests by kind, bytes,
API and event function time, notifications, response size), the functions' memory from
``.chalice/config.json`` (per stage) and a dated table of list prices (``bench/aws_prices_us-east-1.json``,
verify before relying on it), and prints, for a stated monthly workload and for an idle month:
Lambda (requests + GB-s of the measured durations), API Gateway, SQS, S3 requests and storage, data
transfer out and CloudWatch, and the stac-geoparquet function's scheduled upkeep; then the always-on floor of the peers (pgstac on RDS, stac-server on
OpenSearch, MLflow on EC2 + RDS).

    .venv/bin/python bench/cost.py [--store s3] [--stage dev] [--s3-ms 0] [--searches 1000000] ...

Model (each assumption is a flag or a constant here):
- every API call is one API Gateway request and one invocation of the API function;
- every write S3 notifies is one SQS message and one invocation of the event function (batches of one,
  as at low traffic; batching makes both cheaper), and 3 SQS requests (S3's send, Lambda's receive and
  delete); the event source mapping's idle long polling is ``IDLE_SQS_REQUESTS`` a month;
- billed duration: the measured wall time per invocation (warm), rounded up to the millisecond, plus
  ``--s3-ms`` per store request for S3's latency beyond that of the moto server it was measured on;
- each invocation writes ``LOG_BYTES`` of CloudWatch logs (the request line, the EMF metrics, Lambda's
  START/END/REPORT lines); ``METRICS`` custom metrics exist in a month with traffic;
- free tiers are not applied.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GB = 1 << 30
LOG_BYTES = 1536
METRICS = 9  # Requests, Errors, ClientErrors, Latency, StoreRequests, Publications, ModelPublications, RejectedItems, EventLag
IDLE_SQS_REQUESTS = 5 * 3 * 60 * 24 * 30  # 5 pollers, one 20 s long poll each, all month: 648,000
SQS_PER_MESSAGE = 3
# The geoparquet function (deploy/stack.py, 2048 MB). Its backstop schedule (every 5 minutes): a warm run
# where nothing changed makes, per collection (2), one LIST of the index log and two conditional GETs (the
# index's manifest, the dataset's manifest): tests/functions/test_geoparquet.py counts them. Its billed
# duration is mostly those six requests' latency: GEOPARQUET_RUN_MS assumes ~20 ms each plus the checks.
GEOPARQUET_RUN_REQUESTS = {"LIST": 2, "GET": 4}
GEOPARQUET_RUN_MS = 150.0
GEOPARQUET_MEMORY_MB = 2048
# Its trigger: each publication's index write is one more SQS message and (unbatched, the upper bound) one
# run that rewrites one partition: bench/geoparquet_bench.py at 100,000 items measured ~2.7 s and these
# requests (both collections, the warm reader's first view of the new index entry included).
GEOPARQUET_TRIGGERED_REQUESTS = {"GET": 8, "LIST": 4, "PUT": 1}
GEOPARQUET_TRIGGERED_MS = 3000.0
TIER1 = ("PUT", "LIST", "MULTIPART")  # $/1,000 class (PUT, COPY, POST, LIST)
TIER2 = ("GET", "HEAD")  # GET, SELECT and all other requests

# workload label -> (measured operation(s), default count per month, units per operation)
SEARCH_KINDS = ("search: ids (5)", "search: bbox", "search: datetime", "search: CQL2 filter", "search: free text (q)")
WORKLOAD: dict[str, tuple[tuple[str, ...], float, float]] = {
    "searches (5 kinds, evenly)": (SEARCH_KINDS, 1_000_000, 1),
    "items read by id": (("item by id",), 200_000, 1),
    "items published": (("publish one item",), 10_000, 1),
    "log_batch calls": (("log_batch (10 metrics)",), 100_000, 1),
    "runs created": (("create_run",), 10_000, 1),
    "search_runs calls": (("search_runs (1 experiment, 20+ runs)",), 50_000, 1),
    "models registered": (("model registration (create + version + publication)",), 1_000, 1),
    "artifact MB uploaded (proxied, 1 MB files)": (("artifact upload, 1 MB (proxied)",), 10 * 1024, 1),
    "artifact MB uploaded (straight to S3, 64 MB files)": (("artifact upload, 64 MB (straight to S3)",), 0, 64),
}
FLAGS = {"searches (5 kinds, evenly)": "searches", "items read by id": "item_reads",
         "items published": "publications", "log_batch calls": "log_batches", "runs created": "runs",
         "search_runs calls": "run_searches", "models registered": "registrations",
         "artifact MB uploaded (proxied, 1 MB files)": "artifact_mb",
         "artifact MB uploaded (straight to S3, 64 MB files)": "direct_artifact_mb"}


@dataclass
class Cost:
    lambda_: float = 0.0
    api_gateway: float = 0.0
    sqs: float = 0.0
    s3_requests: float = 0.0
    s3_storage: float = 0.0
    transfer: float = 0.0
    cloudwatch: float = 0.0

    @property
    def total(self) -> float:
        return sum(vars(self).values())

    def add(self, other: Cost, times: float = 1.0) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value * times)


def memory_mb(config: dict[str, Any], stage: str, function: str) -> int:
    """The function's memory as Chalice resolves it: stage function, stage, function, then top level."""
    st = config.get("stages", {}).get(stage, {})
    for scope in (st.get("lambda_functions", {}).get(function, {}), st,
                  config.get("lambda_functions", {}).get(function, {}), config):
        if "lambda_memory_size" in scope:
            return int(scope["lambda_memory_size"])
    return 128


def invocation_cost(p: dict[str, Any], ms: float, memory: int) -> float:
    return p["lambda"]["request_per_million"] / 1e6 + math.ceil(ms) / 1000 * memory / 1024 * p["lambda"]["gb_second_x86"]


def operation_cost(r: dict[str, Any], p: dict[str, Any], mem: dict[str, int], s3_ms: float) -> Cost:
    """One operation's cost, from its measured medians."""
    c = Cost()
    total_requests = sum(n for k, n in r["requests"].items() if k != "PRESIGN")
    api_calls, events = r["api_calls"], r["event_invocations"]
    if api_calls:
        per_call = (r["api_ms"] + s3_ms * r.get("api_store_requests", 0)) / api_calls
        c.lambda_ += api_calls * invocation_cost(p, per_call, mem["api_handler"])
        c.api_gateway += api_calls * p["api_gateway"]["rest_request_per_million"] / 1e6
    if events:
        per_event = (r["event_ms"] + s3_ms * (total_requests - r.get("api_store_requests", 0))) / events
        c.lambda_ += events * invocation_cost(p, per_event, mem["on_store_event"])
        c.sqs += events * SQS_PER_MESSAGE * p["sqs"]["standard_request_per_million"] / 1e6
    s3 = p["s3"]
    c.s3_requests += sum(r["requests"].get(k, 0) for k in TIER1) * s3["put_copy_post_list_per_1000"] / 1000
    c.s3_requests += sum(r["requests"].get(k, 0) for k in TIER2) * s3["get_select_other_per_1000"] / 1000
    c.transfer += r["response_bytes"] / GB * p["data_transfer"]["out_to_internet_gb"]
    c.cloudwatch += (api_calls + events) * LOG_BYTES / GB * p["cloudwatch"]["logs_ingest_gb"]
    return c


def storage_cost(p: dict[str, Any], items: float, bytes_per_item: float, artifact_gb: float) -> float:
    return (items * bytes_per_item / GB + artifact_gb) * p["s3"]["standard_gb_month"]


def geoparquet_runs(p: dict[str, Any], runs: float, requests: dict[str, int], ms: float, *, sqs: int = 0) -> Cost:
    """``runs`` invocations of the geoparquet function, each with these store requests and duration."""
    c = Cost()
    c.lambda_ = runs * invocation_cost(p, ms, GEOPARQUET_MEMORY_MB)
    s3 = p["s3"]
    c.s3_requests = runs * (sum(requests.get(k, 0) for k in TIER1) * s3["put_copy_post_list_per_1000"]
                            + sum(requests.get(k, 0) for k in TIER2) * s3["get_select_other_per_1000"]) / 1000
    c.sqs = runs * sqs * p["sqs"]["standard_request_per_million"] / 1e6
    c.cloudwatch = runs * LOG_BYTES / GB * p["cloudwatch"]["logs_ingest_gb"]
    return c  # (EventBridge: a scheduled rule's events are free, prices["eventbridge"])


def peers(p: dict[str, Any]) -> list[tuple[str, str, float]]:
    q, h = p["peers"], p["peers"]["hours_per_month"]
    rds = q["rds_postgresql_db.t4g.micro_hour"] * h + q["rds_gp3_gb_month"] * q["rds_min_storage_gb"]
    opensearch = q["opensearch_t3.small.search_hour"] * h + q["opensearch_gp3_gb_month"] * 10
    ec2 = q["ec2_t4g.micro_hour"] * h + q["ebs_gp3_gb_month"] * 8 + q["public_ipv4_hour"] * h
    return [("pgstac (stac-fastapi-pgstac)", "RDS PostgreSQL db.t4g.micro, single-AZ, 20 GB gp3", rds),
            ("stac-server", "OpenSearch t3.small.search, one node, 10 GB gp3", opensearch),
            ("MLflow tracking server", "EC2 t4g.micro + 8 GB gp3 + public IPv4, and RDS PostgreSQL db.t4g.micro, "
             "20 GB", ec2 + rds)]


def money(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:,.4f}"


def report(args: argparse.Namespace) -> str:
    measured = json.loads(args.measured.read_text())
    prices = json.loads(args.prices.read_text())
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    mem = {fn: memory_mb(config, args.stage, fn) for fn in ("api_handler", "on_store_event")}
    results = measured["results"][args.store]
    lines = [f"Prices: {prices['region']}, as of {prices['as_of']} ({prices['warning']}).",
             f"Requests measured {measured['measured']} over the {args.store} store at {measured['items']} items "
             f"(median of {measured['repeat']}); stage {args.stage}: API function {mem['api_handler']} MB, "
             f"event function {mem['on_store_event']} MB; S3 latency allowance {args.s3_ms:g} ms per request.", "",
             "| per month | count | Lambda | API Gateway | SQS | S3 requests | transfer out | CloudWatch | total |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    month = Cost()
    for label, (ops, _, units) in WORKLOAD.items():
        count = getattr(args, FLAGS[label])
        if not count:
            continue
        per = Cost()
        for op in ops:
            per.add(operation_cost(results[op], prices, mem, args.s3_ms), 1 / len(ops))
        month.add(per, count / units)
        row = Cost()
        row.add(per, count / units)
        lines.append(f"| {label} | {count:,.0f} | {money(row.lambda_)} | {money(row.api_gateway)} | {money(row.sqs)} | "
                     f"{money(row.s3_requests)} | {money(row.transfer)} | {money(row.cloudwatch)} | "
                     f"**{money(row.total)}** |")
    bytes_per_item = measured["bytes_per_item"][args.store]
    storage = storage_cost(prices, args.items_stored, bytes_per_item, args.artifact_gb_stored)
    idle_sqs = IDLE_SQS_REQUESTS * prices["sqs"]["standard_request_per_million"] / 1e6
    active = any(getattr(args, flag) for flag in FLAGS.values())
    metrics = METRICS * prices["cloudwatch"]["custom_metric_month"] if active else 0.0
    month.s3_storage += storage
    month.sqs += idle_sqs
    month.cloudwatch += metrics
    runs = 30 * 24 * 60 / args.geoparquet_every if args.geoparquet_every else 0.0
    upkeep = geoparquet_runs(prices, runs, GEOPARQUET_RUN_REQUESTS, GEOPARQUET_RUN_MS)
    upkeep.sqs += IDLE_SQS_REQUESTS * prices["sqs"]["standard_request_per_million"] / 1e6  # its trigger's polling
    triggered = geoparquet_runs(prices, args.publications, GEOPARQUET_TRIGGERED_REQUESTS, GEOPARQUET_TRIGGERED_MS,
                                sqs=SQS_PER_MESSAGE)
    month.add(upkeep)
    month.add(triggered)
    lines += [f"| S3 storage: {args.items_stored:,.0f} items ({bytes_per_item:,.0f} B each with pages and index) "
              f"+ {args.artifact_gb_stored:g} GB of artifacts | | | | | | | | **{money(storage)}** |",
              f"| SQS long polling of the event source mapping (idle or not) | {IDLE_SQS_REQUESTS:,} | | | "
              f"{money(idle_sqs)} | | | | **{money(idle_sqs)}** |",
              f"| CloudWatch custom metrics (EMF) | {METRICS} | | | | | | {money(metrics)} | **{money(metrics)}** |",
              f"| stac-geoparquet: a regeneration per publication (triggered, unbatched) | {args.publications:,.0f} | "
              f"{money(triggered.lambda_)} | | {money(triggered.sqs)} | {money(triggered.s3_requests)} | | "
              f"{money(triggered.cloudwatch)} | **{money(triggered.total)}** |",
              f"| stac-geoparquet upkeep: backstop runs (nothing changed) + its trigger queue's polling | {runs:,.0f} | "
              f"{money(upkeep.lambda_)} | | {money(upkeep.sqs)} | {money(upkeep.s3_requests)} | | "
              f"{money(upkeep.cloudwatch)} | **{money(upkeep.total)}** |",
              f"| **the month** | | {money(month.lambda_)} | {money(month.api_gateway)} | {money(month.sqs)} | "
              f"{money(month.s3_requests)} | {money(month.transfer)} | {money(month.cloudwatch)} | "
              f"**{money(month.total)}** |", "",
              f"Idle month (same data stored, no request): S3 storage {money(storage)} + SQS polling {money(idle_sqs)} "
              f"+ stac-geoparquet upkeep {money(upkeep.total)} = **{money(storage + idle_sqs + upkeep.total)}** "
              "(the two event source mappings' polling, 1.3M SQS requests, is mostly inside SQS's free tier of 1M).", "",
              "| peer: always running for the same job | smallest instance | per month, idle |",
              "| --- | --- | --- |"]
    for name, what, dollars in peers(prices):
        lines.append(f"| {name} | {what} | {money(dollars)} |")
    lines += ["", "Peers: instances only (730 h), before any request, their API layer or their storage of artifacts."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measured", type=Path, default=BENCH / "measured_requests.json")
    ap.add_argument("--prices", type=Path, default=BENCH / "aws_prices_us-east-1.json")
    ap.add_argument("--store", default="s3", help="which measurement of --measured (s3 or local)")
    ap.add_argument("--stage", default="dev", help="stage of .chalice/config.json giving the memory sizes")
    ap.add_argument("--s3-ms", type=float, default=0.0, help="latency added per store request (ms)")
    for label, (_, default, _) in WORKLOAD.items():
        ap.add_argument("--" + FLAGS[label].replace("_", "-"), dest=FLAGS[label], type=float, default=default,
                        help=f"{label} per month")
    ap.add_argument("--geoparquet-every", type=float, default=5.0,
                    help="minutes between the geoparquet function's scheduled runs (0: no schedule)")
    ap.add_argument("--items-stored", type=float, default=100_000)
    ap.add_argument("--artifact-gb-stored", type=float, default=50)
    print(report(ap.parse_args()))


if __name__ == "__main__":
    main()
