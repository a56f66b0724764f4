"""The AWS stack around the Chalice app, per stage: everything ``chalice package`` cannot express.

One source: a stage of ``.chalice/config.json`` (its ``STACFLOW_*`` variables, and the functions'
timeouts and reserved concurrency, resolved by Chalice's own ``Config``). From it come

- the least-privilege policies of the functions' roles, ``.chalice/policy-<stage>.json`` (event
  function) and ``.chalice/policy-<stage>-api.json`` (API function); ``autogen_policy`` is off: Chalice
  would scan only ``app.py`` and grant no S3 access at all;
- a SAM merge template for ``chalice package --merge-template`` (Chalice's documented mechanism);
- for ``chalice package --pkg-format terraform`` (which takes no merge template), Terraform's own
  documented mechanisms, written next to ``chalice.tf.json``: ``stack.tf.json`` (new resources) and
  ``stack_override.tf.json`` (an override file, merged by Terraform into Chalice's blocks).

What they add: the events queue with its dead-letter queue and redrive policy (visibility timeout 6x
the event function's timeout), the buckets with their notifications to the queue and the queue
policy letting S3 send, ``ReportBatchItemFailures`` and a concurrency cap on the event source
mapping, per-stage function and API names, and a 404 JSON answer for unknown routes (API Gateway's
default is 403 "Missing Authentication Token").

    python -m deploy.stack policy --stage dev [--function api_handler]  # print a policy
    python -m deploy.stack sam --stage dev > merge.json  # the SAM merge template
    python -m deploy.stack terraform --stage dev --out DIR  # the two Terraform files
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EVENT_FUNCTION = "on_store_event"
API_FUNCTION = "api_handler"
# The stac-geoparquet function (functions/geoparquet.py): its own zip (requirements-geoparquet.txt: pyarrow,
# pandas, geopandas), never in Chalice's package; pyarrow 25's wheels need glibc 2.28 (python3.12+ runtime).
GEOPARQUET_FUNCTION = "geoparquet"
GEOPARQUET_HANDLER = "functions.geoparquet.handler"
GEOPARQUET_RUNTIME = "python3.12"
GEOPARQUET_MEMORY = 2048
GEOPARQUET_TIMEOUT = 120  # a change rewrites one partition (a few seconds at 100k items); a re-layout all
# Freshness comes from a trigger: every search-index log write (stac-index/log/, one per publication or
# deletion the event function applies) is notified by S3 to a queue of its own, which invokes the
# function (batched over GEOPARQUET_BATCH_WINDOW_S). The schedule is the backstop (a failed run, layouts
# to retire): every 5 minutes.
GEOPARQUET_SCHEDULE = "rate(5 minutes)"
GEOPARQUET_CONCURRENCY = 2  # the trigger's event source mapping polls with 2 at least (Lambda's minimum)
GEOPARQUET_BATCH_WINDOW_S = 2  # publications within 2 s cost one regeneration
GEOPARQUET_BATCH_SIZE = 100
INDEX_PREFIX = "stac-index/log/"  # chalicelib.stac.index.LOG_PREFIX (not imported: no numpy here)
INDEX_QUEUE_RETENTION_S = 900  # a trigger not handled in 15 minutes is moot: the schedule has run since
GEOPARQUET_ZIP = "geoparquet.zip"
VISIBILITY_FACTOR = 6  # AWS's advice for SQS event sources: at least 6x the function timeout
MAX_RECEIVE_COUNT = 5  # deliveries before a message moves to the dead-letter queue
RETENTION_S = 4 * 86400  # the queue's message retention (SQS default)
DLQ_RETENTION_S = 14 * 86400  # the dead-letter queue keeps messages as long as SQS allows
BATCH_SIZE = 10  # app.on_store_event's batch_size

# Store keys whose writes the event functions take (chalicelib/events/*.ROUTES), as S3 filter rules
# (prefix, suffix). Items are notified per collection (the set is fixed by chalicelib/stac/collections.json),
# so the catalog's own pages (shards, collection documents) raise no events.
def store_rules() -> tuple[tuple[str, str], ...]:
    from chalicelib.stac.catalog import config
    items = tuple((f"collections/{cid}/items/", ".json") for cid in sorted(config().collection_ids))
    return items + (
        ("mlflow/registry/", ""),  # registry records and source markers -> STAC MLM items
        ("datasets/changes/", ".json"),  # GitLab change records -> dataset items
        ("mlflow-artifacts/", ""),  # proxied artifacts: model files landing -> their versions published
    )


STORE_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
REMOTE_EVENTS = ("s3:ObjectCreated:*",)  # a DVC remote's objects landing mark assets available
INDEX_EVENTS = ("s3:ObjectCreated:*",)  # a search-index log entry: the geoparquet dataset may be stale

# Settings given when the stack is deployed, never written in the repository: (variable, parameter,
# secret?, functions that read it).
DEPLOY_SETTINGS: tuple[tuple[str, str, bool, tuple[str, ...]], ...] = (
    ("STACFLOW_PUBLIC_URL", "PublicUrl", False, (API_FUNCTION, EVENT_FUNCTION, GEOPARQUET_FUNCTION)),
    ("STACFLOW_GITLAB_URL", "GitLabUrl", False, (API_FUNCTION, EVENT_FUNCTION)),
    ("STACFLOW_WEBHOOK_SECRET", "WebhookSecret", True, (API_FUNCTION,)),
    ("STACFLOW_GITLAB_TOKEN", "GitLabToken", True, (EVENT_FUNCTION,)),
)

# Unknown routes: one body that reads as an error in both protocols (STAC's and MLflow's).
NOT_FOUND_MESSAGE = "No route matches this method and path."
NOT_FOUND_BODY = json.dumps({"code": "NotFound", "description": NOT_FOUND_MESSAGE,
                             "error_code": "ENDPOINT_NOT_FOUND", "message": NOT_FOUND_MESSAGE})

# S3 actions, each for the store port's calls (chalicelib/store/s3.py) that need it.
STORE_OBJECT_ACTIONS = (
    "s3:GetObject",  # get, open (ranges), head, presigned GET
    "s3:PutObject",  # put (conditional), presigned PUT, create/upload-part/complete multipart
    "s3:DeleteObject",  # delete
    "s3:AbortMultipartUpload",  # abort multipart
)
REMOTE_OBJECT_ACTIONS = ("s3:GetObject",)  # DVC remotes are only read (HEAD and GET)
QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")  # the event source mapping
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


@dataclass(frozen=True)
class Location:
    """``s3://bucket[/prefix]``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> "Location":
        m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
        if m is None:
            raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
        prefix = (m.group(2) or "").strip("/")
        return cls(m.group(1), prefix + "/" if prefix else "")

    def under(self, other: "Location") -> bool:
        return self.bucket == other.bucket and self.prefix.startswith(other.prefix)


