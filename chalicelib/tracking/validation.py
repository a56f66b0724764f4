"""MLflow's input rules (mlflow/utils/validation.py and the server's request schemas), without importing mlflow."""
from __future__ import annotations

import math
import posixpath
import re
from typing import Any, Literal, Sequence, overload

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
MAX_DATASET_SCHEMA_SIZE = 1048575
MAX_DATASET_SOURCE_SIZE = 65535
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500

# MLflow's proto enums (name -> number): requests may give either.
VIEW_TYPE = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
RUN_STATUS = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}
MODEL_STATUS = {"LOGGED_MODEL_STATUS_UNSPECIFIED": 0, "LOGGED_MODEL_PENDING": 1, "LOGGED_MODEL_READY": 2,
                "LOGGED_MODEL_UPLOAD_FAILED": 3}

_NAME = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")
_MODEL_ID = re.compile(r"^m-[a-f0-9]{32}$")


_SHOWN = 120  # longest repr of a rejected value echoed in an error message


def _bad_value(path: str, value: Any, extra: str = "") -> MlflowError:
    shown = repr(value)
    shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."
    return invalid(f"Invalid value {shown} for parameter '{path}' supplied. {extra}".rstrip())


def _missing(path: str) -> MlflowError:
    return invalid(f"Missing value for required parameter '{path}'. See the API docs for more "
                   f"information about request parameters.")


def _type_hint(value: Any, expected: str) -> str:
    return (f"Hint: Value was of type '{type(value).__name__}', expected {expected}. See the API docs for "
            "more information about request parameters.")


class Fields:
    """Typed access to one request message, or to an object nested in it (a metric, a tag...).

    Every accessor returns the field as the type MLflow's proto declares, ``None`` when it is
    absent, or raises INVALID_PARAMETER_VALUE naming the field's path (``metrics[2].key``). So a
    JSON value of another type (an object where a string belongs, a string where a list does)
    never gets past parsing, before anything is read or written. Proto JSON's lenient spellings
    are accepted: int64 as a decimal string (query parameters are all strings), doubles as
    ``"NaN"``/``"Infinity"``, enums by name or number. (GET query parameters of repeated fields
    arrive as lists: see ``mlflow_common.request_message``.)
    """

    __slots__ = ("doc", "path")

    def __init__(self, doc: Any, path: str = "") -> None:
        if isinstance(doc, Fields):
            doc = doc.doc
        if not isinstance(doc, dict):
            raise _bad_value(path.rstrip(".") or "request", doc, _type_hint(doc, "an object"))
        self.doc: dict[str, Any] = doc
        self.path = path

    def _get(self, field: str, required: bool) -> Any:
        value = self.doc.get(field)
        if required and (value is None or value == "" or value == []):
            raise _missing(self.path + field)
        return value

    def present(self, field: str) -> bool:
        return self.doc.get(field) is not None

    @overload
    def string(self, field: str, *, required: Literal[True]) -> str: ...

    @overload
    def string(self, field: str, *, required: bool = False) -> str | None: ...

    def string(self, field: str, *, required: bool = False) -> str | None:
        value = self._get(field, required)
        if value is not None and not isinstance(value, str):
            raise _bad_value(self.path + field, value, _type_hint(value, "a string"))
        return value

    def integer(self, field: str, *, required: bool = False) -> int | None:
        return to_int(self._get(field, required), self.path + field)

    def number(self, field: str, *, required: bool = False) -> float | None:
        value = self._get(field, required)
        if value is None:
            return None
        number = _number(value)
        if number is None:
            raise _bad_value(self.path + field, value, "Please specify value as a valid double (64-bit floating "
                                                       "point)")
        return number

    def boolean(self, field: str) -> bool | None:
        value = self.doc.get(field)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad_value(self.path + field, value, _type_hint(value, "a boolean"))

    def enum(self, field: str, numbers: dict[str, int], *, required: bool = False) -> str | None:
        """An enum field as its name; accepts the name or the number (also as a decimal string)."""
        value = self._get(field, required)
        if value is None or (isinstance(value, str) and value in numbers):
            return value
        names = {n: name for name, n in numbers.items()}
        if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).isdigit():
            if int(value) in names:
                return names[int(value)]
        raise _bad_value(self.path + field, value, f"Expected one of {sorted(numbers)}.")

    def strings(self, field: str) -> list[str]:
        value = self.doc.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad_value(self.path + field, value, "Hint: Value was not a list of strings.")
        return value

    def objects(self, field: str) -> list[Fields]:
        value = self.doc.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise _bad_value(self.path + field, value, "Hint: Value was not a list of objects.")
        return [Fields(v, f"{self.path}{field}[{i}].") for i, v in enumerate(value)]

    def object(self, field: str, *, required: bool = False) -> Fields | None:
        value = self._get(field, required)
        return None if value is None else Fields(value, f"{self.path}{field}.")


