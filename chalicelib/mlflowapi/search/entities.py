"""The searches the services serve: runs, experiments, logged models, registered models, model versions.

Each filters and sorts ``Subject``s (what MLflow's in-memory search reads from one record) with
MLflow's semantics (mlflow/utils/search_utils.py). One difference: comparators are checked for the
whole filter before any record is read, as MLflow's SQL stores do, so an invalid filter fails even
over no records.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from ...like import like
from ..errors import invalid
from .grammar import (ATTRIBUTE, DATASET, IS_NOT_NULL, IS_NULL, METRIC, PARAM, TAG, Clause, Dialect, parse_filter,
                      parse_order_by, set_text)

# MLflow's comparator sets, in its declaration order (error messages list them).
_NUMERIC_OPS = (">", ">=", "!=", "=", "<", "<=")
_STRING_OPS = ("!=", "=", "LIKE", "ILIKE", "IN", "NOT IN")
_NULLABLE_OPS = ("!=", "=", "LIKE", "ILIKE", IS_NULL, IS_NOT_NULL)
_PATTERN_OPS = ("!=", "=", "LIKE", "ILIKE")
DATASET_CONTEXT_TAG = "mlflow.data.context"
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
_KEY_ALIASES = {"created": "start_time", "Created": "start_time",
                "run name": "run_name", "Run name": "run_name", "Run Name": "run_name"}


def _like(value: Any, pattern: Any, ignore_case: bool) -> bool:
    """SQL LIKE as MLflow's SQL stores read it (``%``, ``_``; no escape character)."""
    return isinstance(value, str) and isinstance(pattern, str) and like(value, pattern, ignore_case=ignore_case)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne, "<=": operator.le,
    "<": operator.lt,
    "LIKE": lambda s, p: _like(s, p, False),
    "ILIKE": lambda s, p: _like(s, p, True),
    "IN": lambda s, values: s in values,
    "NOT IN": lambda s, values: s not in values,
}
MAX_ORDER_BY_CLAUSES = 32  # each is one more pass over every matched record


def _order_by_list(order_by: Sequence[Any] | None) -> Sequence[Any]:
    if order_by and len(order_by) > MAX_ORDER_BY_CLAUSES:
        raise invalid(f"Invalid order_by: {len(order_by)} clauses, over the limit of {MAX_ORDER_BY_CLAUSES}")
    return order_by or ()


class ModelMetric(NamedTuple):
    key: str
    value: float
    timestamp: int
    dataset_name: str | None
    dataset_digest: str | None


_NONE: Mapping[str, Any] = MappingProxyType({})


class Subject(NamedTuple):
    """One record as a search reads it; ``record`` is what the caller gets back. A tuple: a run
    search builds one per run of the experiment, so it must cost next to nothing."""
    record: Any
    attributes: Mapping[str, Any]
    tags: Mapping[str, str] = _NONE
    params: Mapping[str, str] = _NONE
    metrics: Mapping[str, float] = _NONE  # runs: the latest value per key
    model_metrics: Sequence[ModelMetric] = ()  # logged models: every value, in logged order
    datasets: Sequence[Mapping[str, Any]] = ()  # runs: DatasetInput proto-JSON


class _Ordered:
    """A sort key part that puts None last in either direction (MLflow's ``_Reversor``)."""
    __slots__ = ("value", "ascending")

    def __init__(self, value: Any, ascending: bool) -> None:
        self.value, self.ascending = value, ascending

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and other.value == self.value

    def __lt__(self, other: _Ordered) -> bool:
        if self.value is None:
            return False
        if other.value is None:
            return True
        return bool(self.value < other.value if self.ascending else other.value < self.value)


def _check(comparator: str, allowed: Sequence[str], listed: Sequence[str], closing: bool) -> None:
    """MLflow's "Invalid comparator" (its messages differ in a closing quote, kept as they are)."""
    if comparator not in allowed:
        raise invalid(f"Invalid comparator '{comparator}' not one of '{set_text(listed)}" + ("'" if closing else ""))


def _check_logged(clause: Clause, key: str, numeric_keys: Sequence[str], param_tag_ops: Sequence[str]) -> bool:
    """The comparator checks runs and logged models share (metrics, params, tags, numeric attributes);
    whether ``clause`` was one of those."""
    c = clause.comparator
    if clause.type == METRIC:
        _check(c, _NUMERIC_OPS, _NUMERIC_OPS, False)
    elif clause.type in (PARAM, TAG):
        _check(c, param_tag_ops, param_tag_ops, clause.type == PARAM)
    elif clause.type == ATTRIBUTE and key in numeric_keys:
        _check(c, _NUMERIC_OPS, _STRING_OPS, False)
    else:
        return False
    return True


