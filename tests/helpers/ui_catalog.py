"""A small catalog for the web UI tests and benchmarks: dataset and model items with real assets."""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

from chalicelib.stac.publish import publish_paths
from chalicelib.store import ObjectStore
from tests.helpers.stac_items import make_item

GITLAB = "https://gitlab.example/eo/alpine-tiles"
LABELS = b"tile,label\n1,forest\n2,lake\n"
MODEL_BYTES = b"\x08\x07fake onnx model bytes"
MODEL_KEY = "mlflow-artifacts/1/0123456789abcdef0123456789abcdef/artifacts/model/model.onnx"


@dataclass(frozen=True)
class Seeded:
    alpine: str = "alpine-tiles-v1"  # over the Alps; text "Alpine"
    lakes: str = "baltic-lakes-v2"  # over Finland; text "lakes"
    model: str = "forest-segmenter-v1"  # ai-model, over the Alps, with a downloadable model asset


def seed(store: ObjectStore, folder: pathlib.Path) -> Seeded:
    """Publish the items (through ``stacflow publish``'s code) and the bytes their assets point at."""
    seeded = Seeded()
    store.put(MODEL_KEY, MODEL_BYTES)
    alpine = make_item(seeded.alpine, "dataset", lon=5.9, lat=45.8, size=2.0, title="Alpine tiles",
                       description="Sentinel-2 tiles over the Alps, labelled forest or lake.",
                       keywords=["alps", "sentinel-2"], version="v1")
    alpine["assets"] = {"labels": {"href": "../../../mlflow-artifacts/1/0123456789abcdef0123456789abcdef/"
                                           "artifacts/labels.csv", "type": "text/csv", "title": "labels.csv",
                                   "roles": ["data"]}}
    alpine["links"].append({"rel": "via", "href": GITLAB, "type": "text/html", "title": "GitLab project eo/alpine-tiles"})
    lakes = make_item(seeded.lakes, "dataset", lon=24.0, lat=61.0, size=1.5, title="Baltic lakes",
                      description="Lake outlines in Finland.", keywords=["lakes", "finland"], version="v2")
    model = make_item(seeded.model, "ai-model", lon=6.0, lat=46.0, size=1.0, title="Forest segmenter v1",
                      description="A U-Net that segments forests.", keywords=["forest", "segmentation"])
    model["assets"] = {"model": {"href": "../../../" + MODEL_KEY, "type": "application/octet-stream; application=onnx",
                                 "title": "model.onnx", "roles": ["mlm:model"]}}
    store.put("mlflow-artifacts/1/0123456789abcdef0123456789abcdef/artifacts/labels.csv", LABELS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "items.ndjson"
    path.write_text("\n".join(json.dumps(item) for item in (alpine, lakes, model)) + "\n")
    report = publish_paths(store, [path], progress=False)
    if report.rejected:
        raise AssertionError(f"seed items rejected: {report.as_dict()}")
    return seeded
