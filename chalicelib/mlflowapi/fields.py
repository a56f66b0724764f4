"""Typed access to MLflow request messages: each field as its proto type, or MLflow's 400 naming it.

The tracking, registry and artifact routes read every request field through ``Fields``, as
MLflow's handlers check theirs against a schema (``_assert_string``, ``_assert_required``...)
before a store is called.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence, Union, overload

from .errors import MlflowError, invalid, missing

_SHOWN = 120  # longest repr of a rejected value echoed in an error message


def bad_value(path: str, value: Any, extra: str = "") -> MlflowError:
    shown = repr(value)
    shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."
    return invalid(f"Invalid value {shown} for parameter '{path}' supplied. {extra}".rstrip())


def type_hint(value: Any, expected: str) -> str:
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
            raise bad_value(path.rstrip(".") or "request", doc, type_hint(doc, "an object"))
        self.doc: dict[str, Any] = doc
        self.path = path

    def _get(self, field: str, required: bool) -> Any:
        value = self.doc.get(field)
        if required and (value is None or value == "" or value == []):
            raise missing(self.path + field)
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
            raise bad_value(self.path + field, value, type_hint(value, "a string"))
        return value

    def integer(self, field: str, *, required: bool = False) -> int | None:
        return to_int(self._get(field, required), self.path + field)

    def number(self, field: str, *, required: bool = False) -> float | None:
        value = self._get(field, required)
        if value is None:
            return None
        number = _number(value)
        if number is None:
            raise bad_value(self.path + field, value, "Please specify value as a valid double (64-bit floating "
                                                      "point)")
        return number

    def boolean(self, field: str) -> bool | None:
        value = self.doc.get(field)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad_value(self.path + field, value, type_hint(value, "a boolean"))

    def enum(self, field: str, numbers: dict[str, int], *, required: bool = False) -> str | None:
        """An enum field as its name; accepts the name or the number (also as a decimal string)."""
        value = self._get(field, required)
        if value is None or (isinstance(value, str) and value in numbers):
            return value
        names = {n: name for name, n in numbers.items()}
        if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).isdigit():
            if int(value) in names:
                return names[int(value)]
        raise bad_value(self.path + field, value, f"Expected one of {sorted(numbers)}.")

    def _list(self, field: str, kind: type, what: str) -> list[Any]:
        value = self.doc.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
            raise bad_value(self.path + field, value, f"Hint: Value was not a list of {what}.")
        return value

    def strings(self, field: str) -> list[str]:
        return self._list(field, str, "strings")

    def objects(self, field: str) -> list[Fields]:
        return [Fields(v, f"{self.path}{field}[{i}].") for i, v in enumerate(self.dicts(field))]

    def dicts(self, field: str) -> list[dict[str, Any]]:
        """``objects`` as the message's own dicts (a batch's 1,000 metrics need no wrapper each)."""
        return self._list(field, dict, "objects")

    def object(self, field: str, *, required: bool = False) -> Fields | None:
        value = self._get(field, required)
        return None if value is None else Fields(value, f"{self.path}{field}.")


# Repeated message fields given to a service method: ``Fields`` from the routes, or plain dicts.
Objects = Sequence[Union[Fields, dict[str, Any]]]


def fields_of(values: Objects | None, path: str) -> list[Fields]:
    """Objects given to a service method: ``Fields`` from the routes, or plain dicts from other callers."""
    return [field_of(v, path, i) for i, v in enumerate(listed(values, path))]


def field_of(value: Fields | dict[str, Any], path: str, i: int) -> Fields:
    """Item ``i`` of the objects at ``path`` (see ``fields_of``)."""
    return value if isinstance(value, Fields) else Fields(value, f"{path}[{i}].")


def listed(values: Objects | None, path: str) -> Objects:
    """Repeated objects given to a service method, checked to be a list (their items are not)."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise bad_value(path, values, "Hint: Value was not a list of objects.")
    return values


def to_int(value: Any, field: str) -> int | None:
    """An int64 field: a JSON integer, an integral float, or a decimal string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_value(field, value, "Hint: Value was not an integer.")
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise bad_value(field, value, "Hint: Value was not an integer.")
    try:
        return int(value)
    except ValueError:
        raise bad_value(field, value, "Hint: Value was not an integer.") from None


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