def _test(get: Callable[[Any], Any], op: Callable[[Any, Any], bool], value: Any) -> Callable[[Any, Any], bool]:
    """A compiled clause: the record's value exists and compares true."""
    def test(record: Any, stage: Any) -> bool:
        lhs = get(record)
        return lhs is not None and op(lhs, value)
    return test


def _compare(comparator: str, lhs: Any, value: Any) -> bool:
    return _OPS[comparator](lhs, value)


class Search:
    """A search over one entity type: ``filter`` then ``sort`` subjects, MLflow's way."""
    dialect: Dialect

    def parse(self, filter_string: str | None) -> list[Clause]:
        clauses = parse_filter(self.dialect, filter_string)
        for clause in clauses:
            self._validate(clause)
        return clauses

    def filter(self, subjects: Iterable[Subject], filter_string: str | None) -> list[Subject]:
        clauses = self.parse(filter_string)
        return [s for s in subjects if all(self._matches(s, c) for c in clauses)]

    def _validate(self, clause: Clause) -> None:
        raise NotImplementedError

    def _matches(self, subject: Subject, clause: Clause) -> bool:
        raise NotImplementedError

    def _attribute_key(self, key: str) -> str:
        return key


class _AttributeSorted(Search):
    """Experiments and registry searches: order_by on attributes only, then fixed tie-breakers."""
    tie_breakers: tuple[tuple[str, bool], ...]

    def sort(self, subjects: Iterable[Subject], order_by: Sequence[str] | None) -> list[Subject]:
        keys: list[tuple[str, bool]] = []
        for text in _order_by_list(order_by):
            kind, key, ascending = parse_order_by(self.dialect, text)
            if kind != ATTRIBUTE:
                raise invalid(f"Invalid order_by entity: {kind}")
            keys.append((self._attribute_key(key), ascending))
        keys += [(k, asc) for k, asc in self.tie_breakers if self._breaks_ties(k, keys)]
        return sorted(subjects, key=lambda s: tuple(_Ordered(s.attributes.get(k), asc) for k, asc in keys))

    def _breaks_ties(self, key: str, keys: list[tuple[str, bool]]) -> bool:
        return all(k != key for k, _ in keys)


