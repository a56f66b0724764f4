"""Size and nesting bounds on untrusted input, checked before a domain parser sees it, and the size
rule of Lambda's response payload that every paged answer (STAC and MLflow) is cut by.

Parsers recurse: Python ones raise ``RecursionError`` (a 500 if it escapes), native ones (``cql2``)
overflow the C stack and kill the process. Every request body and every embedded JSON document
(filters, geometries, page tokens) goes through ``load_json``, so both API surfaces (STAC and
MLflow) share one rule, and each maps ``InputBoundError`` to its own 400.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

# Lambda's synchronous payload limit, both ways: a deployed function never sees a larger request,
# and cannot send a larger response.
MAX_BODY_BYTES = 6 * 1024 * 1024
# What a paged response body may cost inside that payload; the rest is for the status line, headers
# and the envelope's own keys.
RESPONSE_BUDGET = 5 * 1024 * 1024
_ASCII = bytes(range(128))
# Deepest JSON accepted anywhere: STAC bodies with a CQL2 JSON filter reach ~2 levels per operator;
# cql2's own JSON reader stops at 128, Python's recursion limit is 1000.
MAX_JSON_DEPTH = 100


def payload_size(body: bytes) -> int:
    """An upper bound of ``body``'s size inside Lambda's proxy envelope, where the body is itself a JSON
    string: quotes and backslashes double, a non-ASCII character takes up to 3 times its UTF-8 bytes
    (``\\uXXXX``); exact for ASCII bodies."""
    return len(body) + body.count(b'"') + body.count(b"\\") + 2 * len(body.translate(None, _ASCII))


class InputBoundError(ValueError):
    """The input is malformed or over a bound; ``str(err)`` says which, for the client."""


def load_json(raw: bytes | str, *, what: str = "the request body", max_bytes: int | None = MAX_BODY_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``raw`` parsed, or InputBoundError: over ``max_bytes`` (None: any size), not JSON, or nested
    over ``max_depth``."""
    if max_bytes is not None:
        size = len(raw.encode() if isinstance(raw, str) and not raw.isascii() else raw)
        if size > max_bytes:
            raise InputBoundError(f"{what} is {size} bytes, over the limit of {max_bytes}")
    try:
        value, text = _parse(raw)
    except RecursionError:  # json's C scanner stops at the recursion limit, well within the C stack
        raise InputBoundError(f"{what} is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputBoundError(f"{what} is not JSON: {err}") from None
    # Each level opens with a bracket: text with no more brackets than levels allowed needs no walk.
    opening = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if opening > max_depth:
        if text is not None:
            _check_text_depth(text, what=what, max_depth=max_depth)
        else:
            check_depth(value, what=what, max_depth=max_depth)
    return value


# Digits as "0", the rest as ".": a run of 19 zeros may be an integer beyond 64 bits, which orjson
# reads as a float (``json`` as an int).
_DIGITS = bytes.maketrans(b"0123456789" + bytes(c for c in range(256) if not 48 <= c <= 57),
                          b"0" * 10 + b"." * 246)
_LONG_RUN = b"0" * 19


def _parse(raw: bytes | str) -> tuple[Any, bytes | None]:
    """``json.loads(raw)`` (raising what it raises), and, where orjson read it, ``raw`` as UTF-8.

    orjson is ~6x faster and reads the same value from everything it accepts but integers beyond 64
    bits (kept from it by their digits); it refuses all else that ``json`` reads differently (``NaN``,
    infinities, overflowing floats, lone surrogates, a BOM, UTF-16/32, nesting past 1,024), which
    ``json`` then reads, or words the error of."""
    text = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _LONG_RUN not in text.translate(_DIGITS):
        try:
            return orjson.loads(raw), text
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw), None


_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(c for c in range(256) if c not in b'"[]{}')


def _check_text_depth(text: bytes, *, what: str, max_depth: int) -> None:
    """``check_depth`` from the UTF-8 text of valid JSON, at C speed. Without its escaped backslashes
    and quotes (backslashes pair left to right, as escapes do), its quotes bound its strings: of the
    text, its quotes and brackets (as one kind), less the brackets between quotes. Two adjacent
    quotes bound nothing: deleting them first leaves only strings holding brackets to split out.
    Then each pass deletes the innermost pairs, one level: the brackets empty in as many passes as
    the value nests deep."""
    if b"\\" in text:  # most bodies escape nothing: two passes over them saved
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = text.translate(_BRACKETS, _NOT_BRACKET)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    for _ in range(max_depth):
        if not skeleton:
            return
        skeleton = skeleton.replace(b"[]", b"")
    if skeleton:
        raise InputBoundError(f"{what} is nested deeper than {max_depth} levels")


def check_depth(value: Any, *, what: str = "the request body", max_depth: int = MAX_JSON_DEPTH,
                max_objects: int | None = None) -> None:
    """InputBoundError when ``value`` (parsed JSON) nests arrays/objects deeper than ``max_depth``,
    or holds more than ``max_objects`` objects. Iterative: the check itself must not recurse."""
    if not isinstance(value, (dict, list)):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    objects = 0
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise InputBoundError(f"{what} is nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            objects += 1
            if max_objects is not None and objects > max_objects:
                raise InputBoundError(f"{what} has more than {max_objects} objects")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "InputBoundError", "check_depth", "load_json"]
