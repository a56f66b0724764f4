"""SQL LIKE (chalicelib/like.py): the regular-expression reading of a pattern, without its backtracking."""
from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.like import compile_like


def _regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """What the pattern means, as the backtracking translation read it: % -> .*, _ -> ."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@settings(max_examples=200, derandomize=True, database=None)
@given(pattern=st.text(alphabet="ab%_\\", max_size=10), value=st.text(alphabet="abAB\n%_\\", max_size=12),
       escape=st.sampled_from([None, "\\"]), ignore_case=st.booleans())
def test_same_answers_as_the_regular_expression(pattern: str, value: str, escape: str | None,
                                                ignore_case: bool) -> None:
    want = _regex(pattern.lower() if ignore_case else pattern, escape).fullmatch(
        value.lower() if ignore_case else value) is not None
    assert compile_like(pattern, escape=escape, ignore_case=ignore_case).matches(value) == want


@pytest.mark.parametrize("pattern,value,want", [
    ("abc", "abc", True), ("abc", "abcd", False), ("a%", "abc", True), ("%c", "abc", True), ("%b%", "abc", True),
    ("a_c", "abc", True), ("a_c", "ac", False), ("%", "", True), ("_", "", False), ("a%b%c", "aXbYc", True),
    ("a%b%c", "acb", False), ("%ab%ba%", "aba", False), ("%ab%ba%", "abba", True), ("10\\%", "10%", True),
    ("10\\%", "100", False), ("a\\_b", "a_b", True), ("a\\_b", "axb", False), ("%.*%", "x.*y", True),
    ("line%", "line1\nline2", True),
])
def test_examples(pattern: str, value: str, want: bool) -> None:
    assert compile_like(pattern, escape="\\").matches(value) is want


@pytest.mark.parametrize("pattern,value", [
    ("%a%a%a%a%a%a%a%b", "a" * 60),  # issue 7: ~30 s as a regular expression
    ("%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b", "a" * 5000),
    ("%_%_%_%_%_%_%_%_%_%_%b", "a" * 5000),
    ("%a_a_a_a_a_a_a_a_a_b%", "a" * 20000),
    ("a%" * 200 + "b", "a" * 20000),
], ids=["issue 7", "many segments", "wildcards", "wildcards in a segment", "200 segments"])
def test_adversarial_patterns_are_fast(pattern: str, value: str) -> None:
    start = time.perf_counter()
    assert not compile_like(pattern).matches(value)
    assert compile_like(pattern, ignore_case=True).matches(value.upper()) is False
    assert time.perf_counter() - start < 0.5