class RunSearch(Search):
    dialect = Dialect(
        identifiers="runs", values="runs",
        search_keys=("artifact_uri", "end_time", "run_id", "run_name", "start_time", "status", "user_id",
                     "created", "Created", "run name", "Run name", "Run Name"),
        order_keys=("artifact_uri", "end_time", "run_id", "run_name", "start_time", "status", "user_id",
                    "created", "Created"),
        numeric_keys=("start_time", "end_time", "created", "Created"), list_keys=("run_id",), nulls=(TAG, PARAM),
        quote_invalid_clauses=True)

    def _validate(self, clause: Clause) -> None:
        key = _KEY_ALIASES.get(clause.key, clause.key)
        if not _check_logged(clause, key, self.dialect.numeric_keys, _NULLABLE_OPS):
            _check(clause.comparator, _STRING_OPS, _STRING_OPS, clause.type == ATTRIBUTE)

    def predicate(self, filter_string: str | None, getter: Callable[[str, str], Callable[[Any], Any]],
                  subject: Callable[[Any, Any], Subject]) -> Callable[[Any, Any], bool]:
        """The filter as one test of a stored record and its stage, ``_matches``'s semantics without
        a Subject per record (a search tests every run of an experiment: at 10,000 runs the
        allocations alone would cost more than the tests). ``getter(type, key)`` reads a metric's
        latest value, a param, a tag or an attribute from a record; the clauses it does not cover
        (datasets, IS [NOT] NULL) test ``subject(record, stage)``."""
        tests: list[Callable[[Any, Any], bool]] = []
        for clause in self.parse(filter_string):
            c, key, value = clause.comparator, _KEY_ALIASES.get(clause.key, clause.key), clause.value
            if clause.type == DATASET or c not in _OPS:
                tests.append(self._fallback(clause, subject))
            else:
                tests.append(_test(getter(clause.type, key), _OPS[c],
                                   float(value) if clause.type == METRIC else value))
        if not tests:
            return lambda r, st: True
        if len(tests) == 1:
            return tests[0]
        return lambda r, st: all(test(r, st) for test in tests)

    def _fallback(self, clause: Clause, subject: Callable[[Any, Any], Subject]) -> Callable[[Any, Any], bool]:
        return lambda record, stage: self._matches(subject(record, stage), clause)

    def _matches(self, s: Subject, clause: Clause) -> bool:
        # MLflow translates key aliases whatever the entity type ("params.created" reads param start_time).
        c, key, value = clause.comparator, _KEY_ALIASES.get(clause.key, clause.key), clause.value
        lhs: Any
        if clause.type == DATASET:
            if key == "context":
                return any(_compare(c, tag.get("value"), value) for d in s.datasets for tag in d.get("tags", ())
                           if tag.get("key") == DATASET_CONTEXT_TAG)
            return any(d["dataset"].get(key) is not None and _compare(c, d["dataset"][key], value)
                       for d in s.datasets)
        if clause.type == METRIC:
            lhs, value = s.metrics.get(key), float(value)
        elif clause.type == PARAM:
            lhs = s.params.get(key)
        elif clause.type == TAG:
            lhs = s.tags.get(key)
        else:
            lhs = s.attributes.get(key)
        if c in (IS_NULL, IS_NOT_NULL):
            return (lhs is None) == (c == IS_NULL)
        return lhs is not None and _compare(c, lhs, value)

    def sort(self, subjects: Iterable[Subject], order_by: Sequence[str] | None) -> list[Subject]:
        """Start time descending then run id, re-sorted stably by each order_by from the last."""
        keys = [parse_order_by(self.dialect, text) for text in _order_by_list(order_by)]
        for kind, _, _ in keys:
            if kind == DATASET:
                raise invalid(f"Invalid order_by entity type '{kind}'")
        runs = sorted(subjects, key=lambda s: (-s.attributes["start_time"], s.attributes["run_id"]))
        for kind, key, ascending in reversed(keys):
            source = operator.attrgetter({METRIC: "metrics", PARAM: "params", TAG: "tags"}.get(kind, "attributes"))
            key = _KEY_ALIASES.get(key, key)
            runs.sort(key=lambda s: self._sort_value(source(s).get(key), ascending), reverse=not ascending)
        return runs

    @staticmethod
    def _sort_value(value: Any, ascending: bool) -> tuple[bool, Any]:
        """None and NaN sort last in either direction."""
        fill = math.inf if ascending else -math.inf
        if value is None:
            return (True, fill) if ascending else (False, fill)
        if isinstance(value, float) and math.isnan(value):
            return (True, -fill) if ascending else (False, -fill)
        return (False, value) if ascending else (True, value)


class ExperimentSearch(_AttributeSorted):
    dialect = Dialect(
        identifiers="experiments", values="runs",
        search_keys=("name", "experiment_id", "creation_time", "last_update_time"),
        order_keys=("name", "experiment_id", "creation_time", "last_update_time"),
        numeric_keys=("creation_time", "last_update_time"), list_keys=("experiment_id",), nulls=(TAG,))
    tie_breakers = (("experiment_id", False),)

    def _validate(self, clause: Clause) -> None:
        if clause.type == TAG:
            _check(clause.comparator, _NULLABLE_OPS, _NULLABLE_OPS, False)
        elif clause.key in self.dialect.numeric_keys:
            _check(clause.comparator, _NUMERIC_OPS, _STRING_OPS, False)
        else:
            _check(clause.comparator, _STRING_OPS, _STRING_OPS, True)

    def _matches(self, s: Subject, clause: Clause) -> bool:
        c, key, value = clause.comparator, clause.key, clause.value
        if clause.type == TAG:
            if c in (IS_NULL, IS_NOT_NULL):
                return (key in s.tags) == (c == IS_NOT_NULL)
            return key in s.tags and _compare(c, s.tags[key], value)
        if key in self.dialect.numeric_keys:
            value = float(value)
        return _compare(c, s.attributes.get(key), value)


