"""SQL ``LIKE`` matching without backtracking: one matcher for CQL2 ``LIKE`` and MLflow ``LIKE``/``ILIKE``.

A regular expression with ``.*`` for every ``%`` backtracks: ``'%a%a%a%a%a%a%a%b'`` against 60
``a`` tries ~60^7 splits. Here the pattern is cut at its ``%`` into fixed-length segments (literal
characters and ``_``); the first is anchored at the start, the last at the end, and the ones between
are found left to right, each at its leftmost place. Leftmost is always right: a later place only
leaves less text for the segments after it. Each segment is a regular expression with no
quantifier: finding it costs at most len(value) x len(segment) steps in C (a literal segment is
found in linear time), whatever the pattern.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class _Segment:
    regex: re.Pattern[str]
    length: int


@dataclass(frozen=True)
class LikePattern:
    """A compiled pattern; ``segments`` lie between ``%``; ``anchored`` when the pattern has no ``%``."""

    segments: tuple[_Segment, ...]
    anchored: bool
    fold: bool

    def matches(self, value: str) -> bool:
        if self.fold:
            value = value.lower()
        segs = self.segments
        if self.anchored:
            return len(value) == segs[0].length and segs[0].regex.match(value) is not None
        head, *middle, tail = segs
        if head.length + tail.length > len(value):
            return False
        if head.length and head.regex.match(value) is None:
            return False
        end = len(value) - tail.length
        if tail.length and tail.regex.match(value, end) is None:
            return False
        pos = head.length
        for seg in middle:
            if not seg.length:
                continue
            found = seg.regex.search(value, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True


def _segment(parts: list[str]) -> _Segment:
    """``parts``: one regular expression atom per character (escaped literal, or ``.`` for ``_``)."""
    return _Segment(re.compile("".join(parts), re.DOTALL), len(parts))


def compile_like(pattern: str, *, escape: str | None = None, ignore_case: bool = False) -> LikePattern:
    """``%``: any run of characters (newlines too); ``_``: one character; ``escape`` (if given)
    makes the next character literal. ``ignore_case`` folds pattern and value with ``str.lower``."""
    if ignore_case:
        pattern = pattern.lower()
    segments: list[_Segment] = []
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            segments.append(_segment(parts))
            parts = []
        else:
            parts.append("." if c == "_" else re.escape(c))
        i += 1
    segments.append(_segment(parts))
    return LikePattern(tuple(segments), anchored=len(segments) == 1, fold=ignore_case)


_compile_cached = lru_cache(maxsize=64)(compile_like)


def like(value: str, pattern: str, *, escape: str | None = None, ignore_case: bool = False) -> bool:
    """``compile_like(pattern).matches(value)``, compiled once per pattern (MLflow filters test one
    pattern against every record)."""
    return _compile_cached(pattern, escape=escape, ignore_case=ignore_case).matches(value)


__all__ = ["LikePattern", "compile_like", "like"]
