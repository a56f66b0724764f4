"""MLflow's input rules (mlflow/utils/validation.py and its server's checks), without importing mlflow.

For the tracking store, the model registry and the artifact API alike: keys and names, ids, batch
and value limits, datasets, model names, versions, aliases and stages, artifact paths. Request
fields reach these already typed (``fields.Fields``); the rules here check what they say.
"""
from __future__ import annotations

import pathlib
import posixpath
import re
from typing import Any, Callable, Sequence
from urllib.parse import unquote

from .errors import invalid, logged_model_not_found, missing
from .fields import Fields, Objects, bad_value, field_of, fields_of, listed, to_int, type_hint

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
MAX_MODEL_NAME_LENGTH = 256
MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_MODEL_VERSION = 10 ** 10 - 1  # version numbers fit the registry's 10-digit record keys

# MLflow's proto enums (name -> number): requests may give either.
VIEW_TYPE = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
RUN_STATUS = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}
MODEL_STATUS = {"LOGGED_MODEL_STATUS_UNSPECIFIED": 0, "LOGGED_MODEL_PENDING": 1, "LOGGED_MODEL_READY": 2,
                "LOGGED_MODEL_UPLOAD_FAILED": 3}
MODEL_STAGES = ("None", "Staging", "Production", "Archived")
ACTIVE_MODEL_STAGES = ("Staging", "Production")

_NAME = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")
_MODEL_ID = re.compile(r"^m-[a-f0-9]{32}$")
_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_FORBIDDEN_IN_PATHS = re.compile(r"[\x00-\x1f\x7f\\#]")


_GOOD_NAMES: set[str] = set()  # names already accepted: batches repeat the same few keys


def name(value: Any, path: str, what: str) -> str:
    """Metric, param and tag keys: a clean relative path of allowed characters, at most 250 chars."""
    if value is None or value == "":
        raise missing(path)
    if not isinstance(value, str):
        raise bad_value(path, value, f"{what} key must be a string.")
    if value in _GOOD_NAMES:
        return value
    if not _NAME.match(value):
        raise bad_value(path, value, "Names may only contain alphanumerics, underscores (_), dashes (-), "
                         "periods (.), spaces ( ), colon(:) and slashes (/).")
    norm = posixpath.normpath(value)
    if norm != value or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise bad_value(path, value, "Names may be treated as files in certain cases, and must not resolve "
                         f"to other names when treated as such. This name would resolve to {norm!r}")
    length(f"{what} name" if what == "Metric" else f"{what} key", MAX_ENTITY_KEY_LENGTH, value)
    if len(_GOOD_NAMES) < 100_000:
        _GOOD_NAMES.add(value)
    return value


def length(what: str, limit: int, value: str | None) -> None:
    if value is not None and len(value) > limit:
        raise invalid(f"'{what}' exceeds the maximum length of {limit} characters")


def _identifier(value: Any, path: str) -> str:
    if value is None or value == "":
        raise missing(path)
    if not isinstance(value, str):
        raise bad_value(path, value, type_hint(value, "a string"))
    return value


def run_id(value: Any, path: str = "run_id") -> str:
    checked = _identifier(value, path)
    if not _RUN_ID.match(checked):
        raise bad_value(path, checked)
    return checked


def experiment_id(value: Any, path: str = "experiment_id") -> str:
    checked = _identifier(value, path)
    if not _EXPERIMENT_ID.match(checked):
        raise invalid(f"Invalid experiment ID: '{checked}'")
    return checked


def model_id(value: Any) -> str:
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        raise logged_model_not_found(value)
    return value


def experiment_name(value: Any) -> str:
    if value is None or value == "":
        raise invalid(f"Invalid experiment name: '{value or ''}'")
    if not isinstance(value, str):
        raise invalid(f"Invalid experiment name: {value}. Expects a string.")
    length("name", MAX_EXPERIMENT_NAME_LENGTH, value)
    return value


def max_results(n: int | None, default: int, field: str = "max_results") -> int:
    """A tracking search's page size (MLflow's tracking stores)."""
    if n is None:
        return default
    if n <= 0 or n > MAX_RESULTS_THRESHOLD:
        raise invalid(f"Invalid value {n} for parameter '{field}' supplied. It must be at most "
                      f"{MAX_RESULTS_THRESHOLD}" + (", and greater than 0" if n <= 0 else ""))
    return n


def registry_max_results(n: int | None, default: int, ceiling: int) -> int:
    """A registry search's page size (MLflow's model registry stores word it differently)."""
    if n is None:
        return default
    if n < 1 or n > ceiling:
        raise invalid(f"Invalid value for request parameter max_results. It must be between 1 and {ceiling}, "
                      f"but got value {n}")
    return n


def metric(m: Fields) -> list[Any]:
    """A validated metric as ``[key, value, timestamp, step, model_id, dataset_name, dataset_digest]``."""
    return _plain_metric(m.doc) or checked_metric(m)


def metrics(values: Objects | None, path: str = "metrics") -> list[list[Any]]:
    """``metric`` of each of a batch's metrics (``Fields``, or the message's own dicts: up to 1,000
    need no wrapper each unless one is bad, when its wrapper names the field: ``metrics[i].value``)."""
    out: list[list[Any]] = []
    for i, m in enumerate(listed(values, path)):
        doc = m.doc if type(m) is Fields else m
        out.append((type(doc) is dict and _plain_metric(doc)) or checked_metric(field_of(m, path, i)))
    return out


_NUMBERS = (float, int)