class RegisteredModelSearch(_AttributeSorted):
    dialect = Dialect(
        identifiers="registry", values="registry", search_keys=("name",),
        order_keys=("name", "creation_timestamp", "last_updated_timestamp"),
        numeric_keys=("creation_timestamp", "last_updated_timestamp"), list_keys=("name",), nulls=())
    tie_breakers: tuple[tuple[str, bool], ...] = (("name", True),)

    def _validate(self, clause: Clause) -> None:
        if clause.type == TAG:
            _check(clause.comparator, _PATTERN_OPS, _PATTERN_OPS, False)
        elif clause.key in self.dialect.numeric_keys:
            _check(clause.comparator, _NUMERIC_OPS, _STRING_OPS, False)
            self._integer(clause)
        else:
            _check(clause.comparator, _STRING_OPS, _STRING_OPS, True)

    @staticmethod
    def _integer(clause: Clause) -> int:
        try:
            return int(clause.value)
        except (TypeError, ValueError):
            raise invalid(f"Expected an integer value for attribute '{clause.key}'. Got value {clause.value}") from None

    def _matches(self, s: Subject, clause: Clause) -> bool:
        c, value = clause.comparator, clause.value
        if clause.type == TAG:
            lhs = s.tags.get(clause.key)
        elif clause.key in self.dialect.numeric_keys:
            lhs, value = s.attributes.get(self._attribute_key(clause.key)), self._integer(clause)
        else:
            lhs = s.attributes.get(self._attribute_key(clause.key))
        if lhs is None and clause.key == IS_PROMPT_TAG:  # models are not prompts: they lack the tag
            return (c == "=" and value == "false") or (c == "!=" and value == "true")
        return lhs is not None and _compare(c, lhs, value)


class ModelVersionSearch(RegisteredModelSearch):
    dialect = Dialect(
        identifiers="registry", values="versions", search_keys=("name", "version_number", "run_id", "source_path"),
        order_keys=("name", "version_number", "creation_timestamp", "last_updated_timestamp"),
        numeric_keys=("version_number", "creation_timestamp", "last_updated_timestamp"),
        list_keys=("name", "run_id"), nulls=())
    tie_breakers = (("name", True), ("version", False))

    def _attribute_key(self, key: str) -> str:
        return {"version_number": "version", "source_path": "source"}.get(key, key)

    def _breaks_ties(self, key: str, keys: list[tuple[str, bool]]) -> bool:
        # MLflow always appends version descending (its check looks for a key it has renamed)
        return key == "version" or super()._breaks_ties(key, keys)


# LoggedModel.status in MLflow's entity (what filters compare with) for the proto names we store.
_LOGGED_MODEL_STATUS = {"LOGGED_MODEL_STATUS_UNSPECIFIED": "UNSPECIFIED", "LOGGED_MODEL_PENDING": "PENDING",
                        "LOGGED_MODEL_READY": "READY", "LOGGED_MODEL_UPLOAD_FAILED": "FAILED"}
_LOGGED_MODEL_FIELDS = {"experiment_id", "model_id", "name", "artifact_location", "creation_timestamp",
                        "last_updated_timestamp", "model_type", "source_run_id", "status", "status_message"}
# MLflow's in-memory search fails on these (no such entity attributes); its SQL store reads them so.
_LOGGED_MODEL_ALIASES = {"creation_time": "creation_timestamp", "last_updated_time": "last_updated_timestamp"}