EVENTS_QUEUE, INDEX_QUEUE = "events", "index"  # a notification's destination


@dataclass(frozen=True)
class Rule:
    """One bucket notification: keys starting with ``prefix`` and ending with ``suffix``, these events,
    sent to the events queue (the event function) or the index-writes queue (the geoparquet function)."""

    prefix: str
    suffix: str
    events: tuple[str, ...]
    queue: str = EVENTS_QUEUE


@dataclass(frozen=True)
class Stage:
    name: str
    app_name: str
    api_stage: str
    store: Location
    artifact_root: Location | None
    dvc_remotes: tuple[Location, ...]
    queue: str
    event_timeout: int
    event_concurrency: int | None
    environment: dict[str, str]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}-dlq"

    @property
    def api_function(self) -> str:  # Chalice's names, as its Terraform output has them
        return f"{self.app_name}-{self.name}"

    @property
    def event_function(self) -> str:
        return f"{self.app_name}-{self.name}-{EVENT_FUNCTION}"

    @property
    def geoparquet_function(self) -> str:
        return f"{self.app_name}-{self.name}-{GEOPARQUET_FUNCTION}"

    @property
    def index_queue(self) -> str:
        return f"{self.app_name}-{self.name}-index-writes"

    @property
    def visibility_timeout(self) -> int:
        return VISIBILITY_FACTOR * self.event_timeout

    def notifications(self) -> dict[str, list[Rule]]:
        """Per bucket, its notification rules to the queue; S3 refuses overlapping rules, so do we."""
        rules: dict[str, list[Rule]] = {}
        rules_of_store = store_rules()
        for prefix, suffix in rules_of_store:
            rules.setdefault(self.store.bucket, []).append(Rule(self.store.prefix + prefix, suffix, STORE_EVENTS))
        if self.artifact_root is not None and not any(
                self.artifact_root.prefix.startswith(self.store.prefix + p) for p, _ in rules_of_store):
            rules[self.store.bucket].append(Rule(self.artifact_root.prefix, "", STORE_EVENTS))
        rules[self.store.bucket].append(Rule(self.store.prefix + INDEX_PREFIX, ".json", INDEX_EVENTS, INDEX_QUEUE))
        for remote in self.dvc_remotes:
            rules.setdefault(remote.bucket, []).append(Rule(remote.prefix, "", REMOTE_EVENTS))
        for bucket, bucket_rules in rules.items():
            for i, a in enumerate(bucket_rules):
                for b in bucket_rules[i + 1:]:
                    if (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)) and (
                            a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)):
                        raise ValueError(f"s3://{bucket}: notification prefixes {a.prefix!r} and {b.prefix!r} overlap")
        return rules

    def buckets(self) -> list[str]:
        return list(self.notifications())


