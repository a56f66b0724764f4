"""Pages of search results: MLflow's offset page tokens, and pages that fit in a Lambda response.

Tokens are what MLflow's stores emit: base64 of ``{"offset": n}``.

A synchronous Lambda response, API Gateway's proxy envelope included, is limited to 6 MB. In
that envelope the JSON body is itself a JSON string, so each ``"`` and ``\\`` in it is escaped
once more; ``envelope_size`` counts exactly that (bodies are ASCII JSON: see mlflow_common).
Every paged answer (run, experiment, logged-model, registered-model and model-version searches,
metric history) stops adding records once the next one's wire form would pass ``BUDGET`` and
hands out a token for the rest; MLflow's clients already follow tokens until they have
everything, whatever a page's length.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, Generic, Iterable, NamedTuple, Optional, Sequence, TypeVar

from ..bounds import MAX_BODY_BYTES, RESPONSE_BUDGET, InputBoundError, load_json, payload_size
from .errors import invalid

LAMBDA_RESPONSE_LIMIT = MAX_BODY_BYTES
BUDGET = RESPONSE_BUDGET
# Largest record (one run as get-run returns it) a write may build: a record must fit in a page.
RECORD_LIMIT = 4 * 1024 * 1024
MAX_TOKEN_CHARS = 1024  # ours are ~20 characters

Item = TypeVar("Item")


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


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


def envelope_size(doc: Any) -> int:
    """Bytes ``doc`` takes as a response body inside Lambda's proxy envelope."""
    return payload_size(json.dumps(doc, separators=(",", ":")).encode())


def dumps(doc: Any) -> str:
    """A response body's JSON (ASCII, compact: what ``mlflow_common.mlflow_json`` sends)."""
    return json.dumps(doc, separators=(",", ":"))


class Page(NamedTuple, Generic[Item]):
    """One page of records, and the token of the next page (None on the last): MLflow's ``PagedList``."""
    items: list[Item]
    token: Optional[str]

    def to_wire(self, field: str, render: Callable[[Item], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {field: [render(item) for item in self.items]}
        if self.token:
            out["next_page_token"] = self.token
        return out

    def to_wire_text(self, field: str, text: Callable[[Item], str]) -> str:
        """``dumps(to_wire(field, render))`` spliced from each record's serialised wire form (``text``:
        a cache of ``dumps(render(item))``, as the page's measure filled it)."""
        token = f',"next_page_token":{dumps(self.token)}' if self.token else ""
        return f'{{{dumps(field)}:[{",".join(text(item) for item in self.items)}]{token}}}'


def fill(candidates: Iterable[Item | None], wire: Callable[[Item], Any] | None,
         budget: int | None = None, text: Callable[[Item], str] | None = None) -> tuple[list[Item], int]:
    """Take ``candidates`` in order until their wire forms would pass ``budget`` bytes (``wire`` None:
    no byte budget); a None (a record gone since it was listed) is skipped. Returns the records
    taken and how many candidates that consumed. ``text``, if given, serialises a record (a cache of
    ``dumps(wire(item))``). A page holds at least one record, so paging always advances."""
    budget = BUDGET if budget is None else budget
    taken: list[Item] = []
    used = consumed = 0
    for item in candidates:
        if item is not None:
            if wire is not None:
                serialised = text(item) if text is not None else dumps(wire(item))
                size = payload_size(serialised.encode()) + 1  # and its comma
                if taken and used + size > budget:
                    break
                used += size
            taken.append(item)
        consumed += 1
    return taken, consumed


def page(items: Sequence[Any], token: str | None, limit: int, wire: Callable[[Item], Any] | None = None,
         load: Callable[[Sequence[Any]], Sequence[Item | None]] | None = None,
         budget: int | None = None, text: Callable[[Item], str] | None = None) -> Page[Item]:
    """The page of ``items`` the token points at: at most ``limit`` records and, with ``wire``, at
    most ``budget`` bytes of their wire forms. ``load`` turns the page's slice of ``items`` (search
    summaries) into records, None for any gone since; ``text``: see ``fill``."""
    start = page_offset(token)
    window = items[start:start + limit]
    taken, consumed = fill(load(window) if load else window, wire, budget, text)
    end = start + consumed
    return Page(taken, page_token(end) if end < len(items) else None)
