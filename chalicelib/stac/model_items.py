"""STAC items for registered model versions (collection ``ai-model``, id ``<model slug>-v<N>``).

``build_item`` is a pure function of ``ModelFacts`` (gathered by ``registry.publication`` from
the registry records, the MLmodel file, the ONNX graph and the tracking records), so replays
and out-of-order events produce the same item from the same state.

Choices documented here:
- MLM inputs/outputs come from the ONNX graph when the version has an ``.onnx`` file, else from
  the MLflow signature; a version with neither an ``MLmodel`` nor an ``.onnx`` file is pending
  and is not published (``registry.publication``).
- ``datetime`` is a ``stac.datetime`` tag, else the version's creation time; ``start_datetime``/
  ``end_datetime`` and bbox/geometry come from ``stac.*`` tags or the union of the catalogued
  training datasets' extents; otherwise the geometry is null (a model is not tied to a place).
- ``latest-version`` links to the registry's resolver URL (a redirect to the newest live version's
  item), so registering a version rewrites only its own item and its neighbours'.
- Run metrics are flat properties ``metric:<key>`` so that CQL2 filters can compare them.
- Item ids stay valid and distinct for any model name (``model_slug``): a name that is not a safe
  id, or is longer than ``SLUG_MAX``, becomes its safe prefix plus 16 hex digits of its SHA-256.
- Without a public base URL, every link is relative to the item's place in the static catalog
  (``Urls(None)``); the STAC API resolves them per request (``stac.hrefs``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..bounds import load_json
from . import catalog, mlm, version_ext

COLLECTION = "ai-model"
STAC_VERSION = "1.1.0"
FILE_SCHEMA = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
GEOJSON = "application/geo+json"
OWNER = "mlflow:registered_model_id"  # the model's uid: who may replace or remove the item
SLUG_MAX = 120  # + "-" + 16 hex + "-v" + 10 digits stays within item ids' 200 characters
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def model_slug(name: str, *, max_len: int = SLUG_MAX, empty: str = "model") -> str:
    """The item-id stem of a model name: the name itself if it is a short safe id, else its safe
    prefix (at most ``max_len`` characters) plus a hash of the whole name (names differing only in
    unsafe characters, or beyond the prefix, stay apart). Dataset ids reuse it for project paths and tags."""
    slug = _ID_SAFE.sub("-", name).strip(".-") or empty
    if slug != name or len(slug) > max_len:
        slug = slug[:max_len].rstrip(".-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return slug


def item_id(name: str, version: int) -> str:
    return f"{model_slug(name)}-v{version}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ModelFile:
    """One file of the version's artifacts that becomes an asset."""

    path: str  # relative to the version's artifact root
    href: str
    size: int | None = None
    checksum: str | None = None  # multihash (sha2-256) hex
    artifact_type: str | None = None  # set for model files (role mlm:model)


@dataclass
class Dataset:
    """A catalogued training dataset (an item of the catalog)."""

    href: str
    title: str
    bbox: list[float] | None = None
    start: str | None = None
    end: str | None = None


@dataclass
class ModelFacts:
    name: str
    version: int
    created_ms: int
    updated_ms: int
    model_uid: str = ""  # the registry's id of the model (names change, this does not)
    description: str = ""
    stage: str = "None"
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # version, then model, then run tags (first wins)
    deprecated: bool = False
    run_id: str = ""
    experiment_id: str = ""
    model_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    mlmodel: dict[str, Any] = field(default_factory=dict)  # parsed MLmodel file
    onnx: dict[str, Any] | None = None  # mlm.onnx_signature of the primary ONNX file
    files: list[ModelFile] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    gitlab_project: str | None = None  # URL
    # The owning GitLab project (the registered model's ``stacflow.project`` tag: an id or a full path);
    # the item carries it as ``stacflow:project_id`` / ``stacflow:project`` for the STAC access checks.
    project: str | None = None
    neighbours: dict[str, str | None] = field(default_factory=dict)  # predecessor/successor item ids


@dataclass
class Urls:
    """Where links point: the service's configured public base (None: links are relative to the
    item's place in the static catalog, and links only the API can answer are left out)."""

    base: str | None

    def item(self, iid: str) -> str:
        if self.base:
            return f"{self.base}/stac/collections/{COLLECTION}/items/{iid}"
        return f"./{iid}.json"

    def mlflow_api(self, path: str, **query: str) -> str | None:
        if not self.base:
            return None
        encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return f"{self.base}/mlflow/api/2.0/mlflow/{path}?{encoded}"

    def mlflow_ui(self, fragment: str) -> str | None:
        return f"{self.base}/mlflow/#/{fragment}" if self.base else None

    def browser(self, iid: str) -> str | None:
        """The item's page in STAC Browser (served at /browser/, history-mode paths)."""
        return f"{self.base}/browser/stac/collections/{COLLECTION}/items/{iid}" if self.base else None

    def latest(self, name: str) -> str | None:
        return f"{self.base}/mlflow/registry/latest-item?name={quote(name, safe='')}" if self.base else None