def load_stage(name: str, config_path: Path = REPO / ".chalice" / "config.json") -> Stage:
    """A stage as Chalice resolves it (stage over top level, per-function over per-stage)."""
    from chalice.config import Config
    disk = json.loads(config_path.read_text())
    if name not in disk.get("stages", {}):
        raise ValueError(f"no stage {name!r} in {config_path}")
    api = Config(chalice_stage=name, function_name=API_FUNCTION, config_from_disk=disk)
    event = Config(chalice_stage=name, function_name=EVENT_FUNCTION, config_from_disk=disk)
    env = dict(event.environment_variables)
    if env != dict(api.environment_variables):
        raise ValueError("the API and event functions must share their STACFLOW_* settings")
    store = Location.parse(env["STACFLOW_STORE"])
    artifact_root = Location.parse(env["STACFLOW_ARTIFACT_ROOT"]) if env.get("STACFLOW_ARTIFACT_ROOT") else None
    if artifact_root is not None and not artifact_root.under(store):
        # The registry reads model files only inside the store (registry/sources.artifact_prefix).
        raise ValueError("STACFLOW_ARTIFACT_ROOT must lie inside STACFLOW_STORE")
    remotes = tuple(Location.parse(u) for u in env.get("STACFLOW_DVC_REMOTES", "").split(",") if u.strip())
    reserved = event.reserved_concurrency
    return Stage(name=name, app_name=str(disk["app_name"]), api_stage=api.api_gateway_stage, store=store,
                 artifact_root=artifact_root, dvc_remotes=remotes,
                 queue=env.get("STACFLOW_EVENTS_QUEUE") or f"{disk['app_name']}-{name}-store-events",
                 event_timeout=int(event.lambda_timeout), event_concurrency=int(reserved) if reserved else None,
                 environment=env)


# --- IAM ---------------------------------------------------------------------------------------------

def _list_statement(sid: str, bucket: str, prefixes: list[str]) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": ["s3:ListBucket"],
                                 "Resource": [f"arn:aws:s3:::{bucket}"]}
    if all(prefixes):  # a location without prefix lists the whole bucket
        statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return statement


def policy(stage: Stage, function: str = EVENT_FUNCTION) -> dict[str, Any]:
    """A function's role policy: exactly the actions its code calls, on exactly the stage's resources.

    Both functions read and write the store; only the event function reads the DVC remotes (dataset
    availability) and the queue (its event source mapping)."""
    name = {EVENT_FUNCTION: stage.event_function, GEOPARQUET_FUNCTION: stage.geoparquet_function}.get(
        function, stage.api_function)
    statements: list[dict[str, Any]] = [
        {"Sid": "Logs", "Effect": "Allow", "Action": list(LOG_ACTIONS),
         "Resource": [f"arn:aws:logs:*:*:log-group:/aws/lambda/{name}", f"arn:aws:logs:*:*:log-group:/aws/lambda/{name}:*"]},
        {"Sid": "StoreObjects", "Effect": "Allow", "Action": list(STORE_OBJECT_ACTIONS),
         "Resource": [f"arn:aws:s3:::{stage.store.bucket}/{stage.store.prefix}*"]},
        _list_statement("StoreList", stage.store.bucket, [stage.store.prefix]),
    ]
    if function == GEOPARQUET_FUNCTION:  # its trigger's event source mapping
        statements.append({"Sid": "IndexWritesQueue", "Effect": "Allow", "Action": list(QUEUE_ACTIONS),
                           "Resource": [f"arn:aws:sqs:*:*:{stage.index_queue}"]})
    if function != EVENT_FUNCTION:
        return {"Version": "2012-10-17", "Statement": statements}
    remotes = [r for r in stage.dvc_remotes if not r.under(stage.store)]  # the store's grant covers the others
    if remotes:
        statements.append({"Sid": "DvcRemoteObjects", "Effect": "Allow", "Action": list(REMOTE_OBJECT_ACTIONS),
                           "Resource": [f"arn:aws:s3:::{r.bucket}/{r.prefix}*" for r in remotes]})
        for i, bucket in enumerate(dict.fromkeys(r.bucket for r in remotes)):
            statements.append(_list_statement(f"DvcRemoteList{i}", bucket,
                                              [r.prefix for r in remotes if r.bucket == bucket]))
    statements.append({"Sid": "EventsQueue", "Effect": "Allow", "Action": list(QUEUE_ACTIONS),
                       "Resource": [f"arn:aws:sqs:*:*:{stage.queue}"]})
    return {"Version": "2012-10-17", "Statement": statements}


