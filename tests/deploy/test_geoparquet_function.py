"""The geoparquet function in the stack: scheduled every minute, one at a time, with the store grants only."""
from __future__ import annotations

from deploy import stack


def test_sam_runs_the_geoparquet_function_every_minute_with_the_store_grants_only() -> None:
    stage = stack.load_stage("dev")
    fn = stack.sam_merge_template(stage)["Resources"]["GeoparquetFunction"]["Properties"]
    assert fn["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert fn["ReservedConcurrentExecutions"] == 1
    assert fn["Policies"] == [stack.policy(stage, stack.GEOPARQUET_FUNCTION)]
    actions = {a for st in fn["Policies"][0]["Statement"] for a in st["Action"]}
    assert not any(a.startswith("sqs:") for a in actions)
    assert fn["Environment"]["Variables"]["STACFLOW_STORE"] == stage.environment["STACFLOW_STORE"]


def test_terraform_schedules_the_geoparquet_function() -> None:
    stage = stack.load_stage("dev")
    res = stack.terraform_files(stage)["stack.tf.json"]["resource"]
    assert res["aws_cloudwatch_event_rule"]["geoparquet"]["schedule_expression"] == "rate(1 minute)"
    assert res["aws_lambda_permission"]["geoparquet"]["principal"] == "events.amazonaws.com"
    assert res["aws_lambda_function"]["geoparquet"]["filename"] == "${path.module}/geoparquet.zip"
