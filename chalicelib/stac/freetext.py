"""Free-text search (``q``, STAC API free-text extension v1.0.0-rc.1) over title, description, keywords.

Terms separated by spaces or commas are alternatives (OR); ``"quoted phrases"`` match words in
sequence; ``AND``/``OR`` and parentheses combine; ``+term`` is required and ``-term`` excluded.
Matching is per word and case-insensitive.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

import numpy as np

from .errors import InvalidParameter
from .table import Table, tokens

CONFORMANCE = ["https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
               "https://api.stacspec.org/v1.0.0-rc.1/item-search#advanced-free-text"]

_LEXEME = re.compile(r'\s*(?:(")([^"]*)"|(\()|(\))|(,)|([+-]?)([^\s,()"]+))')


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """``any`` OR-ed, ``required`` AND-ed, ``excluded`` subtracted."""

    any: tuple[Node, ...]
    required: tuple[Node, ...] = ()
    excluded: tuple[Node, ...] = ()


@dataclass(frozen=True)
class All:
    parts: tuple[Node, ...]


Node = Union[Phrase, Group, All]


# The lexer is linear and the parser recurses once per parenthesis: these bound a search box's
# text, and so the number of terms each search evaluates over the table.
MAX_Q_CHARS = 4096
MAX_Q_DEPTH = 32  # nested parentheses


def parse_q(text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameter("q must be a non-empty string")
    if len(text) > MAX_Q_CHARS:
        raise InvalidParameter(f"q is {len(text)} characters long, over the limit of {MAX_Q_CHARS}")
    lexemes: list[tuple[str, str]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _LEXEME.match(text, pos, end)
        if not m:
            raise InvalidParameter(f"q: unbalanced quote at position {pos}")
        pos = m.end()
        if m.group(1):
            lexemes.append(("phrase", m.group(2)))
        elif m.group(3):
            lexemes.append(("(", "("))
        elif m.group(4):
            lexemes.append((")", ")"))
        elif m.group(5):
            lexemes.append((",", ","))
        elif m.group(7) in ("AND", "OR") and not m.group(6):
            lexemes.append((m.group(7), m.group(7)))
        else:
            lexemes.append((m.group(6) or "term", m.group(7)))
    parser = _Parser(lexemes)
    node = parser.expr(0)
    if parser.pos != len(lexemes):
        raise InvalidParameter("q: unbalanced parenthesis")
    return node


class _Parser:
    def __init__(self, lexemes: list[tuple[str, str]]) -> None:
        self.lex, self.pos = lexemes, 0

    def peek(self) -> str | None:
        return self.lex[self.pos][0] if self.pos < len(self.lex) else None

    def expr(self, depth: int) -> Node:
        if depth > MAX_Q_DEPTH:
            raise InvalidParameter(f"q: parentheses nested more than {MAX_Q_DEPTH} deep")
        optional: list[Node] = []
        required: list[Node] = []
        excluded: list[Node] = []
        while self.peek() not in (None, ")"):
            if self.peek() in (",", "OR"):
                self.pos += 1
                continue
            mark = self.peek() if self.peek() in ("+", "-") else None
            node = self.conjunction(depth)
            {"+": required, "-": excluded, None: optional}[mark].append(node)
        if not (optional or required):
            raise InvalidParameter("q: expected a search term")
        return Group(tuple(optional), tuple(required), tuple(excluded))

    def conjunction(self, depth: int) -> Node:
        parts = [self.unary(depth)]
        while self.peek() == "AND":
            self.pos += 1
            parts.append(self.unary(depth))
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def unary(self, depth: int) -> Node:
        kind = self.peek()
        if kind is None or kind in (")", ",", "AND", "OR"):
            raise InvalidParameter("q: expected a search term")
        _, value = self.lex[self.pos]
        self.pos += 1
        if kind == "(":
            node = self.expr(depth + 1)
            if self.peek() != ")":
                raise InvalidParameter("q: unbalanced parenthesis")
            self.pos += 1
            return node
        words = tuple(tokens(value))
        if not words:
            raise InvalidParameter(f"q: {value!r} has no searchable word")
        return Phrase(words)


def match(table: Table, node: Node) -> np.ndarray:
    if isinstance(node, Phrase):
        return _phrase(table, node.words)
    if isinstance(node, All):
        out = np.ones(table.n, dtype=bool)
        for part in node.parts:
            out &= match(table, part)
        return out
    out = np.zeros(table.n, dtype=bool)
    for part in node.any:
        out |= match(table, part)
    if not node.any:
        out[:] = True
    for part in node.required:
        out &= match(table, part)
    for part in node.excluded:
        out &= ~match(table, part)
    return out


def _phrase(table: Table, words: tuple[str, ...]) -> np.ndarray:
    postings = table.postings()
    out = np.zeros(table.n, dtype=bool)
    rows = postings.get(words[0])
    if rows is None:
        return out
    for word in words[1:]:
        other = postings.get(word)
        if other is None:
            return out
        rows = np.intersect1d(rows, other, assume_unique=True)
    if len(words) > 1:
        needle = " " + " ".join(words) + " "
        rows = np.array([r for r in rows.tolist() if needle in table.text(r)], dtype=np.intp)
    out[rows] = True
    return out
