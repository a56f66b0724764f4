"""MLflow's input rules (mlflow/utils/validation.py and the server's request schemas), without importing mlflow."""
from __future__ import annotations

import math
import posixpath
import re
from typing import Any

from .errors import MlflowError, invalid

MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_ENTITY_KEY_LENGTH = 250
MAX_RESULTS_THRESHOLD = 50000
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500

_NAME = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")
_MODEL_ID = re.compile(r"^m-[a-f0-9]{32}$")


def _bad_value(path: str, value: Any, extra: str = "") -> MlflowError:
    return invalid(f"Invalid value {value!r} for parameter '{path}' supplied. {extra}".rstrip())


def require(msg: dict[str, Any], field: str) -> Any:
    """A required field (MLflow's ``_assert_required``): absent or empty -> INVALID_PARAMETER_VALUE."""
    value = msg.get(field)
    if value is None or value == "" or value == []:
        raise invalid(f"Missing value for required parameter '{field}'. See the API docs for more "
                      f"information about request parameters.")
    return value


def string(msg: dict[str, Any], field: str, required: bool = False) -> str | None:
    value = require(msg, field) if required else msg.get(field)
    if value is not None and not isinstance(value, str):
        raise _bad_value(field, value, "Hint: Value was of type "
                         f"'{type(value).__name__}'. See the API docs for more information about request parameters.")
    return value


def integer(msg: dict[str, Any], field: str, required: bool = False) -> int | None:
    return to_int(require(msg, field) if required else msg.get(field), field)


