"""Responses that fit in a Lambda payload: pages end at a byte budget as well as at a count.

A synchronous Lambda response, API Gateway's proxy envelope included, is limited to 6 MB. In
that envelope the JSON body is itself a JSON string, so each ``"`` and ``\\`` in it is escaped
once more; ``envelope_size`` counts exactly that (bodies are ASCII JSON: see mlflow_common).
Paged answers (run, experiment and logged-model searches, metric history) stop adding records once
the next one would pass ``BUDGET`` and hand out a token for the rest; MLflow's clients already
follow tokens until they have everything, whatever a page's length.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence, TypeVar

from .search import page_offset, page_token

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
# The body's share: the rest is left for the status line, headers and the envelope's keys.
BUDGET = 5 * 1024 * 1024
# Largest record (one run as get-run returns it) a write may build: a record must fit in a page.
RECORD_LIMIT = 4 * 1024 * 1024

Item = TypeVar("Item")


def envelope_size(doc: Any) -> int:
    """Bytes ``doc`` takes as a response body inside Lambda's proxy envelope."""
    text = json.dumps(doc, separators=(",", ":"))
    return len(text) + text.count('"') + text.count("\\")


def fill(items: Sequence[Item], start: int, limit: int, render: Callable[[Item], Any],
         budget: int | None = None) -> tuple[list[Any], int]:
    """Render ``items[start:]`` until ``limit`` records or ``budget`` bytes; returns them and the next offset.

    A page holds at least one record, so paging always advances.
    """
    budget = BUDGET if budget is None else budget
    page: list[Any] = []
    used = 0
    end = min(len(items), start + limit)
    index = start
    while index < end:
        doc = render(items[index])
        size = envelope_size(doc) + 1  # and its comma
        if page and used + size > budget:
            break
        page.append(doc)
        used += size
        index += 1
    return page, index


def page(items: Sequence[Item], token: str | None, limit: int, render: Callable[[Item], Any],
         budget: int | None = None) -> tuple[list[Any], str | None]:
    """One page of rendered records from the token's offset, and the next page's token if more remain."""
    rendered, end = fill(items, page_offset(token), limit, render, budget)
    return rendered, page_token(end) if end < len(items) else None
