"""The fuzz suites' fixed budget and the input shapes they share (tests/*/test_fuzz_*.py).

Every fuzz test runs ``FUZZ``: a fixed number of examples, derandomized (CI sees the same inputs
every run; ``STACFLOW_FUZZ_RANDOM=1`` draws new ones), and a deadline per input, which is the
"bounded time" assertion. ``STACFLOW_FUZZ_EXAMPLES`` raises the budget for a longer local run.
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("STACFLOW_FUZZ_EXAMPLES", "150"))
DEADLINE_MS = 2000  # the ReDoS this suite guards against took 30 s; shared CI cores need the slack
RANDOM = bool(os.environ.get("STACFLOW_FUZZ_RANDOM"))
FUZZ = settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, derandomize=not RANDOM, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                       HealthCheck.large_base_example])


def budget() -> str:
    return (f"fuzz budget: {EXAMPLES} examples per test, {DEADLINE_MS} ms per input, "
            f"{'random' if RANDOM else 'derandomized'} (STACFLOW_FUZZ_EXAMPLES, STACFLOW_FUZZ_RANDOM)")


# -- text ------------------------------------------------------------------------------------
CONTROL = st.characters(max_codepoint=0x1F) | st.sampled_from(["\x7f", "\x85", "\u2028", "\u2029", "\ufeff", "\u0301",
                                                                 "\u202e", "\U0001f600", "\x00"])


def repeated(unit: st.SearchStrategy[str], most: int = 5000) -> st.SearchStrategy[str]:
    """``unit`` repeated up to ``most`` times: long inputs that random text rarely reaches."""
    return st.builds(lambda s, n: s * n, unit, st.integers(1, most))


def nested(inner: st.SearchStrategy[str], opener: str, closer: str, most: int = 5000) -> st.SearchStrategy[str]:
    return st.builds(lambda n, s: opener * n + s + closer * n, st.integers(0, most), inner)


def nasty_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Any unicode, control characters, long repeats."""
    return st.one_of(st.text(max_size=max_size), st.text(CONTROL, max_size=max_size),
                     repeated(st.text(min_size=1, max_size=4), 3000))


def joined(parts: st.SearchStrategy[str], separators: list[str], max_size: int = 8) -> st.SearchStrategy[str]:
    return st.builds(lambda xs, sep: sep.join(xs), st.lists(parts, max_size=max_size), st.sampled_from(separators))


NUMBER_TEXT = st.one_of(
    st.integers(-10 ** 30, 10 ** 30).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e999", "-1e999", "nan", "inf", "-0", "0x10", "1_000", "9" * 5000, ".5", "5.", "1e-400"]))

# -- JSON ------------------------------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 40, 10 ** 40),
                    st.floats(allow_nan=True, allow_infinity=True), nasty_text(20))


def json_values(leaves: st.SearchStrategy[Any] = SCALARS) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


def deep_json() -> st.SearchStrategy[Any]:
    """Arrays/objects nested up to 3,000 deep (built without recursion: json.dumps would recurse)."""
    def build(n: int, as_object: bool, leaf: Any) -> Any:
        value = leaf
        for _ in range(n):
            value = {"a": value} if as_object else [value]
        return value
    return st.builds(build, st.integers(0, 3000), st.booleans(), SCALARS)


def anything() -> st.SearchStrategy[Any]:
    return st.one_of(json_values(), deep_json())


def dumps(value: Any) -> str:
    """JSON text of any value, however deep (the encoder would recurse)."""
    try:
        return json.dumps(value)
    except (RecursionError, ValueError):
        depth, node = 0, value
        while isinstance(node, (list, dict)) and node:
            node = node[0] if isinstance(node, list) else next(iter(node.values()))
            depth += 1
        return "[" * depth + json.dumps(node if not isinstance(node, (list, dict)) else None) + "]" * depth


def b64(text: str, urlsafe: bool = False) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    return (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