def _link(rel: str, href: str | None, media_type: str, title: str) -> list[dict[str, str]]:
    return [{"rel": rel, "href": href, "type": media_type, "title": title}] if href else []


def _parse_bbox(text: str) -> list[float] | None:
    try:
        values = load_json(text, what="stac.bbox") if text.strip().startswith("[") else [
            float(v) for v in text.split(",")]
        bbox = [float(v) for v in values]
    except (ValueError, TypeError):  # InputBoundError is a ValueError: a tag nested thousands deep
        return None
    return bbox if len(bbox) == 4 and bbox[0] <= bbox[2] and bbox[1] <= bbox[3] else None


def _polygon(bbox: list[float]) -> dict[str, Any]:
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _place_and_time(facts: ModelFacts, props: dict[str, Any]) -> tuple[dict[str, Any] | None, list[float] | None]:
    tags = facts.tags
    props["datetime"] = tags.get("stac.datetime") or iso(facts.created_ms)
    starts = [d.start for d in facts.datasets if d.start]
    ends = [d.end for d in facts.datasets if d.end]
    start = tags.get("stac.start_datetime") or (min(starts) if starts else None)
    end = tags.get("stac.end_datetime") or (max(ends) if ends else None)
    if start and end:
        props["start_datetime"], props["end_datetime"] = start, end
    if "stac.geometry" in tags:
        try:
            geometry = load_json(tags["stac.geometry"], what="stac.geometry")
            from shapely.geometry import shape
            return geometry, [float(v) for v in shape(geometry).bounds]
        except Exception:  # a malformed tag must not block publication: fall through to bbox/datasets
            pass
    bbox = _parse_bbox(tags["stac.bbox"]) if "stac.bbox" in tags else None
    if bbox is None:
        boxes = [d.bbox for d in facts.datasets if d.bbox]
        if boxes:
            west, south, east, north = zip(*boxes)
            bbox = [min(west), min(south), max(east), max(north)]
    return (_polygon(bbox), bbox) if bbox else (None, None)


def _architecture(facts: ModelFacts) -> str:
    tagged = facts.tags.get("mlm.architecture") or facts.tags.get("mlm:architecture")
    if tagged:
        return tagged
    estimator = facts.tags.get("estimator_class")  # set by mlflow.sklearn.autolog
    if estimator:
        return estimator.rsplit(".", 1)[-1]
    from_graph = mlm.architecture_from_graph(facts.onnx["graph_name"]) if facts.onnx else None
    return from_graph or "unknown"


