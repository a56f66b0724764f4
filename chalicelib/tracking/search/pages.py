"""Offset page tokens as MLflow's stores emit them: base64 of ``{"offset": n}``."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Sequence, TypeVar

from ...bounds import InputBoundError, load_json
from ..errors import invalid

Item = TypeVar("Item")


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


MAX_TOKEN_CHARS = 1024  # ours are ~20 characters


def page_offset(token: str | None) -> int:
    """The offset a token points at (0 without one); MLflow's messages for bad tokens.

    Anything but base64 of a small JSON object with a positive integer offset (or its decimal
    text) is INVALID_PARAMETER_VALUE, whatever its type, size or nesting."""
    if not token:
        return 0
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise invalid("Invalid page token, could not base64-decode")
    try:
        decoded = base64.b64decode(token)
    except (binascii.Error, TypeError, ValueError):  # ValueError: not ASCII
        raise invalid("Invalid page token, could not base64-decode") from None
    try:
        parsed = load_json(decoded, what="page token", max_depth=2)
    except InputBoundError:
        raise invalid(f"Invalid page token, decoded value={decoded!r}") from None
    offset = parsed.get("offset") if isinstance(parsed, dict) else None
    if not offset:
        raise invalid(f"Invalid page token, parsed value={parsed}")
    if isinstance(offset, bool) or not isinstance(offset, (int, float, str)):
        raise invalid(f"Invalid page token, not stringable {offset}")
    try:
        number = int(offset)
    except (ValueError, OverflowError):  # OverflowError: an infinite float
        raise invalid(f"Invalid page token, not stringable {offset}") from None
    if number < 0:  # MLflow would slice from the end
        raise invalid(f"Invalid page token, parsed value={parsed}")
    return number


def paginate(items: Sequence[Item], token: str | None, limit: int) -> tuple[Sequence[Item], str | None]:
    """One page from the token's offset, and the next page's token if more remain."""
    start = page_offset(token)
    end = start + limit
    return items[start:end], page_token(end) if end < len(items) else None