POLICY_FILES = {EVENT_FUNCTION: "policy-{stage}.json", API_FUNCTION: "policy-{stage}-api.json"}


def policy_path(stage: str, function: str = EVENT_FUNCTION) -> Path:
    return REPO / ".chalice" / POLICY_FILES[function].format(stage=stage)


# --- SAM (CloudFormation) ----------------------------------------------------------------------------

def _cfn_name(bucket: str) -> str:
    return "Bucket" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", bucket) if part)


def _queue_policy_document(stage: Stage, queue_arn: Any, account: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "BucketNotifications", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": [f"arn:aws:s3:::{b}" for b in stage.buckets()]},
                      "StringEquals": {"aws:SourceAccount": account}}}]}


def sam_merge_template(stage: Stage) -> dict[str, Any]:
    queue_arn = {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    queue_arns = {EVENTS_QUEUE: queue_arn, INDEX_QUEUE: {"Fn::GetAtt": ["IndexWritesQueue", "Arn"]}}
    # Chalice names the queue by an ``Fn::Sub`` of its ARN; merging another ``Fn::Sub`` replaces that string
    # (the merge is deep: a GetAtt would be added beside it), and makes the mapping depend on the queue.
    mapping: dict[str, Any] = {"Queue": {"Fn::Sub": "${EventsQueue.Arn}"},
                               "FunctionResponseTypes": ["ReportBatchItemFailures"]}
    if stage.event_concurrency:
        # Lambda polls no faster than the function may run: no throttled batches counting towards the DLQ.
        mapping["ScalingConfig"] = {"MaximumConcurrency": max(2, stage.event_concurrency)}
    def deploy_env(function: str) -> dict[str, Any]:
        return {"Environment": {"Variables": {var: {"Ref": param} for var, param, _, fns in DEPLOY_SETTINGS
                                              if function in fns}}}

    resources: dict[str, Any] = {
        "APIHandler": {"Properties": {"FunctionName": stage.api_function, **deploy_env(API_FUNCTION)}},
        "OnStoreEvent": {"Properties": {"FunctionName": stage.event_function, **deploy_env(EVENT_FUNCTION),
                                        "Events": {"OnStoreEventSqsEventSource": {"Properties": mapping}}}},
        "RestAPI": {"Properties": {"Name": stage.api_function, "GatewayResponses": {
            "MISSING_AUTHENTICATION_TOKEN": {
                "StatusCode": 404,
                "ResponseParameters": {"Headers": {"Content-Type": "'application/json'"}},
                "ResponseTemplates": {"application/json": NOT_FOUND_BODY}}}}},
        "EventsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stage.dead_letter_queue, "MessageRetentionPeriod": DLQ_RETENTION_S,
            "SqsManagedSseEnabled": True}},
        "EventsQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stage.queue, "VisibilityTimeout": stage.visibility_timeout,
            "MessageRetentionPeriod": RETENTION_S, "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
                              "maxReceiveCount": MAX_RECEIVE_COUNT}}},
        "EventsQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "EventsQueue"}],
            "PolicyDocument": _queue_policy_document(stage, queue_arn, {"Ref": "AWS::AccountId"})}},
        # The geoparquet function's trigger: index log writes (no dead-letter queue: a trigger that fails
        # is retried until it expires, and the schedule covers what it missed).
        "IndexWritesQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stage.index_queue, "VisibilityTimeout": 2 * GEOPARQUET_TIMEOUT,
            "MessageRetentionPeriod": INDEX_QUEUE_RETENTION_S, "SqsManagedSseEnabled": True}},
        "IndexWritesQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "IndexWritesQueue"}],
            "PolicyDocument": _queue_policy_document(stage, queue_arns[INDEX_QUEUE], {"Ref": "AWS::AccountId"})}},
    }
    for bucket, rules in stage.notifications().items():
        resources[_cfn_name(bucket)] = {
            "Type": "AWS::S3::Bucket",
            # S3 checks that it may send to the queue when the configuration is saved.
            "DependsOn": ["EventsQueuePolicy", "IndexWritesQueuePolicy"],
            # Tearing the stack down keeps the data (and S3 would refuse to delete a non-empty bucket).
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": bucket,
                "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                "NotificationConfiguration": {"QueueConfigurations": [
                    {"Event": event, "Queue": queue_arns[rule.queue], "Filter": {"S3Key": {"Rules": _filter_rules(rule)}}}
                    for rule in rules for event in rule.events]}}}
    parameters = {param: {"Type": "String", "Default": "", "NoEcho": secret, "Description": f"{var} (README)"}
                  for var, param, secret, _ in DEPLOY_SETTINGS}
    # The geoparquet function: a SAM function of its own (CodeUri is the zip scripts/package.sh builds next to
    # sam.json; `aws cloudformation package` uploads it), run on index writes and every 5 minutes.
    resources["GeoparquetFunction"] = {"Type": "AWS::Serverless::Function", "Properties": {
        "FunctionName": stage.geoparquet_function, "CodeUri": f"./{GEOPARQUET_ZIP}",
        "Handler": GEOPARQUET_HANDLER, "Runtime": GEOPARQUET_RUNTIME, "MemorySize": GEOPARQUET_MEMORY,
        "Timeout": GEOPARQUET_TIMEOUT, "ReservedConcurrentExecutions": GEOPARQUET_CONCURRENCY,
        "Environment": {"Variables": {**stage.environment, **deploy_env(GEOPARQUET_FUNCTION)["Environment"]["Variables"]}},
        "Policies": [policy(stage, GEOPARQUET_FUNCTION)],
        "Events": {
            "Backstop": {"Type": "Schedule", "Properties": {"Schedule": GEOPARQUET_SCHEDULE}},
            "IndexWrites": {"Type": "SQS", "Properties": {
                "Queue": queue_arns[INDEX_QUEUE], "BatchSize": GEOPARQUET_BATCH_SIZE,
                "MaximumBatchingWindowInSeconds": GEOPARQUET_BATCH_WINDOW_S,
                "ScalingConfig": {"MaximumConcurrency": GEOPARQUET_CONCURRENCY}}}}}}
    return {"Parameters": parameters, "Resources": resources, "Outputs": {
        "GeoparquetFunction": {"Value": {"Ref": "GeoparquetFunction"}},
        "IndexWritesQueueUrl": {"Value": {"Ref": "IndexWritesQueue"}},
        "EventsQueueUrl": {"Value": {"Ref": "EventsQueue"}},
        "EventsQueueArn": {"Value": queue_arn},
        "DeadLetterQueueUrl": {"Value": {"Ref": "EventsDeadLetterQueue"}}}}