def to_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad_value(field, value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_value(field, value, "Hint: Value was not an integer.") from None


def string_list(msg: dict[str, Any], field: str) -> list[str]:
    value = msg.get(field) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad_value(field, value, "Hint: Value was not a list of strings.")
    return value


def object_list(msg: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = msg.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad_value(field, value, "Hint: Value was not a list of objects.")
    return value


_GOOD_NAMES: set[str] = set()  # names already accepted: batches repeat the same few keys


def name(value: Any, path: str, what: str) -> str:
    """Metric, param and tag keys: a clean relative path of allowed characters, at most 250 chars."""
    if value in _GOOD_NAMES:
        return value  # type: ignore[no-any-return]
    if value is None:
        raise invalid(f"Missing value for required parameter '{path}'.")
    if not isinstance(value, str):
        raise _bad_value(path, value, f"{what} must be a string.")
    if not _NAME.match(value):
        raise _bad_value(path, value, "Names may only contain alphanumerics, underscores (_), dashes (-), "
                         "periods (.), spaces ( ), colon(:) and slashes (/).")
    norm = posixpath.normpath(value)
    if norm != value or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise _bad_value(path, value, "Names may be treated as files in certain cases, and must not resolve "
                         f"to other names when treated as such. This name would resolve to {norm!r}")
    length(f"{what} name" if what == "Metric" else f"{what} key", MAX_ENTITY_KEY_LENGTH, value)
    if len(_GOOD_NAMES) < 100_000:
        _GOOD_NAMES.add(value)
    return value


def length(what: str, limit: int, value: str | None) -> None:
    if value is not None and len(value) > limit:
        raise invalid(f"'{what}' exceeds the maximum length of {limit} characters")


def run_id(value: Any, path: str = "run_id") -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"Missing value for required parameter '{path}'. See the API docs for more "
                      f"information about request parameters.")
    if not _RUN_ID.match(value):
        raise _bad_value(path, value)
    return value


def experiment_id(value: Any, path: str = "experiment_id") -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise invalid(f"Missing value for required parameter '{path}'. See the API docs for more "
                      f"information about request parameters.")
    if not _EXPERIMENT_ID.match(value):
        raise invalid(f"Invalid experiment ID: '{value}'")
    return value


def model_id(value: Any) -> str:
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        raise MlflowError(f"Logged model with ID '{value}' not found.", "RESOURCE_DOES_NOT_EXIST")
    return value


def experiment_name(value: Any) -> str:
    if value is None or value == "":
        raise invalid(f"Invalid experiment name: '{value or ''}'")
    if not isinstance(value, str):
        raise invalid(f"Invalid experiment name: {value}. Expects a string.")
    length("name", MAX_EXPERIMENT_NAME_LENGTH, value)
    return value


def max_results(value: Any, default: int, field: str = "max_results") -> int:
    n = to_int(value, field)
    if n is None:
        return default
    if n <= 0 or n > MAX_RESULTS_THRESHOLD:
        raise invalid(f"Invalid value {n} for parameter '{field}' supplied. It must be at most "
                      f"{MAX_RESULTS_THRESHOLD}" + (", and greater than 0" if n <= 0 else ""))
    return n


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # proto JSON spells non-finite doubles as strings
        try:
            f = float(value)
        except ValueError:
            return None
        return f if (math.isnan(f) or math.isinf(f) or value.strip() == value) else None
    return None


def metric(m: dict[str, Any], path: str) -> list[Any]:
    """A validated metric as ``[key, value, timestamp, step, model_id, dataset_name, dataset_digest]``."""
    key = name(m.get("key"), f"{path}name" if path else "key", "Metric")
    if m.get("value") is None:
        raise invalid(f"Missing value for required parameter '{path}value'.")
    value = _number(m["value"])
    if value is None:
        raise _bad_value(f"{path}value", m["value"],
                         f"(timestamp={m.get('timestamp')}). Please specify value as a valid double (64-bit floating point)")
    ts = m.get("timestamp")
    if ts is None:
        raise invalid(f"Missing value for required parameter '{path}timestamp'.")
    ts_n = to_int(ts, f"{path}timestamp")
    if ts_n is None or ts_n < 0:
        raise _bad_value(f"{path}timestamp", ts, f"metric '{key}' (value={value}). Timestamp must be a "
                         "nonnegative long (64-bit integer) ")
    step = to_int(m.get("step"), f"{path}step") or 0
    return [key, value, ts_n, step, m.get("model_id") or None, m.get("dataset_name") or None,
            m.get("dataset_digest") or None]


def _text(value: Any) -> str:
    """Param and tag values as MLflow stores them: strings, with a missing value as ""."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def param(p: dict[str, Any], path: str) -> tuple[str, str]:
    key = name(p.get("key"), f"{path}key", "Param")
    value = _text(p.get("value"))
    length("Param value", MAX_PARAM_VAL_LENGTH, value)
    return key, value


def tag(t: dict[str, Any], path: str, limit: int = MAX_TAG_VAL_LENGTH) -> tuple[str, str]:
    key = name(t.get("key"), f"{path}key", "Tag")
    value = _text(t.get("value"))
    length(f"{path}value" if path else "value", limit, value)
    return key, value


def batch_limits(n_metrics: int, n_params: int, n_tags: int) -> None:
    for what, limit, n in (("metrics", MAX_METRICS_PER_BATCH, n_metrics),
                           ("params", MAX_PARAMS_TAGS_PER_BATCH, n_params),
                           ("tags", MAX_PARAMS_TAGS_PER_BATCH, n_tags),
                           ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, n_metrics + n_params + n_tags)):
        if n > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {what}. Got {n} {what}. "
                          f"Please split up {what} across multiple requests and try again.")


def dataset_input(d: dict[str, Any], path: str) -> dict[str, Any]:
    """A DatasetInput in proto JSON, checked as MLflow's ``_validate_dataset_inputs`` does."""
    ds = d.get("dataset")
    if not isinstance(ds, dict):
        raise invalid(f"Missing value for required parameter '{path}dataset'.")
    for field in ("name", "digest", "source_type", "source"):
        if not isinstance(ds.get(field), str) or not ds.get(field):
            raise invalid(f"Dataset {field} is required: '{path}dataset.{field}'")
    length("Dataset name", MAX_DATASET_NAME_SIZE, ds["name"])
    length("Dataset digest", MAX_DATASET_DIGEST_SIZE, ds["digest"])
    tags = []
    for i, t in enumerate(object_list(d, "tags")):
        if not isinstance(t.get("key"), str) or not t.get("key"):
            raise invalid("Input tag key cannot be None")
        value = t.get("value")
        if not isinstance(value, str):
            raise invalid("Input tag value cannot be None")
        length("Input tag key", MAX_INPUT_TAG_KEY_SIZE, t["key"])
        length("Input tag value", MAX_INPUT_TAG_VALUE_SIZE, value)
        tags.append({"key": t["key"], "value": value})
    clean = {k: ds[k] for k in ("name", "digest", "source_type", "source", "schema", "profile")
             if isinstance(ds.get(k), str)}
    return {"tags": tags, "dataset": clean}