def fields_of(values: Sequence[Fields | dict[str, Any]] | None, path: str) -> list[Fields]:
    """Objects given to a service method: ``Fields`` from the routes, or plain dicts from other callers."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise _bad_value(path, values, "Hint: Value was not a list of objects.")
    return [v if isinstance(v, Fields) else Fields(v, f"{path}[{i}].") for i, v in enumerate(values)]


def to_int(value: Any, field: str) -> int | None:
    """An int64 field: a JSON integer, an integral float, or a decimal string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad_value(field, value, "Hint: Value was not an integer.")
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _bad_value(field, value, "Hint: Value was not an integer.")
    try:
        return int(value)
    except ValueError:
        raise _bad_value(field, value, "Hint: Value was not an integer.") from None


_GOOD_NAMES: set[str] = set()  # names already accepted: batches repeat the same few keys


def name(value: Any, path: str, what: str) -> str:
    """Metric, param and tag keys: a clean relative path of allowed characters, at most 250 chars."""
    if value is None or value == "":
        raise _missing(path)
    if not isinstance(value, str):
        raise _bad_value(path, value, f"{what} key must be a string.")
    if value in _GOOD_NAMES:
        return value
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
    if value is None or value == "":
        raise _missing(path)
    if not isinstance(value, str):
        raise _bad_value(path, value, _type_hint(value, "a string"))
    if not _RUN_ID.match(value):
        raise _bad_value(path, value)
    return value


def experiment_id(value: Any, path: str = "experiment_id") -> str:
    if value is None or value == "":
        raise _missing(path)
    if not isinstance(value, str):
        raise _bad_value(path, value, _type_hint(value, "a string"))
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


def max_results(n: int | None, default: int, field: str = "max_results") -> int:
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


def metric(m: Fields) -> list[Any]:
    """A validated metric as ``[key, value, timestamp, step, model_id, dataset_name, dataset_digest]``."""
    key = name(m.doc.get("key"), m.path + "key", "Metric")
    value = m.number("value", required=True)
    timestamp = m.integer("timestamp", required=True)
    if timestamp is None or timestamp < 0:
        raise _bad_value(m.path + "timestamp", timestamp, f"metric '{key}' (value={value}). Timestamp must be a "
                         "nonnegative long (64-bit integer) ")
    return [key, value, timestamp, m.integer("step") or 0, m.string("model_id") or None,
            m.string("dataset_name") or None, m.string("dataset_digest") or None]


def param(p: Fields) -> tuple[str, str]:
    key = name(p.doc.get("key"), p.path + "key", "Param")
    value = p.string("value") or ""
    length("Param value", MAX_PARAM_VAL_LENGTH, value)
    return key, value


def tag(t: Fields, limit: int = MAX_TAG_VAL_LENGTH) -> tuple[str, str]:
    key = name(t.doc.get("key"), t.path + "key", "Tag")
    value = t.string("value") or ""
    length(t.path + "value", limit, value)
    return key, value


def batch_limits(n_metrics: int, n_params: int, n_tags: int) -> None:
    for what, limit, n in (("metrics", MAX_METRICS_PER_BATCH, n_metrics),
                           ("params", MAX_PARAMS_TAGS_PER_BATCH, n_params),
                           ("tags", MAX_PARAMS_TAGS_PER_BATCH, n_tags),
                           ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, n_metrics + n_params + n_tags)):
        if n > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {what}. Got {n} {what}. "
                          f"Please split up {what} across multiple requests and try again.")


def dataset_input(d: Fields) -> dict[str, Any]:
    """A DatasetInput in proto JSON, checked as MLflow's ``_validate_dataset_inputs`` does."""
    ds = d.object("dataset", required=True)
    assert ds is not None
    clean: dict[str, str] = {}
    for field in ("name", "digest", "source_type", "source", "schema", "profile"):
        value = ds.string(field)
        if field in ("name", "digest", "source_type", "source") and not value:
            raise invalid(f"Dataset {field} is required: '{ds.path}{field}'")
        if value is not None:
            clean[field] = value
    length("Dataset name", MAX_DATASET_NAME_SIZE, clean["name"])
    length("Dataset digest", MAX_DATASET_DIGEST_SIZE, clean["digest"])
    length("Dataset schema", MAX_DATASET_SCHEMA_SIZE, clean.get("schema"))
    length("Dataset source", MAX_DATASET_SOURCE_SIZE, clean["source"])
    tags = []
    for t in d.objects("tags"):
        key, value = t.string("key"), t.string("value")
        if not key:
            raise invalid("Input tag key cannot be None")
        if value is None:
            raise invalid("Input tag value cannot be None")
        length("Input tag key", MAX_INPUT_TAG_KEY_SIZE, key)
        length("Input tag value", MAX_INPUT_TAG_VALUE_SIZE, value)
        tags.append({"key": key, "value": value})
    return {"tags": tags, "dataset": clean}
