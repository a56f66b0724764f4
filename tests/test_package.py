"""The deployable stack: ``scripts/package.sh dev`` (``chalice package`` as SAM and as Terraform, with the
stack of ``deploy/stack.py`` merged in), checked offline, and every deployed handler invoked from the zip.

The handlers run in a subprocess whose sys.path is the unzipped package plus a stand-in for the Lambda
runtime's own boto3 (tests/helpers/lambda_package.py). The event flow runs on moto's server: the
template's bucket notifications applied to moto, real S3 writes, real S3 -> SQS messages, the packaged
event handler fed those batches (a poison message and a store fault among them).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from deploy import stack
from tests.helpers import lambda_package
from tests.helpers.lambda_package import Package, api_event, invoke
from tests.helpers.stac_items import make_item

EVENTS = Path(__file__).parent / "events"
STAGE = "dev"
MB = 1_000_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return lambda_package.build(tmp_path_factory.mktemp("project"), STAGE)


def local_env(store: Path) -> dict[str, str]:
    return {"STACFLOW_STORE": store.as_uri(), "AWS_DEFAULT_REGION": "eu-west-1"}


def test_package_contains_app_and_chalicelib_with_the_event_code(package_dir: Package) -> None:
    names = {p.relative_to(package_dir.unzipped).as_posix() for p in package_dir.unzipped.rglob("*.py")}
    assert {"app.py", "chalicelib/services.py", "chalicelib/events/dispatch.py", "chalicelib/events/catalog.py",
            "chalicelib/events/registry.py", "chalicelib/events/sqs.py"} <= names
    assert not any(name.split("/")[0] in ("functions", "deploy", "scripts", "tests") for name in names)


def test_package_is_within_lambdas_limits(package_dir: Package) -> None:
    zipped = package_dir.out / "sam" / "deployment.zip"
    unzipped = sum(i.file_size for i in zipfile.ZipFile(zipped).infolist())
    assert zipped.stat().st_size < 50 * MB
    assert unzipped < 250 * MB


def test_geoparquet_function_has_its_own_zip_and_pyarrow_stays_out_of_the_api(package_dir: Package) -> None:
    own = zipfile.ZipFile(package_dir.out / "sam" / "geoparquet.zip")
    names = set(own.namelist())
    assert {"functions/geoparquet.py", "chalicelib/stac/geoparquet.py", "pyarrow/__init__.py",
            "stac_geoparquet/__init__.py"} <= names
    assert sum(i.file_size for i in own.infolist()) < 250 * MB
    api_names = zipfile.ZipFile(package_dir.out / "sam" / "deployment.zip").namelist()
    assert not any(n.split("/")[0] in ("pyarrow", "pandas", "geopandas", "stac_geoparquet") for n in api_names)


def _python312() -> str | None:
    """A python3.12 (Lambda's runtime for the geoparquet function): on the PATH, or a pyenv version."""
    candidates = [shutil.which("python3.12")] + sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for found in filter(None, candidates):
        out = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def test_geoparquet_function_runs_from_its_zip_alone(package_dir: Package, tmp_path: Path) -> None:
    """The zip on Lambda's python3.12 with nothing else on the path: writes the files, then nothing."""
    python = _python312()
    if python is None:
        pytest.skip("no python3.12 on this machine")
    code = tmp_path / "code"
    zipfile.ZipFile(package_dir.out / "sam" / "geoparquet.zip").extractall(code)
    store = tmp_path / "store"
    source = tmp_path / "items.ndjson"
    source.write_text(json.dumps(make_item("one", "dataset")))
    from chalicelib.stac.publish import publish_paths
    from chalicelib.store.local import LocalStore
    publish_paths(LocalStore(store, fsync=False), [source], progress=False)
    run = ("import json; from functions.geoparquet import handler; "
           "print(json.dumps([[r['written'] for r in handler({}, None)] for _ in range(2)]))")
    out = subprocess.run([python, "-c", run], capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "STACFLOW_STORE": store.as_uri()})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[True, True], [False, False]]


def test_package_carries_bytecode_of_the_cold_start_modules(package_dir: Package) -> None:
    # Lambda's code directory is read-only: without them every cold start compiles its modules.
    tag = sys.implementation.cache_tag
    pyc = package_dir.unzipped / "chalicelib" / "stac" / "__pycache__" / f"search.{tag}.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, unchecked: valid whatever the extracted files' timestamps
    assert (package_dir.unzipped / "numpy" / "__pycache__" / f"__init__.{tag}.pyc").is_file()


