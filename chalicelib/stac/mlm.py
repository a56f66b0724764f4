"""The STAC Machine Learning Model (MLM) extension, v1.5.x: field names and the values we derive.

pystac-ext-mlm (1.4.1 here) writes schema v1.4.0 only, so this module holds the v1.5 field
names and builds the JSON values directly: model inputs/outputs from an ONNX graph or an
MLflow signature, tasks, framework and artifact types from MLflow flavors.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

from ..bounds import load_json

SCHEMA_URI = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"

NAME = "mlm:name"
ARCHITECTURE = "mlm:architecture"
TASKS = "mlm:tasks"
FRAMEWORK = "mlm:framework"
FRAMEWORK_VERSION = "mlm:framework_version"
PRETRAINED = "mlm:pretrained"
PRETRAINED_SOURCE = "mlm:pretrained_source"
INPUT = "mlm:input"
OUTPUT = "mlm:output"
HYPERPARAMETERS = "mlm:hyperparameters"
TOTAL_PARAMETERS = "mlm:total_parameters"
MEMORY_SIZE = "mlm:memory_size"
ARTIFACT_TYPE = "mlm:artifact_type"  # asset field
MODEL_ROLE = "mlm:model"  # asset role

TASK_VALUES = frozenset({
    "regression", "classification", "scene-classification", "detection", "object-detection",
    "segmentation", "semantic-segmentation", "instance-segmentation", "panoptic-segmentation",
    "similarity-search", "generative", "image-captioning", "super-resolution", "downscaling"})

# raster v1.1 data types (the MLM schema refers to them); everything else is "other".
_DATA_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                         "float16", "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64"})
_ALIASES = {"float": "float32", "double": "float64", "long": "int64", "integer": "int32",
            "complex64": "cfloat32", "complex128": "cfloat64", "half": "float16"}

# MLflow flavor -> (mlm:framework, key of its version in the flavor config)
FLAVORS: dict[str, tuple[str, str]] = {
    "onnx": ("ONNX", "onnx_version"),
    "pytorch": ("PyTorch", "pytorch_version"),
    "sklearn": ("scikit-learn", "sklearn_version"),
    "tensorflow": ("TensorFlow", "tensorflow_version"),
    "keras": ("Keras", "keras_version"),
    "xgboost": ("XGBoost", "xgb_version"),
    "lightgbm": ("LightGBM", "lgb_version"),
    "transformers": ("Hugging Face", "transformers_version"),
}

_NAME_OK = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.\-\s]+[a-zA-Z0-9]$")
_HYPERPARAM_KEY = re.compile(r"^[0-9a-zA-Z_.-]+$")


def model_name(text: str) -> str:
    """``text`` made valid for ``mlm:name`` (a letter first, an alphanumeric last, 3+ characters)."""
    cleaned = re.sub(r"[^a-zA-Z0-9_.\-\s]", "-", text)
    cleaned = re.sub(r"^[^a-zA-Z]+", "", cleaned)
    cleaned = re.sub(r"[^a-zA-Z0-9]+$", "", cleaned)
    if not _NAME_OK.match(cleaned):
        alnum = re.sub(r"[^a-zA-Z0-9]", "", text)
        cleaned = f"model-{alnum}" if alnum else "model"
    return cleaned


def data_type(name: str | None) -> str:
    text = (name or "").lower()
    text = _ALIASES.get(text, text)
    return text if text in _DATA_TYPES else "other"


def dim_order(rank: int, role: str) -> list[str]:
    """Conventional axis names by rank (``role`` names the last axis of 2-D tensors)."""
    by_rank = {1: ["batch"], 2: ["batch", role], 3: ["batch", "sequence", role],
               4: ["batch", "channel", "height", "width"], 5: ["batch", "channel", "time", "height", "width"]}
    if rank in by_rank:
        return by_rank[rank]
    return ["batch"] + [f"axis-{chr(ord('a') + i)}" for i in range(max(rank, 1) - 1)]


def input_object(name: str, shape: list[int], dtype: str, description: str | None = None) -> dict[str, Any]:
    shape = shape or [1]
    obj: dict[str, Any] = {"name": name or "input",
                           "input": {"shape": shape, "dim_order": dim_order(len(shape), "feature"),
                                     "data_type": data_type(dtype)}}
    if description:
        obj["description"] = description
    return obj


def output_object(name: str, shape: list[int], dtype: str, tasks: list[str],
                  description: str | None = None) -> dict[str, Any]:
    shape = shape or [1]
    role = "class" if "classification" in tasks and len(shape) == 2 else "value"
    obj: dict[str, Any] = {"name": name or "output", "tasks": tasks,
                           "result": {"shape": shape, "dim_order": dim_order(len(shape), role),
                                      "data_type": data_type(dtype)}}
    if description:
        obj["description"] = description
    return obj


# -- ONNX graphs -----------------------------------------------------------------------
def onnx_signature(model_bytes: bytes) -> dict[str, Any]:
    """Inputs, outputs (name, shape with -1 for dynamic dims, data type), graph name, parameter count."""
    import onnx
    from onnx import TensorProto

    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}

    def describe(value: Any) -> dict[str, Any]:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return {"name": value.name, "shape": [-1], "data_type": "other", "kind": kind}
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                 for d in tensor.shape.dim] if tensor.HasField("shape") else [-1]
        dtype = TensorProto.DataType.Name(tensor.elem_type).lower() if tensor.elem_type else "other"
        return {"name": value.name, "shape": shape, "data_type": data_type(dtype)}

    total = 0
    for init in graph.initializer:
        count = 1
        for d in init.dims:
            count *= d
        total += count
    return {"inputs": [describe(v) for v in graph.input if v.name not in initializers],
            "outputs": [describe(v) for v in graph.output],
            "graph_name": graph.name, "producer": model.producer_name, "total_parameters": total}


def architecture_from_graph(graph_name: str) -> str | None:
    """skl2onnx names graphs ``ONNX(<estimator class>)``; exporters' generic names carry nothing."""
    match = re.fullmatch(r"ONNX\((\w+)\)", graph_name or "")
    if match:
        return match.group(1)
    return None if (graph_name or "").lower() in ("", "main_graph", "torch_jit", "torch-jit-export") else graph_name


