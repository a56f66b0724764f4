"""The registry function behind S3 notifications (Lambda and SQS formats), as deployed."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from chalicelib.registry.lineage import ServiceTracking
from chalicelib.registry.publication import item_key
from chalicelib.registry.service import RegistryService
from chalicelib.store import CREATED, Change, ObjectStore
from chalicelib.tracking.service import TrackingService
from chalicelib.events.dispatch import handle_s3_event, handle_sqs_event, handler_for
from chalicelib.events.notifications import s3_event_for
from chalicelib.events.registry import MODEL_FILE_KEY, RECORD_KEY
from chalicelib.services import Services


@pytest.mark.parametrize("key, routed", [
    ("mlflow/registry/versions/0123456789abcdef0123456789abcdef/0000000001.json", True),
    ("mlflow/registry/models/0123456789abcdef0123456789abcdef.json", True),
    ("mlflow/registry/sources/mlflow-artifacts/1/r/artifacts/model/@versions/0123456789abcdef0123456789abcdef@1", True),
    ("mlflow-artifacts/1/models/m-1/artifacts/MLmodel", True),
    ("mlflow-artifacts/1/models/m-1/artifacts/extra_files/net.onnx", True),
    ("mlflow-artifacts/1/models/m-1/artifacts/data/model.pt2", True),
    ("artifact-root/1/r/artifacts/model/MLmodel", True),  # a direct artifact root inside the store
    ("mlflow/registry/aliases/0123456789abcdef0123456789abcdef.json", False),  # alias writes touch the version records
    ("mlflow/registry/names/iris.json", False),
    ("mlflow/registry/index/0.json", False),
    ("mlflow/registry/derived/mlflow-artifacts/x/model.onnx.json", False),
    ("mlflow/registry/next-version/0123456789abcdef0123456789abcdef", False),
    ("mlflow-artifacts/1/models/m-1/artifacts/conda.yaml", False),
    ("collections/ai-model/items/x.onnx", False),
])
def test_registry_routes(key: str, routed: bool) -> None:
    assert bool(re.match(RECORD_KEY, key) or re.match(MODEL_FILE_KEY, key)) is routed
    if routed:  # and no earlier route shadows it
        first = handler_for(key)
        assert first is not None
        assert first.__module__ == "chalicelib.events.registry"


def _onnx() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    return to_onnx(DecisionTreeClassifier(max_depth=2).fit(X, y), X[:1], options={"zipmap": False}).SerializeToString()


def test_s3_and_sqs_notifications_publish_on_s3(s3_store: ObjectStore) -> None:
    """Writes made without in-process dispatch (as in AWS) are published when their notifications arrive."""
    changes: list[Change] = []
    s3_store.emit_events = True  # type: ignore[attr-defined]
    s3_store.subscribe(changes.append)  # to build the notifications S3 would send
    tracking = TrackingService(s3_store)
    registry = RegistryService(s3_store, ServiceTracking(tracking))
    run = tracking.create_run({"experiment_id": tracking.create_experiment("e", None, [])}).info
    registry.create_registered_model("tree")
    registry.create_model_version("tree", f"runs:/{run.run_id}/model")
    records = [c for c in changes if c.key.startswith("mlflow/registry/")]
    handle_s3_event(s3_event_for(s3_store.event_source, records), Services(store=s3_store))
    assert not s3_store.exists(item_key("tree", 1))  # pending: no model files yet

    prefix = "mlflow-artifacts/" + run.artifact_uri.split(":", 1)[1].strip("/") + "/model"
    s3_store.put(f"{prefix}/model.onnx", _onnx())
    landed = s3_event_for(s3_store.event_source, [Change(CREATED, f"{prefix}/model.onnx")])
    sqs = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(landed)}]}
    assert handle_sqs_event(sqs, Services(store=s3_store)) == 1
    item = s3_store.get_json(item_key("tree", 1))
    assert item["properties"]["mlm:architecture"] == "DecisionTreeClassifier"
    assert item["assets"]["model.onnx"]["mlm:artifact_type"] == "onnx"
    # the notification again (at-least-once delivery): same item, no rewrite
    etag = s3_store.head(item_key("tree", 1)).etag
    handle_sqs_event(sqs, Services(store=s3_store))
    assert s3_store.head(item_key("tree", 1)).etag == etag