@dataclass(frozen=True)
class OrderBy:
    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LoggedModelSearch(Search):
    dialect = Dialect(
        identifiers="runs", values="runs",
        search_keys=("name", "model_id", "model_type", "status", "source_run_id", "creation_timestamp",
                     "creation_time", "last_updated_timestamp", "last_updated_time"),
        order_keys=("name", "model_id", "model_type", "status", "source_run_id", "creation_timestamp",
                    "creation_time", "last_updated_timestamp", "last_updated_time"),
        numeric_keys=("creation_timestamp", "creation_time", "last_updated_timestamp", "last_updated_time"),
        list_keys=None, nulls=(TAG, PARAM), quote_invalid_clauses=True)

    def _validate(self, clause: Clause) -> None:
        key = _KEY_ALIASES.get(clause.key, clause.key)
        if _check_logged(clause, key, self.dialect.numeric_keys, _PATTERN_OPS):
            return
        if self._attribute_key(key) not in _LOGGED_MODEL_FIELDS:  # "datasets.digest": MLflow reads the model's
            raise invalid(f"Invalid logged model search key '{key}'")
        _check(clause.comparator, tuple(_OPS), tuple(_OPS), True)

    def _attribute_key(self, key: str) -> str:
        return _LOGGED_MODEL_ALIASES.get(key, key)

    def _attribute(self, s: Subject, key: str) -> Any:
        value = s.attributes.get(self._attribute_key(key))
        return _LOGGED_MODEL_STATUS.get(str(value), value) if key == "status" else value

    def filter_models(self, subjects: Iterable[Subject], filter_string: str | None,
                      datasets: Sequence[Mapping[str, Any]] | None) -> list[Subject]:
        """``datasets`` ({dataset_name, dataset_digest}): metrics count only on these, and a model
        without a metric filter must have a metric on one of them."""
        clauses = self.parse(filter_string)
        chosen = list(subjects)
        if datasets and not any(c.type == METRIC for c in clauses):
            chosen = [s for s in chosen if any(_on(m, datasets) for m in s.model_metrics)]
        return [s for s in chosen if all(self._model_matches(s, c, datasets) for c in clauses)]

    def _matches(self, s: Subject, clause: Clause) -> bool:
        return self._model_matches(s, clause, None)

    def _model_matches(self, s: Subject, clause: Clause, datasets: Sequence[Mapping[str, Any]] | None) -> bool:
        c, key, value = clause.comparator, _KEY_ALIASES.get(clause.key, clause.key), clause.value
        lhs: Any
        if clause.type == METRIC:
            values = [m.value for m in s.model_metrics if m.key == key and (not datasets or _on(m, datasets))]
            lhs, value = (values[0] if values else None), float(value)
        elif clause.type == PARAM:
            lhs = s.params.get(key)
        elif clause.type == TAG:
            lhs = s.tags.get(key)
        else:
            lhs = self._attribute(s, key)
        return lhs is not None and _compare(c, lhs, value)

    def parse_order_by(self, order_by: Any) -> OrderBy:
        if not isinstance(order_by, dict):
            raise invalid("`order_by` must be a list of dictionaries.")
        name = order_by.get("field_name")
        if name is None:
            raise invalid("`field_name` in the `order_by` clause must be specified.")
        if not isinstance(name, str):
            raise invalid(f"`field_name` in the `order_by` clause must be a string, got {type(name).__name__}.")
        if "." in name:
            entity = name.split(".", 1)[0]
            if entity != "metrics":
                raise invalid(f"Invalid order by field name: {entity}, only `metrics.<name>` is allowed.")
        else:
            name = name.strip()
            if name not in self.dialect.order_keys:
                raise invalid(f"Invalid order by field name: {name}.")
        ascending = order_by.get("ascending", True)
        if ascending not in (True, False):
            raise invalid("Value of `ascending` in the `order_by` clause must be a boolean, got "
                          f"{type(ascending)} for field {name}.")
        dataset_name, dataset_digest = order_by.get("dataset_name"), order_by.get("dataset_digest")
        for field_name, value in (("dataset_name", dataset_name), ("dataset_digest", dataset_digest)):
            if value is not None and not isinstance(value, str):
                raise invalid(f"`{field_name}` in the `order_by` clause must be a string, got {type(value).__name__}.")
        if dataset_digest and not dataset_name:
            raise invalid("`dataset_digest` can only be specified if `dataset_name` is also specified.")
        return OrderBy(self._attribute_key(name), bool(ascending), dataset_name, dataset_digest)

    def sort(self, subjects: Iterable[Subject], order_by: Sequence[Any] | None) -> list[Subject]:
        """By each order_by, then creation time descending, then model id."""
        keys = [self.parse_order_by(o) for o in _order_by_list(order_by)]
        if all(k.field_name != "creation_timestamp" for k in keys):
            keys.append(OrderBy("creation_timestamp", False))
        if all(k.field_name != "model_id" for k in keys):
            keys.append(OrderBy("model_id"))
        return sorted(subjects, key=lambda s: tuple(_Ordered(self._sort_value(s, k), k.ascending) for k in keys))

    def _sort_value(self, s: Subject, order: OrderBy) -> Any:
        if "." not in order.field_name:
            return self._attribute(s, order.field_name)
        key = order.field_name.split(".", 1)[1]
        latest = None  # the value with the greatest timestamp, the first logged among equals
        for m in s.model_metrics:
            if (m.key == key and (not order.dataset_name or m.dataset_name == order.dataset_name)
                    and (not order.dataset_digest or m.dataset_digest == order.dataset_digest)
                    and (latest is None or m.timestamp > latest.timestamp)):
                latest = m
        return None if latest is None else latest.value


def _on(metric: ModelMetric, datasets: Sequence[Mapping[str, Any]]) -> bool:
    return any(metric.dataset_name == d.get("dataset_name")
               and (d.get("dataset_digest") is None or d.get("dataset_digest") == metric.dataset_digest)
               for d in datasets)


RUNS = RunSearch()
EXPERIMENTS = ExperimentSearch()
LOGGED_MODELS = LoggedModelSearch()
REGISTERED_MODELS = RegisteredModelSearch()
MODEL_VERSIONS = ModelVersionSearch()