# -- MLflow signatures -----------------------------------------------------------------
def signature_io(spec: Any, prefix: str) -> list[dict[str, Any]]:
    """An MLflow signature side (JSON text or list) as ``[{name, shape, data_type, description}]``."""
    if isinstance(spec, str):
        try:
            spec = load_json(spec, what="the signature", max_bytes=None)
        except ValueError:  # InputBoundError too: not JSON, or nested thousands deep
            return []
    if not isinstance(spec, list) or not spec:
        return []
    tensors = [s for s in spec if isinstance(s, dict) and s.get("type") == "tensor"]
    if tensors:
        return [{"name": s.get("name") or (prefix if len(tensors) == 1 else f"{prefix}-{i}"),
                 "shape": [int(d) for d in (s.get("tensor-spec") or {}).get("shape") or [-1]],
                 "data_type": data_type((s.get("tensor-spec") or {}).get("dtype"))}
                for i, s in enumerate(tensors)]
    columns = [s for s in spec if isinstance(s, dict)]
    types = {data_type(c.get("type")) for c in columns}
    names = [str(c["name"]) for c in columns if c.get("name")]
    return [{"name": prefix, "shape": [-1, len(columns)],
             "data_type": types.pop() if len(types) == 1 else "other",
             "description": "columns: " + ", ".join(names) if names else None}]


# -- tasks, frameworks, artifacts ------------------------------------------------------
def parse_tasks(text: str | None) -> list[str]:
    tasks = [t.strip().lower() for t in re.split(r"[,\s]+", text or "") if t.strip()]
    return sorted({t for t in tasks if t in TASK_VALUES})


def infer_tasks(architecture: str | None, output_names: Iterable[str]) -> list[str]:
    """classifier -> classification, regressor -> regression, from the estimator or the outputs."""
    arch = (architecture or "").lower()
    if "classif" in arch or arch in ("logisticregression", "svc", "linearsvc", "nusvc"):
        return ["classification"]
    if "regress" in arch or arch.endswith("svr"):
        return ["regression"]
    if "segment" in arch or "unet" in arch:
        return ["segmentation"]
    if "detect" in arch or "yolo" in arch or "rcnn" in arch:
        return ["object-detection"]
    names = " ".join(output_names).lower()
    if "label" in names or "probabilit" in names:
        return ["classification"]
    return []


def framework(flavors: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(mlm:framework, mlm:framework_version) from the native flavor (not python_function)."""
    for flavor, (name, version_key) in FLAVORS.items():
        conf = flavors.get(flavor)
        if isinstance(conf, dict):
            version = conf.get(version_key)
            return name, (str(version) if version else None)
    return None, None


def artifact_type(path: str, flavors: Mapping[str, Any]) -> str:
    """``mlm:artifact_type`` of a model file, named after the call that wrote it."""
    lower = path.lower()
    if lower.endswith(".onnx"):
        return "onnx"
    if lower.endswith(".pt2"):
        return "torch.export.save"
    if lower.endswith((".pt", ".pth")):
        return "torch.jit.save" if "jit" in lower else "torch.save"
    if lower.endswith(".safetensors"):
        return "safetensors.torch.save_file"
    if lower.endswith((".pkl", ".pickle")):
        serialization = (flavors.get("sklearn") or {}).get("serialization_format", "pickle")
        return f"{serialization}.dump"
    if lower.endswith((".keras", ".h5")):
        return "tf.keras.Model.save"
    return "mlflow.pyfunc"


def hyperparameters(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Run params with keys the schema accepts; numbers and booleans typed back from their text."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _HYPERPARAM_KEY.match(str(key)):
            out[str(key)] = _typed(value)
    return out or None


def _typed(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value
    return {"true": True, "false": False, "none": None, "null": None}.get(value.lower(), value)
