"""The geoparquet function in the stack: triggered by every search-index log write (S3 -> its own queue),
with a 5-minute schedule as backstop, the store grants and its queue's only."""
from __future__ import annotations

import re

import pytest

from chalicelib.stac.index import LOG_PREFIX
from deploy import stack

LOG_KEY = LOG_PREFIX + "1790000000000000000-ab12cd.json"


def test_the_index_prefix_is_the_index_log() -> None:
    assert stack.INDEX_PREFIX == LOG_PREFIX  # (stack.py does not import the index: no numpy when packaging)


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_index_log_writes_and_nothing_else_reach_the_index_queue(stage_name: str) -> None:
    stage = stack.load_stage(stage_name)
    rules = stage.notifications()[stage.store.bucket]
    matching = [r for r in rules if (stage.store.prefix + LOG_KEY).startswith(r.prefix) and LOG_KEY.endswith(r.suffix)]
    assert [(r.queue, r.events) for r in matching] == [(stack.INDEX_QUEUE, ("s3:ObjectCreated:*",))]
    assert [r for r in rules if r.queue == stack.INDEX_QUEUE] == matching


def test_sam_triggers_the_geoparquet_function_on_index_writes_with_a_schedule_as_backstop() -> None:
    stage = stack.load_stage("dev")
    template = stack.sam_merge_template(stage)
    res = template["Resources"]
    fn = res["GeoparquetFunction"]["Properties"]
    assert fn["Events"]["Backstop"]["Properties"]["Schedule"] == "rate(5 minutes)"
    trigger = fn["Events"]["IndexWrites"]
    assert trigger["Type"] == "SQS"
    assert trigger["Properties"]["Queue"] == {"Fn::GetAtt": ["IndexWritesQueue", "Arn"]}
    assert trigger["Properties"]["MaximumBatchingWindowInSeconds"] <= 5
    # the mapping never polls faster than the function may run
    assert trigger["Properties"]["ScalingConfig"]["MaximumConcurrency"] == fn["ReservedConcurrentExecutions"] == 2
    queue = res["IndexWritesQueue"]["Properties"]
    assert queue["QueueName"] == stage.index_queue
    assert queue["VisibilityTimeout"] >= fn["Timeout"]
    bucket = res[stack._cfn_name(stage.store.bucket)]
    sends = [c for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
             if c["Queue"] == {"Fn::GetAtt": ["IndexWritesQueue", "Arn"]}]
    assert [r["Value"] for c in sends for r in c["Filter"]["S3Key"]["Rules"]] == [
        stage.store.prefix + LOG_PREFIX, ".json"]
    assert "IndexWritesQueuePolicy" in bucket["DependsOn"]
    assert fn["Policies"] == [stack.policy(stage, stack.GEOPARQUET_FUNCTION)]
    sqs = [st for st in fn["Policies"][0]["Statement"] if any(a.startswith("sqs:") for a in st["Action"])]
    assert [st["Resource"] for st in sqs] == [[f"arn:aws:sqs:*:*:{stage.index_queue}"]]
    assert fn["Environment"]["Variables"]["STACFLOW_STORE"] == stage.environment["STACFLOW_STORE"]


def test_terraform_triggers_and_schedules_the_geoparquet_function() -> None:
    stage = stack.load_stage("dev")
    res = stack.terraform_files(stage)["stack.tf.json"]["resource"]
    assert res["aws_cloudwatch_event_rule"]["geoparquet"]["schedule_expression"] == "rate(5 minutes)"
    assert res["aws_lambda_permission"]["geoparquet"]["principal"] == "events.amazonaws.com"
    assert res["aws_lambda_function"]["geoparquet"]["filename"] == "${path.module}/geoparquet.zip"
    mapping = res["aws_lambda_event_source_mapping"]["geoparquet"]
    assert mapping["event_source_arn"] == "${aws_sqs_queue.index_writes.arn}"
    assert mapping["scaling_config"]["maximum_concurrency"] == res["aws_lambda_function"]["geoparquet"][
        "reserved_concurrent_executions"]
    queues = [q for n in res["aws_s3_bucket_notification"].values() for q in n["queue"]
              if q["queue_arn"] == "${aws_sqs_queue.index_writes.arn}"]
    assert [(q["filter_prefix"], q["filter_suffix"]) for q in queues] == [(stage.store.prefix + LOG_PREFIX, ".json")]
    assert re.search(r"index-writes$", res["aws_sqs_queue"]["index_writes"]["name"])
