"""RFC 3339 instants as epoch seconds: the one time representation the search index compares."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_instant(text: Any) -> float:
    """Epoch seconds of an RFC 3339 timestamp (or a plain date, taken as midnight UTC).

    Raises ValueError for anything else. A missing offset is read as UTC.
    """
    if not isinstance(text, str) or len(text) < 10:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    s = _FRACTION.sub(r"\1", text.strip().upper())  # Python keeps microseconds only
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def try_instant(value: Any) -> float | None:
    try:
        return parse_instant(value)
    except (ValueError, TypeError):
        return None