def _plain_metric(doc: dict[str, Any]) -> list[Any] | None:
    """``doc`` validated inline if it is what clients send (a key seen before, a JSON number, int64s as
    integers; a batch holds up to 1,000 metrics), else None: the full check names the bad field."""
    value: Any = doc.get("value")
    key, timestamp, step = doc.get("key"), doc.get("timestamp"), doc.get("step")
    if not (type(key) is str and key in _GOOD_NAMES and type(value) in _NUMBERS and type(timestamp) is int
            and timestamp >= 0 and (step is None or type(step) is int)):
        return None
    # Key, value and timestamp are there: three fields are those, a fourth is plain if it is the step.
    fields = len(doc)
    if fields == 3 or (fields == 4 and "step" in doc):
        return [key, float(value), timestamp, step or 0, None, None, None]
    extra = [doc.get("model_id"), doc.get("dataset_name"), doc.get("dataset_digest")]
    if all(v is None or type(v) is str for v in extra):
        return [key, float(value), timestamp, step or 0, *(v or None for v in extra)]
    return None


def checked_metric(m: Fields) -> list[Any]:
    """``metric`` field by field (its inline check must agree with this)."""
    key = name(m.doc.get("key"), m.path + "key", "Metric")
    value = m.number("value", required=True)
    timestamp = m.integer("timestamp", required=True)
    if timestamp is None or timestamp < 0:
        raise bad_value(m.path + "timestamp", timestamp, f"metric '{key}' (value={value}). Timestamp must be a "
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


def tags(values: Objects | None, limit: int = MAX_TAG_VAL_LENGTH) -> dict[str, str]:
    """Repeated ``{key, value}`` tags as a dict (a key given twice: the last value)."""
    return dict(tag(t, limit) for t in fields_of(values, "tags"))


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


# -- the model registry --------------------------------------------------------------------------
def model_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise missing(field)
    if "/" in value or ":" in value:
        raise invalid(f"Invalid model name '{value}'. Names cannot contain '/' or ':'.")
    if value in (".", "..") or len(value) > MAX_MODEL_NAME_LENGTH or "\x00" in value:
        raise invalid(f"Invalid value '{value[:300]}' for parameter '{field}' "
                      f"(at most {MAX_MODEL_NAME_LENGTH} characters, no NUL).")
    return value


def model_version(value: Any) -> int:
    """A version number: a positive integer, given as one or as its decimal text (the proto's string)."""
    if value is None or value == "":
        raise missing("version")
    number = to_int(value, "version")
    assert number is not None
    if number < 1 or number > MAX_MODEL_VERSION:
        raise invalid(f"Parameter 'version' must be between 1 and {MAX_MODEL_VERSION}, got '{value}'.")
    return number


def model_alias(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise invalid("Registered model alias name cannot be empty.")
    if not _ALIAS.match(value) or len(value) > MAX_ALIAS_LENGTH:
        raise invalid(f"Invalid alias name: '{value[:300]}'. Names may only contain alphanumerics, "
                      "underscores (_), and dashes (-).")
    return value


def new_model_alias(value: Any) -> str:
    """An alias to set: ``latest`` and ``v<N>`` are reserved (they already name versions)."""
    alias = model_alias(value)
    if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        raise invalid(f"Alias name '{alias}' is reserved.")
    return alias


def model_stage(value: Any) -> str:
    """A stage name in its canonical case."""
    for known in MODEL_STAGES:
        if isinstance(value, str) and value.lower() == known.lower():
            return known
    raise invalid(f"Invalid Model Version stage: {str(value)[:100]}. Value must be one of {', '.join(MODEL_STAGES)}.")


# -- artifact paths -------------------------------------------------------------------------------
def fully_decoded(text: str, decode: Callable[[str], str] = unquote) -> str:
    """``text`` percent-decoded until it no longer changes: MLflow checks paths so, and "%252e%252e" is
    ".." too. (Each decoding that changes the text shortens it, so this ends.)"""
    while (step := decode(text)) != text:
        text = step
    return text


def artifact_path(path: str, *, allow_root: bool = False) -> str:
    """A clean relative artifact path (already URL-decoded), or INVALID_PARAMETER_VALUE.

    Rejects absolute paths (POSIX or Windows), ``.``/``..`` and empty segments (also when
    percent-encoded), backslashes, ``#`` and control characters. A trailing ``/`` is dropped.
    """
    path = path[:-1] if path.endswith("/") else path
    if not path:
        if allow_root:
            return ""
        raise invalid("Invalid path: an artifact path is required")
    # Decoding only rewrites %XX, so checking the decoded form also covers the path as given.
    decoded = fully_decoded(path)
    if (_FORBIDDEN_IN_PATHS.search(decoded) or decoded.startswith("/")
            or pathlib.PureWindowsPath(decoded).is_absolute()
            or any(seg in ("", ".", "..") for seg in decoded.split("/"))):
        raise invalid(f"Invalid path: {path!r}")
    return path


def path_from_segments(segments: Sequence[str]) -> str:
    """The artifact path named by percent-encoded URL segments; an encoded ``/`` is refused."""
    decoded = [unquote(seg) for seg in segments]
    if any("/" in seg for seg in decoded):
        raise invalid("Invalid path: encoded '/' in a path segment")
    return artifact_path("/".join(decoded), allow_root=True) if decoded else ""


def upload_id(value: str) -> str:
    if not value or _FORBIDDEN_IN_PATHS.search(value):
        raise invalid(f"Invalid upload_id: {value!r}")
    return value
