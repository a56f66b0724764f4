"""Seed data for the MLflow web UI tests and bench, written with the real mlflow client.

One experiment of ``runs`` runs (params, a metric history of ``steps`` points per run, tags, a text
and a PNG artifact on the first run), and two registered models with versions from the first
runs, an alias on one. Returns what the tests assert against.
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any

EXPERIMENT = "ui-experiment"
MODELS = ("ui-classifier", "ui-segmenter")
METRIC = "loss"
TEXT_ARTIFACT = "notes/readme.txt"
TEXT_CONTENT = "stacflow artifact preview: the quick brown fox\n"
IMAGE_ARTIFACT = "plots/square.png"


@dataclass
class Seeded:
    tracking_uri: str
    experiment_id: str
    run_ids: list[str]  # in creation order
    steps: int
    models: dict[str, list[str]] = field(default_factory=dict)  # model name -> versions


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A solid-colour PNG, built by hand so the seed needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def seed(tracking_uri: str, runs: int = 24, steps: int = 10, models: bool = True,
         experiment: str = EXPERIMENT, name_width: int = 4) -> Seeded:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    eid = client.create_experiment(experiment)
    run_ids: list[str] = []
    for i in range(runs):
        run = client.create_run(eid, run_name=f"run-{i:0{name_width}d}", tags={"team": "eo" if i % 2 else "ml"})
        rid = run.info.run_id
        metrics = [Metric(METRIC, 1.0 / (i + 1) + 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(steps)]
        metrics.append(Metric("accuracy", i / max(runs, 1), 1_700_000_000_000, 0))
        client.log_batch(rid, metrics=metrics, params=[Param("lr", str(0.001 * (i + 1))), Param("depth", str(i % 5))],
                         tags=[RunTag("mlflow.user", "seed")])
        client.set_terminated(rid)
        run_ids.append(rid)
    seeded = Seeded(tracking_uri, eid, run_ids, steps)
    _artifacts(client, run_ids[0])
    if models:
        for n, name in enumerate(MODELS):
            client.create_registered_model(name, description=f"{name} for the UI tests")
            for rid in run_ids[n:n + 2]:
                mv = client.create_model_version(name, f"runs:/{rid}/model", run_id=rid)
                seeded.models.setdefault(name, []).append(str(mv.version))
        client.set_registered_model_alias(MODELS[0], "champion", seeded.models[MODELS[0]][-1])
    return seeded


def _artifacts(client: Any, run_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for rel, data in ((TEXT_ARTIFACT, TEXT_CONTENT.encode()), (IMAGE_ARTIFACT, png()),
                          ("model/MLmodel", b"artifact_path: model\nflavors: {}\n")):
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            client.log_artifact(run_id, path, os.path.dirname(rel))