def test_sam_template_passes_cfn_lint(package_dir: Package) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(package_dir.out / "sam" / "sam.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.stdout + result.stderr == ""
    assert result.returncode == 0


def policy_file(function: str) -> dict[str, Any]:
    return dict(json.loads(stack.policy_path(STAGE, function).read_text()))


def test_sam_template_holds_the_complete_stack(package_dir: Package) -> None:
    resources = package_dir.sam()["Resources"]
    stage = stack.load_stage(STAGE)
    api, event = resources["APIHandler"]["Properties"], resources["OnStoreEvent"]["Properties"]
    assert (api["FunctionName"], event["FunctionName"]) == ("stacflow-dev", "stacflow-dev-on_store_event")
    assert (api["Timeout"], event["Timeout"]) == (30, 120)
    assert event["ReservedConcurrentExecutions"] == stage.event_concurrency
    mapping = event["Events"]["OnStoreEventSqsEventSource"]["Properties"]
    assert mapping["Queue"] == {"Fn::Sub": "${EventsQueue.Arn}"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= event["ReservedConcurrentExecutions"]
    queue = resources["EventsQueue"]["Properties"]
    assert queue["QueueName"] == "stacflow-dev-store-events"
    assert queue["VisibilityTimeout"] >= 6 * event["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert resources["EventsDeadLetterQueue"]["Properties"]["QueueName"] == "stacflow-dev-store-events-dlq"
    sender = resources["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert sender["Principal"] == {"Service": "s3.amazonaws.com"}
    assert sender["Condition"]["ArnLike"]["aws:SourceArn"] == ["arn:aws:s3:::stacflow-dev-data", "arn:aws:s3:::stacflow-dev-dvc"]
    buckets = {r["Properties"]["BucketName"]: r for r in resources.values() if r["Type"] == "AWS::S3::Bucket"}
    assert set(buckets) == {"stacflow-dev-data", "stacflow-dev-dvc"}
    assert {b["DeletionPolicy"] for b in buckets.values()} == {"Retain"}
    # Each function's role holds exactly its checked-in policy, and nothing else.
    roles = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert api["Role"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}
    assert event["Role"] == {"Fn::GetAtt": ["OnStoreEventRole", "Arn"]}
    assert [p["PolicyDocument"] for p in roles["ApiHandlerRole"]["Properties"]["Policies"]] == [policy_file("api_handler")]
    assert [p["PolicyDocument"] for p in roles["OnStoreEventRole"]["Properties"]["Policies"]] == [policy_file("on_store_event")]
    assert set(roles) == {"ApiHandlerRole", "OnStoreEventRole"}
    assert "ManagedPolicyArns" not in roles["ApiHandlerRole"]["Properties"]
    not_found = resources["RestAPI"]["Properties"]["GatewayResponses"]["MISSING_AUTHENTICATION_TOKEN"]
    assert not_found["StatusCode"] == 404
    assert json.loads(not_found["ResponseTemplates"]["application/json"])["error_code"] == "ENDPOINT_NOT_FOUND"
    # Secrets are stack parameters, never in the template's text.
    assert event["Environment"]["Variables"]["STACFLOW_GITLAB_TOKEN"] == {"Ref": "GitLabToken"}
    assert package_dir.sam()["Parameters"]["GitLabToken"]["NoEcho"] is True


# --- Terraform: chalice.tf.json + stack.tf.json, with stack_override.tf.json merged as Terraform does ----

def terraform_config(directory: Path) -> dict[str, Any]:
    """The configuration Terraform would load: primary files appended (no block defined twice), then
    each override file's blocks merged into the existing ones (an attribute or nested block replaces
    the original's). Fails on anything Terraform would refuse for those reasons."""
    merged: dict[str, Any] = {}
    primary = sorted(p for p in directory.glob("*.tf.json") if not p.name.endswith("override.tf.json"))
    for path in primary:
        for section, blocks in json.loads(path.read_text()).items():
            if section == "terraform":
                merged.setdefault(section, {}).update(blocks)
            elif section in ("resource", "data"):
                for kind, named in blocks.items():
                    target = merged.setdefault(section, {}).setdefault(kind, {})
                    assert not set(named) & set(target), f"{kind} {set(named) & set(target)} defined twice"
                    target.update(named)
            else:
                target = merged.setdefault(section, {})
                assert not set(blocks) & set(target), f"{section} {set(blocks) & set(target)} defined twice"
                target.update(blocks)
    for path in sorted(directory.glob("*override.tf.json")):
        for section, blocks in json.loads(path.read_text()).items():
            for kind, named in blocks.items():
                for name, body in named.items():
                    assert name in merged[section][kind], f"override of an undefined {kind}.{name}"
                    merged[section][kind][name].update(body)
    return merged


REFERENCE = re.compile(r"\b(data\.[a-z0-9_]+\.[A-Za-z0-9_-]+|var\.[a-z0-9_]+|local\.[a-z0-9_]+|"
                       r"aws_[a-z0-9_]+\.[A-Za-z0-9_-]+)")


def unresolved_references(config: dict[str, Any]) -> set[str]:
    defined = {f"{kind}.{name}" for kind, named in config["resource"].items() for name in named}
    defined |= {f"data.{kind}.{name}" for kind, named in config["data"].items() for name in named}
    defined |= {f"var.{name}" for name in config.get("variable", {})} | {f"local.{n}" for n in config.get("locals", {})}
    text = json.dumps(config)
    refs = {m for expr in re.findall(r"\$\{(.*?)\}", text) for m in REFERENCE.findall(expr)}
    refs |= {d for named in config["resource"].values() for body in named.values() for d in body.get("depends_on", [])}
    return refs - defined


def test_terraform_configuration_holds_the_complete_stack(package_dir: Package) -> None:
    tf = terraform_config(package_dir.out / "terraform")
    assert unresolved_references(tf) == set()
    res = tf["resource"]
    stage = stack.load_stage(STAGE)
    functions = res["aws_lambda_function"]
    assert functions["api_handler"]["function_name"] == "stacflow-dev"
    assert functions["on_store_event"]["reserved_concurrent_executions"] == stage.event_concurrency
    assert functions["on_store_event"]["environment"]["variables"]["STACFLOW_STORE"] == "s3://stacflow-dev-data"
    assert functions["on_store_event"]["environment"]["variables"]["STACFLOW_GITLAB_TOKEN"] == "${var.gitlab_token}"
    assert tf["variable"]["gitlab_token"]["sensitive"] is True
    assert res["aws_api_gateway_rest_api"]["rest_api"]["name"] == "stacflow-dev"
    mapping = res["aws_lambda_event_source_mapping"]["on_store_event-sqs-event-source"]
    assert mapping["event_source_arn"] == "${aws_sqs_queue.events.arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    queue = res["aws_sqs_queue"]["events"]
    assert queue["name"] == "stacflow-dev-store-events"
    assert queue["visibility_timeout_seconds"] >= 6 * functions["on_store_event"]["timeout"]
    assert json.loads(queue["redrive_policy"])["deadLetterTargetArn"] == "${aws_sqs_queue.events_dlq.arn}"
    assert res["aws_sqs_queue"]["events_dlq"]["name"] == "stacflow-dev-store-events-dlq"
    notified = {n["bucket"]: n for n in res["aws_s3_bucket_notification"].values()}
    assert set(notified) == {"${aws_s3_bucket.stacflow_dev_data.id}", "${aws_s3_bucket.stacflow_dev_dvc.id}"}
    assert {q["queue_arn"] for n in notified.values() for q in n["queue"]} == {
        "${aws_sqs_queue.events.arn}", "${aws_sqs_queue.index_writes.arn}"}  # (the geoparquet function's trigger)
    policies = {name: json.loads(p["policy"]) for name, p in res["aws_iam_role_policy"].items()}
    assert policies == {"api_handler_role": policy_file("api_handler"), "on_store_event_role": policy_file("on_store_event"),
                        stack.GEOPARQUET_FUNCTION: stack.policy(stage, stack.GEOPARQUET_FUNCTION)}
    geoparquet = functions[stack.GEOPARQUET_FUNCTION]
    assert (geoparquet["runtime"], geoparquet["handler"]) == ("python3.12", "functions.geoparquet.handler")
    assert res["aws_cloudwatch_event_target"]["geoparquet"]["arn"] == "${aws_lambda_function.geoparquet.arn}"
    assert res["aws_api_gateway_gateway_response"]["not_found"]["status_code"] == "404"
    assert "aws_api_gateway_gateway_response.not_found" in res["aws_api_gateway_deployment"]["rest_api"]["depends_on"]


def test_terraform_check_catches_a_dangling_reference() -> None:
    config = {"resource": {"aws_sqs_queue": {"events": {"policy": "${aws_sqs_queue.gone.arn}"}}}, "data": {}}
    assert unresolved_references(config) == {"aws_sqs_queue.gone"}


# --- the handlers, invoked from the zip --------------------------------------------------------------

def test_api_handler_answers_from_the_zip(package_dir: Package, tmp_path: Path) -> None:
    health, landing = invoke(package_dir, local_env(tmp_path / "store"), EVENTS / "apigw_get_health.json",
                             api_event(tmp_path, "GET", "/stac"))
    assert health["statusCode"] == 200
    assert json.loads(health["body"]) == {"status": "ok"}
    assert landing["statusCode"] == 200
    body = json.loads(landing["body"])
    assert body["type"] == "Catalog"
    # Links are absolute and carry the API Gateway stage of the request.
    assert any(link["href"] == "https://abc123.execute-api.eu-west-1.amazonaws.com/api/stac/search"
               for link in body["links"])


def test_event_handler_publishes_an_item_from_the_zip(package_dir: Package, tmp_path: Path) -> None:
    store = tmp_path / "store"
    item_key = "collections/dataset/items/sen1floods11+v1.json"
    (store / item_key).parent.mkdir(parents=True)
    (store / item_key).write_text(json.dumps(make_item("sen1floods11+v1")))
    # The file was written behind the store's back: only the (SQS-delivered) S3 event publishes it.
    before, = invoke(package_dir, local_env(store), api_event(tmp_path, "GET", "/stac/search", {"ids": "sen1floods11+v1"}))
    assert json.loads(before["body"])["features"] == []
    event_result, after = invoke(package_dir, local_env(store), EVENTS / "sqs_s3_object_created.json",
                                 api_event(tmp_path, "GET", "/stac/search", {"ids": "sen1floods11+v1"}))
    assert event_result == {"batchItemFailures": []}
    assert [f["id"] for f in json.loads(after["body"])["features"]] == ["sen1floods11+v1"]


# --- the event flow on moto's server -----------------------------------------------------------------

def s3_api_notifications(cfn: dict[str, Any], queue_arns: dict[str, str]) -> dict[str, Any]:
    """A bucket's NotificationConfiguration, from CloudFormation's form to S3's API form (``queue_arns``:
    the queues' logical ids to their ARNs)."""
    return {"QueueConfigurations": [
        {"QueueArn": queue_arns[q["Queue"]["Fn::GetAtt"][0]], "Events": [q["Event"]],
         "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}} for q in cfn["QueueConfigurations"]]}


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message visible in the queue (until two empty receives)."""
    out: list[dict[str, Any]] = []
    empty = 0
    while empty < 2:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["All"]).get("Messages", [])
        empty = 0 if got else empty + 1
        out += got
    return out


def lambda_batch(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands the function for these messages."""
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": m.get("Attributes", {}), "messageAttributes": {},
                         "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
                         "awsRegion": "us-east-1"} for m in messages]}


def s3_key(message: dict[str, Any]) -> str | None:
    try:
        return unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"])
    except (ValueError, KeyError):
        return None


def test_event_flow_on_moto(package_dir: Package, moto_endpoint: str, tmp_path: Path) -> None:
    resources = package_dir.sam()["Resources"]
    s3, sqs = boto3.client("s3", endpoint_url=moto_endpoint), boto3.client("sqs", endpoint_url=moto_endpoint)
    # The queues as the template declares them.
    dlq_props, queue_props = resources["EventsDeadLetterQueue"]["Properties"], resources["EventsQueue"]["Properties"]
    dlq_url = sqs.create_queue(QueueName=dlq_props["QueueName"])["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {**queue_props["RedrivePolicy"], "deadLetterTargetArn": dlq_arn}
    url = sqs.create_queue(QueueName=queue_props["QueueName"], Attributes={
        "VisibilityTimeout": str(queue_props["VisibilityTimeout"]), "RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    index_url = sqs.create_queue(QueueName=resources["IndexWritesQueue"]["Properties"]["QueueName"])["QueueUrl"]
    index_arn = sqs.get_queue_attributes(QueueUrl=index_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    arns = {"EventsQueue": queue_arn, "IndexWritesQueue": index_arn}
    # The buckets and their notifications, from the template.
    for res in resources.values():
        if res["Type"] == "AWS::S3::Bucket":
            bucket = res["Properties"]["BucketName"]
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=s3_api_notifications(
                res["Properties"]["NotificationConfiguration"], arns))
    drain(sqs, url)  # S3's test events on saving the configurations
    drain(sqs, index_url)
    # Real writes: three items, then objects nothing listens to, and a DVC object landing in the remote.
    items = ["flood-a", "flood-b", "flood-c"]
    for item_id in items:
        s3.put_object(Bucket="stacflow-dev-data", Key=f"collections/dataset/items/{item_id}.json",
                      Body=json.dumps(make_item(item_id)).encode())
    s3.put_object(Bucket="stacflow-dev-data", Key="notes/readme.txt", Body=b"not an event source")
    s3.put_object(Bucket="stacflow-dev-dvc", Key="elsewhere/x", Body=b"outside the remote")
    s3.put_object(Bucket="stacflow-dev-dvc", Key="remote/files/md5/d4/1d8cd98f00b204e9800998ecf8427e", Body=b"")
    messages = drain(sqs, url)
    assert sorted(filter(None, map(s3_key, messages))) == sorted(
        [f"collections/dataset/items/{i}.json" for i in items] + ["remote/files/md5/d4/1d8cd98f00b204e9800998ecf8427e"])
    # A poison message, really sent through the queue, goes in the middle of the batch.
    sqs.send_message(QueueUrl=url, MessageBody="this is not an S3 notification {")
    (poison,) = drain(sqs, url)
    batch = messages[:2] + [poison] + messages[2:]
    (tmp_path / "batch.json").write_text(json.dumps(lambda_batch(batch, queue_arn)))
    by_key = {s3_key(m): m["MessageId"] for m in batch}
    faulty = "collections/dataset/items/flood-b.json"
    env = {k: v for k, v in resources["OnStoreEvent"]["Properties"]["Environment"]["Variables"].items()
           if isinstance(v, str)}  # the stage's settings (the deploy-time parameters are unset here)
    env.update(AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    search = {"ids": ",".join(items)}

    # First delivery: a store fault on one item's read.
    response, found = invoke(package_dir, {**env, "STACFLOW_TEST_FAULT_KEY": faulty}, tmp_path / "batch.json",
                             api_event(tmp_path, "GET", "/stac/search", search))
    assert response == {"batchItemFailures": [{"itemIdentifier": by_key[faulty]}]}  # not the poison one
    assert sorted(f["id"] for f in json.loads(found["body"])["features"]) == ["flood-a", "flood-c"]
    # As Lambda does: delete what succeeded (poison included); the failed one comes back after its timeout.
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    for m in batch:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    (retry_msg,) = [m for m in batch if m["MessageId"] in failed]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=retry_msg["ReceiptHandle"], VisibilityTimeout=0)
    # Redelivered (without the fault now) with whatever the first run's writes raised (publication
    # normalises item files, which notifies again), and the first batch delivered once more (at least
    # once): run the handler until the queue is quiet, as Lambda would.
    redelivered = drain(sqs, url)
    (retried,) = [m for m in redelivered if m["MessageId"] == by_key[faulty]]
    assert retried["Attributes"]["ApproximateReceiveCount"] == "2"
    pending, rounds = redelivered + batch, 0
    while pending:
        rounds += 1
        assert rounds <= 5  # derived writes must not notify forever
        (tmp_path / f"round{rounds}.json").write_text(json.dumps(lambda_batch(pending, queue_arn)))
        (response,) = invoke(package_dir, env, tmp_path / f"round{rounds}.json")
        assert response == {"batchItemFailures": []}
        for m in pending:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        pending = drain(sqs, url)
    (found,) = invoke(package_dir, env, api_event(tmp_path, "GET", "/stac/search", search))
    body = json.loads(found["body"])
    assert sorted(f["id"] for f in body["features"]) == items  # each good record published once
    assert body["numberMatched"] == 3
    # The publications' search-index writes went to the geoparquet function's trigger queue, and only they.
    triggers = [k for k in map(s3_key, drain(sqs, index_url)) if k]
    assert triggers
    assert all(k.startswith("stac-index/log/") for k in triggers)
