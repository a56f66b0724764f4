"""The stack's definition per stage (deploy/stack.py): least-privilege roles and notification rules.

The expected grants are derived here from the stage's settings and from the S3 calls the store adapter
makes, independently of the generator, so a policy that grants one action or resource too many or too
few fails.
"""
from __future__ import annotations

import ast
import json
import re

import pytest

from chalicelib.events.dispatch import handler_for
from deploy import stack
from tests.helpers.paths import REPO

STAGES = sorted(json.loads((REPO / ".chalice" / "config.json").read_text())["stages"])
# boto3 S3 client calls (and presigned operations) -> the IAM action they need
S3_CALL_ACTIONS = {
    "get_object": "s3:GetObject", "head_object": "s3:GetObject", "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject", "list_objects_v2": "s3:ListBucket",
    "create_multipart_upload": "s3:PutObject", "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject", "abort_multipart_upload": "s3:AbortMultipartUpload",
}


def store_s3_calls() -> set[str]:
    """The S3 operations chalicelib/store/s3.py calls: ``client.<op>(...)`` and presigned ``"<op>"``."""
    tree = ast.parse((REPO / "chalicelib" / "store" / "s3.py").read_text())
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "client" and node.func.attr != "generate_presigned_url":
                calls.add(node.func.attr)
            if node.func.attr == "generate_presigned_url" and isinstance(node.args[0], ast.Constant):
                calls.add(str(node.args[0].value))
    return calls


def grants(policy: dict) -> set[tuple[str, str, tuple[str, ...]]]:
    """(action, resource, s3:prefix conditions) for every Allow; the policy may hold nothing else."""
    out = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        prefixes = tuple(sorted(st.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])))
        for action in st["Action"]:
            for resource in st["Resource"]:
                out.add((action, resource, prefixes))
    return out


def s3_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""


def expected_grants(stage: str, function: str) -> set[tuple[str, str, tuple[str, ...]]]:
    env = json.loads((REPO / ".chalice" / "config.json").read_text())["stages"][stage]["environment_variables"]
    name = f"stacflow-{stage}" if function == "api_handler" else f"stacflow-{stage}-{function}"
    expected = {(a, f"arn:aws:logs:*:*:log-group:/aws/lambda/{name}{tail}", ())
                for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents") for tail in ("", ":*")}
    bucket, prefix = s3_url(env["STACFLOW_STORE"])
    object_actions = {S3_CALL_ACTIONS[call] for call in store_s3_calls()} - {"s3:ListBucket"}
    expected |= {(a, f"arn:aws:s3:::{bucket}/{prefix}*", ()) for a in object_actions}
    expected.add(("s3:ListBucket", f"arn:aws:s3:::{bucket}", (f"{prefix}*",) if prefix else ()))
    if function == "on_store_event":
        for remote in env["STACFLOW_DVC_REMOTES"].split(","):
            rb, rp = s3_url(remote)
            expected |= {("s3:GetObject", f"arn:aws:s3:::{rb}/{rp}*", ()),
                         ("s3:ListBucket", f"arn:aws:s3:::{rb}", (f"{rp}*",) if rp else ())}
        expected |= {(a, f"arn:aws:sqs:*:*:{env['STACFLOW_EVENTS_QUEUE']}", ())
                     for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
    return expected


def test_every_s3_call_of_the_store_has_a_known_action() -> None:
    # A new boto3 call in the adapter must be mapped (and granted) here before it can ship.
    assert store_s3_calls() - set(S3_CALL_ACTIONS) == set()


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["api_handler", "on_store_event"])
def test_role_grants_exactly_the_needed_actions_on_the_configured_resources(stage: str, function: str) -> None:
    checked_in = json.loads(stack.policy_path(stage, function).read_text())
    assert grants(checked_in) == expected_grants(stage, function)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["api_handler", "on_store_event"])
def test_checked_in_policies_are_what_the_stage_generates(stage: str, function: str) -> None:
    assert json.loads(stack.policy_path(stage, function).read_text()) == stack.policy(stack.load_stage(stage), function)


def test_config_turns_chalices_policy_scan_off_and_names_the_policy_files() -> None:
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    for stage in STAGES:
        assert config["stages"][stage]["lambda_functions"]["api_handler"]["iam_policy_file"] == f"policy-{stage}-api.json"


def matching_rules(stage: stack.Stage, bucket: str, key: str, event: str) -> list[stack.Rule]:
    return [r for r in stage.notifications().get(bucket, [])
            if key.startswith(r.prefix) and key.endswith(r.suffix)
            and any(re.fullmatch(e.replace("*", ".*"), event) for e in r.events)]


# Keys each event function takes (a sample per route), relative to the store.
ROUTED_KEYS = ["collections/dataset/items/sen1floods11-v1.json", "mlflow/registry/models/u1.json",
               "mlflow/registry/versions/u1/3.json", "mlflow/registry/sources/mlflow-artifacts/1/r/m/u1/3",
               "datasets/changes/42/1790000000-ab12.json", "mlflow-artifacts/1/abc/artifacts/model/MLmodel",
               "artifacts/1/abc/artifacts/model/model.onnx"]


@pytest.mark.parametrize("stage_name", STAGES)
@pytest.mark.parametrize("key", ROUTED_KEYS)
def test_every_key_a_function_takes_is_notified_once(stage_name: str, key: str) -> None:
    stage = stack.load_stage(stage_name)
    assert handler_for(key) is not None  # the sample is a key the dispatcher routes
    for event in ("s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload", "s3:ObjectRemoved:Delete"):
        assert len(matching_rules(stage, stage.store.bucket, stage.store.prefix + key, event)) == 1


@pytest.mark.parametrize("stage_name", STAGES)
def test_dvc_remote_objects_are_notified_when_created(stage_name: str) -> None:
    stage = stack.load_stage(stage_name)
    remote = stage.dvc_remotes[0]
    key = remote.prefix + "files/md5/d4/1d8cd98f00b204e9800998ecf8427e"
    assert handler_for(f"s3://{remote.bucket}/{key}") is not None
    assert len(matching_rules(stage, remote.bucket, key, "s3:ObjectCreated:Put")) == 1
    assert matching_rules(stage, remote.bucket, "elsewhere/" + key, "s3:ObjectCreated:Put") == []


@pytest.mark.parametrize("stage_name", STAGES)
def test_the_queue_outlives_six_function_timeouts_and_redrives_to_its_dlq(stage_name: str) -> None:
    stage = stack.load_stage(stage_name)
    queue = stack.sam_merge_template(stage)["Resources"]["EventsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * stage.event_timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert queue["QueueName"] == f"stacflow-{stage_name}-store-events"


def test_overlapping_notification_prefixes_are_refused() -> None:
    stage = stack.load_stage("dev")
    clash = stack.Stage(**{**stage.__dict__, "dvc_remotes": (stack.Location(stage.store.bucket, "collections/dataset/"),)})
    with pytest.raises(ValueError, match="overlap"):
        clash.notifications()


def test_an_artifact_root_outside_the_store_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["STACFLOW_ARTIFACT_ROOT"] = "s3://another-bucket/artifacts"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="inside STACFLOW_STORE"):
        stack.load_stage("dev", tmp_path / "config.json")