def _io(facts: ModelFacts, tasks: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if facts.onnx:
        ins, outs = facts.onnx["inputs"], facts.onnx["outputs"]
    else:
        signature = facts.mlmodel.get("signature") or {}
        ins = mlm.signature_io(signature.get("inputs"), "input")
        outs = mlm.signature_io(signature.get("outputs"), "output")
    return ([mlm.input_object(i["name"], i["shape"], i["data_type"], i.get("description")) for i in ins],
            [mlm.output_object(o["name"], o["shape"], o["data_type"], tasks, o.get("description")) for o in outs])


def _media_type(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".onnx"):
        return "application/octet-stream; application=onnx"
    if lower.endswith((".pt2", ".pt", ".pth")):
        return "application/octet-stream; application=pytorch"
    if lower.endswith(("mlmodel", ".yaml", ".yml")):
        return "application/yaml"
    if lower.endswith(".json"):
        return "application/json"
    if lower.endswith(".txt"):
        return "text/plain"
    return "application/octet-stream"


def _asset_key(path: str) -> str:
    return "mlmodel" if path == "MLmodel" else path.replace("/", "-")


def build_item(facts: ModelFacts, urls: Urls) -> dict[str, Any]:
    iid = item_id(facts.name, facts.version)
    tags = facts.tags
    architecture = _architecture(facts)
    output_names = [o["name"] for o in (facts.onnx or {}).get("outputs", [])]
    tasks = (mlm.parse_tasks(tags.get("mlm.tasks") or tags.get("mlm:tasks"))
             or mlm.infer_tasks(architecture, output_names))
    inputs, outputs = _io(facts, tasks)
    fw, fw_version = mlm.framework(facts.mlmodel.get("flavors") or {})
    if fw is None and facts.onnx:
        fw = "ONNX"

    props: dict[str, Any] = {
        "title": f"{facts.name} v{facts.version}",
        "description": facts.description or f"Version {facts.version} of the registered model {facts.name}.",
        mlm.NAME: mlm.model_name(facts.name),
        mlm.ARCHITECTURE: architecture,
        mlm.TASKS: tasks,
        mlm.INPUT: inputs,
        mlm.OUTPUT: outputs,
        "keywords": sorted({*tasks, *([fw] if fw else []), architecture, facts.name}),
        "created": iso(facts.created_ms),
        "updated": iso(facts.updated_ms),
        "mlflow:registered_model": facts.name,
        "mlflow:model_version": str(facts.version),
        "mlflow:stage": facts.stage,
        "mlflow:aliases": sorted(facts.aliases),
    }
    if fw:
        props[mlm.FRAMEWORK] = fw
    if fw_version:
        props[mlm.FRAMEWORK_VERSION] = fw_version
    if facts.onnx and facts.onnx.get("total_parameters"):
        props[mlm.TOTAL_PARAMETERS] = facts.onnx["total_parameters"]
    pretrained = (tags.get("mlm.pretrained") or "").lower()
    if pretrained in ("true", "false"):
        props[mlm.PRETRAINED] = pretrained == "true"
        props[mlm.PRETRAINED_SOURCE] = tags.get("mlm.pretrained_source") if pretrained == "true" else None
    hyper = mlm.hyperparameters(facts.params)
    if hyper:
        props[mlm.HYPERPARAMETERS] = hyper
    for key, value in sorted(facts.metrics.items()):
        if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
            props[f"metric:{_METRIC_KEY.sub('_', key)}"] = value
    for key, value in (("mlflow:run_id", facts.run_id), ("mlflow:experiment_id", facts.experiment_id),
                       ("mlflow:model_id", facts.model_id), (OWNER, facts.model_uid)):
        if value:
            props[key] = value
    if facts.project:
        props["stacflow:project_id" if facts.project.isdigit() else "stacflow:project"] = facts.project
    geometry, bbox = _place_and_time(facts, props)

    assets: dict[str, Any] = {}
    for f in facts.files:
        asset: dict[str, Any] = {"href": f.href, "type": _media_type(f.path), "title": f.path}
        if f.artifact_type:
            asset["roles"] = [mlm.MODEL_ROLE, "metadata" if f.path == "MLmodel" else "data"]
            asset[mlm.ARTIFACT_TYPE] = f.artifact_type
        else:
            asset["roles"] = ["metadata"]
        if f.size is not None:
            asset["file:size"] = f.size
        if f.checksum:
            asset["file:checksum"] = f.checksum
        assets[_asset_key(f.path)] = asset
    if facts.gitlab_project:
        assets["source-code"] = {"href": facts.gitlab_project, "type": "text/html", "title": "GitLab project",
                                 "roles": ["mlm:source_code", "code"]}

    links: list[dict[str, str]] = []
    if facts.run_id:
        links += _link("mlflow-run", urls.mlflow_api("runs/get", run_id=facts.run_id), "application/json",
                       "MLflow run (API)")
        links += _link("mlflow-run", urls.mlflow_ui(f"experiments/{facts.experiment_id}/runs/{facts.run_id}"),
                       "text/html", "MLflow run")
    if facts.experiment_id:
        links += _link("mlflow-experiment", urls.mlflow_api("experiments/get", experiment_id=facts.experiment_id),
                       "application/json", "MLflow experiment (API)")
        links += _link("mlflow-experiment", urls.mlflow_ui(f"experiments/{facts.experiment_id}"), "text/html",
                       "MLflow experiment")
    links += _link("mlflow-registered-model", urls.mlflow_api("registered-models/get", name=facts.name),
                   "application/json", "Registered model (API)")
    links += _link("mlflow-model-version", urls.mlflow_api("model-versions/get", name=facts.name,
                                                           version=str(facts.version)),
                   "application/json", "Model version (API)")
    links += _link("mlflow-registered-model", urls.mlflow_ui(f"models/{quote(facts.name, safe='')}"), "text/html",
                   "Registered model")
    links += _link("mlflow-model-version",
                   urls.mlflow_ui(f"models/{quote(facts.name, safe='')}/versions/{facts.version}"), "text/html",
                   "Model version")
    if facts.gitlab_project:
        links += _link("related", facts.gitlab_project, "text/html", "GitLab project")
    for ds in facts.datasets:
        links += _link("derived_from", ds.href, GEOJSON, ds.title)

    item: dict[str, Any] = {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": [mlm.SCHEMA_URI] + ([FILE_SCHEMA] if any(f.size is not None or f.checksum
                                                                  for f in facts.files) else []),
        "id": iid, "collection": COLLECTION, "geometry": geometry, "properties": props,
        "links": catalog.item_links(iid) + links, "assets": assets,
    }
    if bbox:
        item["bbox"] = bbox
    pred, succ = facts.neighbours.get("predecessor"), facts.neighbours.get("successor")
    version_ext.apply(item, str(facts.version), deprecated=facts.deprecated, latest=urls.latest(facts.name),
                      predecessor=urls.item(pred) if pred else None, successor=urls.item(succ) if succ else None)
    return item