def _filter_rules(rule: Rule) -> list[dict[str, str]]:
    rules = [{"Name": "prefix", "Value": rule.prefix}] if rule.prefix else []
    return rules + ([{"Name": "suffix", "Value": rule.suffix}] if rule.suffix else [])


# --- Terraform ---------------------------------------------------------------------------------------

def param_var(param: str) -> str:
    """``GitLabToken`` -> ``gitlab_token`` (Terraform's variable naming)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", param.replace("GitLab", "Gitlab")).lower()


def _tf_name(bucket: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", bucket)


def terraform_files(stage: Stage) -> dict[str, dict[str, Any]]:
    """``stack.tf.json`` (new resources) and ``stack_override.tf.json`` (merged into Chalice's blocks)."""
    queue_arn = "${aws_sqs_queue.events.arn}"
    queue_arns = {EVENTS_QUEUE: queue_arn, INDEX_QUEUE: "${aws_sqs_queue.index_writes.arn}"}
    account = "${data.aws_caller_identity.chalice.account_id}"
    buckets: dict[str, Any] = {}
    notifications: dict[str, Any] = {}
    for bucket, rules in stage.notifications().items():
        name = _tf_name(bucket)
        buckets[name] = {"bucket": bucket}
        notifications[name] = {
            "bucket": f"${{aws_s3_bucket.{name}.id}}",
            "queue": [{"queue_arn": queue_arns[rule.queue], "events": list(rule.events),
                       **({"filter_prefix": rule.prefix} if rule.prefix else {}),
                       **({"filter_suffix": rule.suffix} if rule.suffix else {})} for rule in rules],
            "depends_on": ["aws_sqs_queue_policy.events", "aws_sqs_queue_policy.index_writes"]}
    stack = {"resource": {
        "aws_sqs_queue": {
            "events_dlq": {"name": stage.dead_letter_queue, "message_retention_seconds": DLQ_RETENTION_S,
                           "sqs_managed_sse_enabled": True},
            "events": {"name": stage.queue, "visibility_timeout_seconds": stage.visibility_timeout,
                       "message_retention_seconds": RETENTION_S, "sqs_managed_sse_enabled": True,
                       "redrive_policy": json.dumps({"deadLetterTargetArn": "${aws_sqs_queue.events_dlq.arn}",
                                                     "maxReceiveCount": MAX_RECEIVE_COUNT})},
            "index_writes": {"name": stage.index_queue, "visibility_timeout_seconds": 2 * GEOPARQUET_TIMEOUT,
                             "message_retention_seconds": INDEX_QUEUE_RETENTION_S, "sqs_managed_sse_enabled": True}},
        "aws_sqs_queue_policy": {"events": {
            "queue_url": "${aws_sqs_queue.events.id}",
            "policy": json.dumps(_queue_policy_document(stage, queue_arn, account))}, "index_writes": {
            "queue_url": "${aws_sqs_queue.index_writes.id}",
            "policy": json.dumps(_queue_policy_document(stage, queue_arns[INDEX_QUEUE], account))}},
        # Buckets are created here; to adopt existing ones: terraform import aws_s3_bucket.<name> <bucket>.
        "aws_s3_bucket": buckets,
        "aws_s3_bucket_public_access_block": {name: {
            "bucket": f"${{aws_s3_bucket.{name}.id}}", "block_public_acls": True, "block_public_policy": True,
            "ignore_public_acls": True, "restrict_public_buckets": True} for name in buckets},
        "aws_s3_bucket_notification": notifications,
        # The geoparquet function, its role (the store grants, and its trigger queue), its trigger and schedule.
        "aws_iam_role": {GEOPARQUET_FUNCTION: {"name": stage.geoparquet_function, "assume_role_policy": json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]})}},
        "aws_iam_role_policy": {GEOPARQUET_FUNCTION: {
            "name": stage.geoparquet_function, "role": f"${{aws_iam_role.{GEOPARQUET_FUNCTION}.id}}",
            "policy": json.dumps(policy(stage, GEOPARQUET_FUNCTION))}},
        "aws_lambda_function": {GEOPARQUET_FUNCTION: {
            "function_name": stage.geoparquet_function, "filename": f"${{path.module}}/{GEOPARQUET_ZIP}",
            "source_code_hash": f"${{filebase64sha256(\"${{path.module}}/{GEOPARQUET_ZIP}\")}}",
            "handler": GEOPARQUET_HANDLER, "runtime": GEOPARQUET_RUNTIME, "memory_size": GEOPARQUET_MEMORY,
            "timeout": GEOPARQUET_TIMEOUT, "reserved_concurrent_executions": GEOPARQUET_CONCURRENCY,
            "role": f"${{aws_iam_role.{GEOPARQUET_FUNCTION}.arn}}",
            "environment": {"variables": {**stage.environment, **{
                var: f"${{var.{param_var(param)}}}" for var, param, _, fns in DEPLOY_SETTINGS
                if GEOPARQUET_FUNCTION in fns}}}}},
        "aws_cloudwatch_event_rule": {GEOPARQUET_FUNCTION: {
            "name": stage.geoparquet_function, "schedule_expression": GEOPARQUET_SCHEDULE}},
        "aws_cloudwatch_event_target": {GEOPARQUET_FUNCTION: {
            "rule": f"${{aws_cloudwatch_event_rule.{GEOPARQUET_FUNCTION}.name}}",
            "arn": f"${{aws_lambda_function.{GEOPARQUET_FUNCTION}.arn}}"}},
        "aws_lambda_event_source_mapping": {GEOPARQUET_FUNCTION: {
            "event_source_arn": queue_arns[INDEX_QUEUE],
            "function_name": f"${{aws_lambda_function.{GEOPARQUET_FUNCTION}.arn}}",
            "batch_size": GEOPARQUET_BATCH_SIZE, "maximum_batching_window_in_seconds": GEOPARQUET_BATCH_WINDOW_S,
            "scaling_config": {"maximum_concurrency": GEOPARQUET_CONCURRENCY}}},
        "aws_lambda_permission": {GEOPARQUET_FUNCTION: {
            "statement_id": "Backstop", "action": "lambda:InvokeFunction", "principal": "events.amazonaws.com",
            "function_name": f"${{aws_lambda_function.{GEOPARQUET_FUNCTION}.function_name}}",
            "source_arn": f"${{aws_cloudwatch_event_rule.{GEOPARQUET_FUNCTION}.arn}}"}},
        "aws_api_gateway_gateway_response": {"not_found": {
            "rest_api_id": "${aws_api_gateway_rest_api.rest_api.id}",
            "response_type": "MISSING_AUTHENTICATION_TOKEN", "status_code": "404",
            "response_parameters": {"gatewayresponse.header.Content-Type": "'application/json'"},
            "response_templates": {"application/json": NOT_FOUND_BODY}}},
    }, "variable": {param_var(param): {"type": "string", "default": "", "sensitive": secret,
                                        "description": f"{var} (README)"}
                     for var, param, secret, _ in DEPLOY_SETTINGS},
       "output": {"EventsQueueUrl": {"value": "${aws_sqs_queue.events.id}"},
                  "IndexWritesQueueUrl": {"value": "${aws_sqs_queue.index_writes.id}"},
                  "GeoparquetFunction": {"value": f"${{aws_lambda_function.{GEOPARQUET_FUNCTION}.function_name}}"},
                  "DeadLetterQueueUrl": {"value": "${aws_sqs_queue.events_dlq.id}"}}}
    mapping: dict[str, Any] = {"event_source_arn": queue_arn, "function_response_types": ["ReportBatchItemFailures"]}
    if stage.event_concurrency:
        mapping["scaling_config"] = {"maximum_concurrency": max(2, stage.event_concurrency)}
    def environment(function: str) -> dict[str, Any]:
        # An override's nested block replaces Chalice's whole block: the stage's variables come along.
        deployed = {var: f"${{var.{param_var(param)}}}" for var, param, _, fns in DEPLOY_SETTINGS if function in fns}
        return {"environment": {"variables": {**stage.environment, **deployed}}}

    override = {"resource": {
        "aws_lambda_function": {"api_handler": environment(API_FUNCTION),
                                EVENT_FUNCTION: environment(EVENT_FUNCTION)},
        "aws_api_gateway_rest_api": {"rest_api": {"name": stage.api_function}},
        # The gateway response is part of what a deployment publishes: deploy after it, and again on change.
        "aws_api_gateway_deployment": {"rest_api": {
            "depends_on": ["aws_api_gateway_gateway_response.not_found"],
            "stage_description": "${md5(join(\"\", [local.chalice_api_swagger, "
                                 "jsonencode(aws_api_gateway_gateway_response.not_found.response_templates)]))}"}},
        "aws_lambda_event_source_mapping": {f"{EVENT_FUNCTION}-sqs-event-source": mapping},
    }}
    return {"stack.tf.json": stack, "stack_override.tf.json": override}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("policy", "sam", "terraform", "env"))
    parser.add_argument("--stage", required=True)
    parser.add_argument("--function", choices=tuple(POLICY_FILES), default=EVENT_FUNCTION, help="policy: whose")
    parser.add_argument("--out", help="terraform: the directory of chalice.tf.json")
    args = parser.parse_args(argv)
    stage = load_stage(args.stage)
    if args.what == "policy":
        print(json.dumps(policy(stage, args.function), indent=2))
    elif args.what == "sam":
        print(json.dumps(sam_merge_template(stage), indent=2))
    elif args.what == "env":  # what app.py reads while Chalice packages it (the queue's name)
        print(f"STACFLOW_EVENTS_QUEUE={stage.queue}")
    else:
        if not args.out:
            parser.error("terraform needs --out")
        for name, content in terraform_files(stage).items():
            (Path(args.out) / name).write_text(json.dumps(content, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
