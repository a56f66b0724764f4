"""MLflow's search grammar on sqlparse: filter strings to clauses, order_by strings to sort keys.

Filters are SQL-like conjunctions (``metrics.acc > 0.5 AND params.model IN ('rf', 'svm')``);
sqlparse tokenizes and groups them exactly as it does for MLflow (mlflow/utils/search_utils.py),
and the rules and error messages here follow MLflow's, per searched entity (a ``Dialect``).
One deliberate difference: set-valued parts of messages (valid keys, comparators) are listed in
MLflow's declaration order, where MLflow prints a Python set (its order varies per process).
"""
from __future__ import annotations

import ast
import shlex
from functools import lru_cache
from itertools import islice
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import sqlparse
from sqlparse.sql import Comparison, Identifier, Parenthesis, Statement, Token
from sqlparse.tokens import Token as T

from ..errors import invalid

METRIC, PARAM, TAG, ATTRIBUTE, DATASET = "metric", "parameter", "tag", "attribute", "dataset"
IS_NULL, IS_NOT_NULL = "IS NULL", "IS NOT NULL"
_ENTITY_TYPES = [METRIC, PARAM, TAG, ATTRIBUTE, DATASET]  # as MLflow lists them in its message
_ENTITY_ALIASES = {METRIC: METRIC, "metrics": METRIC, PARAM: PARAM, "parameters": PARAM, "param": PARAM,
                   "params": PARAM, TAG: TAG, "tags": TAG, ATTRIBUTE: ATTRIBUTE, "attr": ATTRIBUTE,
                   "attributes": ATTRIBUTE, "run": ATTRIBUTE, DATASET: DATASET, "datasets": DATASET}
_REGISTRY_ENTITY_TYPES = ("attribute", "tag", "tags")
DATASET_KEYS = ("name", "digest", "context")
_STRING_TOKENS = (T.Literal.String.Single,)
_NUMBER_TOKENS = (T.Literal.Number.Integer, T.Literal.Number.Float)


def set_text(items: Sequence[str]) -> str:
    """A set of names as Python prints one (``{'a', 'b'}``), in a fixed order."""
    return "{" + ", ".join(repr(i) for i in items) + "}"


@dataclass(frozen=True)
class Clause:
    type: str  # METRIC, PARAM, TAG, ATTRIBUTE or DATASET
    key: str
    comparator: str  # upper case: "=", "LIKE", "NOT IN", "IS NULL", ...
    value: Any  # str, int, float, tuple of str, or None (IS [NOT] NULL)


@dataclass(frozen=True)
class Dialect:
    """How one MLflow search (runs, experiments, registered models...) reads identifiers and values.

    ``identifiers``: "runs" (metric/param/tag/attribute/dataset and their aliases),
    "experiments" (attribute/tag/tags; keys unquoted before checking) or "registry" (the same
    prefixes; keys checked as written, then unquoted). ``values``: "runs" (typed by entity),
    "registry" (quoted strings or lists) or "versions" (those and numbers for numeric keys).
    ``nulls``: which entity types take IS [NOT] NULL; "registry" dialects take none."""
    identifiers: Literal["runs", "experiments", "registry"]
    values: Literal["runs", "registry", "versions"]
    search_keys: tuple[str, ...]
    order_keys: tuple[str, ...]
    numeric_keys: tuple[str, ...]
    list_keys: tuple[str, ...] | None  # attributes compared with (lists); None: any
    nulls: tuple[str, ...]
    quote_invalid_clauses: bool = False


# -- filters -------------------------------------------------------------------------------
# sqlparse's cost grows with its input (about 1 ms per KB); it stops itself at 100 nesting levels
# and 10,000 grouped tokens, with an exception reported as a bad filter.
MAX_FILTER_LENGTH = 64 * 1024  # an IN list of ~1,800 run ids fits
MAX_PARENTHESES = 64
MAX_ORDER_BY_LENGTH = 1024


def _bounded(text: Any, what: str, limit: int) -> str:
    """``text`` if it is a string of at most ``limit`` characters (a bad type or size is bad input)."""
    if not isinstance(text, str):
        raise invalid(f"Invalid {what}: expected a string, got {type(text).__name__}")
    if len(text) > limit:
        raise invalid(f"Invalid {what}: {len(text)} characters, over the limit of {limit}")
    return text


_CACHED_TEXT = 4096  # filters and order_by clauses up to this length are parsed once per process


def parse_filter(dialect: Dialect, filter_string: str | None) -> list[Clause]:
    """The filter's clauses. Parsing is pure, and sqlparse costs ~1 ms per filter: a client repeating
    a search (the UI polls) pays it once. Bad filters are not cached: each raises anew."""
    if isinstance(filter_string, str) and len(filter_string) <= _CACHED_TEXT:
        return list(_parse_filter_cached(dialect, filter_string))
    return _parse_filter(dialect, filter_string)


@lru_cache(maxsize=256)
def _parse_filter_cached(dialect: Dialect, filter_string: str) -> tuple[Clause, ...]:
    return tuple(_parse_filter(dialect, filter_string))


def _parse_filter(dialect: Dialect, filter_string: str | None) -> list[Clause]:
    if not filter_string:
        return []
    _bounded(filter_string, "filter", MAX_FILTER_LENGTH)
    if filter_string.count("(") > MAX_PARENTHESES:
        # MLflow's grammar groups only IN lists; deep nesting would cost sqlparse ~1 s to refuse.
        raise invalid(f"Invalid filter: more than {MAX_PARENTHESES} parentheses")
    try:
        # Two statements are enough to refuse "a; b; ...": parsing the rest would cost ~40 us each.
        statements = list(islice(sqlparse.parsestream(filter_string), 2))
    except Exception:
        raise invalid(f"Error on parsing filter '{filter_string}'") from None
    if not statements or not isinstance(statements[0], Statement):
        raise invalid(f"Invalid filter '{filter_string}'. Could not be parsed.")
    if len(statements) > 1:
        raise invalid(f"Search filter contained multiple expression {filter_string!r}. "
                      "Provide AND-ed expression list.")
    parts = _comparisons(statements[0].tokens)
    wrong = [p for p in parts if isinstance(p, Token)
             and not p.is_whitespace and not p.match(T.Keyword, ["AND"])]
    if wrong:
        shown = [f"'{t}'" if dialect.quote_invalid_clauses else str(t) for t in wrong]
        raise invalid(f"Invalid clause(s) in filter string: {', '.join(shown)}")
    return [_clause(dialect, p) for p in parts if isinstance(p, list)]


def _comparisons(tokens: Sequence[Token]) -> list[Token | list[Token]]:
    """Top-level tokens, each comparison as the list of its non-blank tokens.

    sqlparse groups ``a = 1`` and ``a LIKE 'x'`` itself but leaves ``a IN (...)``, ``a NOT IN (...)``
    and ``a IS [NOT] NULL`` as loose tokens: those are joined here, matched as MLflow matches them."""
    loose = [t for t in tokens if not t.is_whitespace]
    out: list[Token | list[Token]] = []
    i = 0
    while i < len(loose):
        first = loose[i]
        if len(loose) - i < 3:
            out.extend(loose[i:])
            break
        if not isinstance(first, Identifier):
            out.append(first)
            i += 1
            continue
        second, third = loose[i + 1], loose[i + 2]
        if second.match(T.Keyword, ["IN"]) and isinstance(third, Parenthesis):
            out.append([first, Token(T.Keyword, "IN"), third])
            i += 3
        elif second.match(T.Keyword, ["IS"]) and third.match(T.Keyword, ["NULL"]):
            out.append([first, Token(T.Keyword, IS_NULL)])
            i += 3
        elif second.match(T.Keyword, ["IS"]) and third.ttype == T.Keyword and third.value.upper() == "NOT NULL":
            out.append([first, Token(T.Keyword, IS_NOT_NULL)])
            i += 3
        elif len(loose) - i < 4:
            out.extend(loose[i:])
            break
        elif (second.match(T.Keyword, ["NOT"]) and third.match(T.Keyword, ["IN"])
              and isinstance(loose[i + 3], Parenthesis)):
            out.append([first, Token(T.Keyword, "NOT IN"), loose[i + 3]])
            i += 4
        else:  # as MLflow: these four are not reconsidered as the start of a comparison
            out.extend(loose[i:i + 4])
            i += 4
    return [[t for t in p.tokens if not t.is_whitespace] if isinstance(p, Comparison) else p for p in out]


def _clause(dialect: Dialect, tokens: list[Token]) -> Clause:
    prefix = "Invalid comparison clause"
    if len(tokens) == 2 and tokens[1].value.upper() in (IS_NULL, IS_NOT_NULL) and dialect.nulls:
        if not isinstance(tokens[0], Identifier):
            raise invalid(f"{prefix}. Expected 'Identifier' found '{tokens[0]}'")
        kind, key = identifier(dialect.identifiers, tokens[0].value, dialect.search_keys)
        if kind not in dialect.nulls:
            if dialect.identifiers == "experiments":
                raise invalid(f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'")
            raise invalid(f"IS NULL / IS NOT NULL is only supported for tags and params, not for '{kind}' '{key}'")
        return Clause(kind, key, tokens[1].value.upper(), None)
    if len(tokens) != 3:
        raise invalid(f"{prefix}. Expected 3 tokens found {len(tokens)}")
    if not isinstance(tokens[0], Identifier):
        raise invalid(f"{prefix}. Expected 'Identifier' found '{tokens[0]}'")
    kind, key = identifier(dialect.identifiers, tokens[0].value, dialect.search_keys)
    return Clause(kind, key, tokens[1].value.upper(), _value(dialect, kind, key, tokens[2]))


def identifier(style: str, text: str, valid_keys: Sequence[str]) -> tuple[str, str]:
    """``metrics.acc`` -> (METRIC, "acc"); a bare key is an attribute. ``style``: see ``Dialect``."""
    kind, dot, key = text.partition(".")
    if not dot:
        kind, key = ATTRIBUTE, text
    elif style != "runs" and kind not in _REGISTRY_ENTITY_TYPES:
        raise invalid(f"Invalid entity type '{kind}'. Valid entity types are {_REGISTRY_ENTITY_TYPES}")
    else:
        kind = _unquote(kind, "`")
        if kind not in _ENTITY_ALIASES:
            raise invalid(f"Invalid entity type '{kind}'. Valid values are {_ENTITY_TYPES}")
        kind = _ENTITY_ALIASES[kind]
    if style != "registry":
        key = _unquote(_strip_quotes(key), "`")
    if kind == ATTRIBUTE and key not in valid_keys:
        raise invalid(f"Invalid attribute key '{key}' specified. Valid keys are '{set_text(valid_keys)}'")
    if kind == DATASET and key not in DATASET_KEYS:
        raise invalid(f"Invalid dataset key '{key}' specified. Valid keys are '{set_text(DATASET_KEYS)}'")
    if style == "registry":
        key = _unquote(_strip_quotes(key), "`")
    return kind, key


def _is_quoted(text: str, quote: str) -> bool:
    return len(text) >= 2 and text.startswith(quote) and text.endswith(quote)


def _unquote(text: str, quote: str) -> str:
    return text[1:-1] if _is_quoted(text, quote) else text


def _strip_quotes(text: str, required: bool = False) -> str:
    if _is_quoted(text, "'") or _is_quoted(text, '"'):
        return text[1:-1]
    if required:
        raise invalid("Parameter value is either not quoted or unidentified quote types used for string value "
                      f"{text}. Use either single or double quotes.")
    return text


def _quoted(kind: str, token: Token, is_string: bool) -> str:
    if is_string:
        return _strip_quotes(token.value, required=True)
    raise invalid(f"Expected a quoted string value for {kind} (e.g. 'my-value'). Got value {token.value}")


def _value(dialect: Dialect, kind: str, key: str, token: Token) -> Any:
    is_string = token.ttype in _STRING_TOKENS or isinstance(token, Identifier)
    if dialect.values != "runs":  # registered models and model versions: attributes and tags only
        if kind == TAG:
            return _quoted(kind, token, is_string)
        if is_string:
            return _strip_quotes(token.value, required=True)
        if isinstance(token, Parenthesis):
            return _list(dialect, key, token)
        if dialect.values == "versions" and token.ttype in _NUMBER_TOKENS:
            if key not in dialect.numeric_keys:
                raise invalid(f"Only the '{set_text(dialect.numeric_keys)}' attributes support comparison with "
                              "numeric values.")
            return _number(token)
        raise invalid("Expected a quoted string value or a list of quoted string values for attributes. "
                      f"Got value {token.value}")
    if kind == METRIC:
        if token.ttype not in _NUMBER_TOKENS:
            raise invalid(f"Expected numeric value type for metric. Found {token.value}")
        return token.value  # the evaluator reads it as a float
    if kind in (PARAM, TAG):
        return _quoted(kind, token, is_string)
    if kind == ATTRIBUTE:
        if key in dialect.numeric_keys:
            if token.ttype not in _NUMBER_TOKENS:
                raise invalid(f"Expected numeric value type for numeric attribute: {key}. Found {token.value}")
            return _number(token)
        if is_string:
            return _strip_quotes(token.value, required=True)
        if isinstance(token, Parenthesis):
            return _list(dialect, key, token)
        raise invalid(f"Expected a quoted string value for attributes. Got value {token.value}")
    # DATASET: the key is one of DATASET_KEYS (checked with the identifier)
    if is_string:
        return _strip_quotes(token.value, required=True)
    if isinstance(token, Parenthesis):
        return _literal_list(token)
    raise invalid(f"Expected a quoted string value for dataset attributes. Got value {token.value}")


def _number(token: Token) -> int | float:
    return int(token.value) if token.ttype is T.Literal.Number.Integer else float(token.value)


def _list(dialect: Dialect, key: str, token: Token) -> tuple[str, ...]:
    if dialect.list_keys is not None and key not in dialect.list_keys:
        raise invalid(f"Only {sorted(dialect.list_keys)} attributes support comparison with a list of quoted "
                      "string values.")
    return _literal_list(token)


def _literal_list(token: Token) -> tuple[str, ...]:
    """``('a', 'b')`` as a tuple of strings (Python literal syntax, as MLflow reads it)."""
    try:
        parsed = ast.literal_eval(token.value)
    except (SyntaxError, ValueError):  # ValueError: not a literal, e.g. ``(a, b)``
        raise invalid("While parsing a list in the query, expected a non-empty list of string values, but got "
                      "ill-formed list.") from None
    items = parsed if isinstance(parsed, tuple) else (parsed,)
    if not items:
        raise invalid("While parsing a list in the query, expected a non-empty list of string values, but got "
                      "empty list")
    if not all(isinstance(x, str) for x in items):
        raise invalid("While parsing a list in the query, expected string value, punctuation, or whitespace, but "
                      f"got different type in list: {items}")
    return items


# -- order_by ------------------------------------------------------------------------------
def parse_order_by(dialect: Dialect, order_by: str) -> tuple[str, str, bool]:
    """``"metrics.acc DESC"`` -> (METRIC, "acc", False); ascending unless told."""
    if isinstance(order_by, str) and len(order_by) <= _CACHED_TEXT:
        return _parse_order_by_cached(dialect, order_by)
    return _parse_order_by(dialect, order_by)


@lru_cache(maxsize=256)
def _parse_order_by_cached(dialect: Dialect, order_by: str) -> tuple[str, str, bool]:
    return _parse_order_by(dialect, order_by)


def _parse_order_by(dialect: Dialect, order_by: str) -> tuple[str, str, bool]:
    text = _order_by_text(_bounded(order_by, "order_by clause", MAX_ORDER_BY_LENGTH))
    try:
        words = shlex.split(text.replace("`", '"'))
    except ValueError:  # unbalanced quotes
        raise invalid(f"Invalid order_by clause '{order_by}'. Could not be parsed.") from None
    ascending = True
    if len(words) > 2:
        raise invalid(f"Invalid order_by clause '{order_by}'. Could not be parsed.")
    if len(words) == 2:
        if words[1].lower() not in ("asc", "desc"):
            raise invalid(f"Invalid ordering key in order_by clause '{order_by}'.")
        ascending = words[1].lower() == "asc"
        text = words[0]
    # Every dialect but the runs' reads order_by keys as the experiments' does (MLflow reuses its parser).
    style = "runs" if dialect.identifiers == "runs" else "experiments"
    kind, key = identifier(style, text.strip(), dialect.order_keys)
    return kind, key, ascending


def _order_by_text(order_by: str) -> str:
    try:
        statements = sqlparse.parse(order_by)
    except Exception:
        raise invalid(f"Error on parsing order_by clause '{order_by}'") from None
    tokens = statements[0].tokens if len(statements) == 1 and isinstance(statements[0], Statement) else []
    if len(tokens) == 1 and isinstance(tokens[0], Identifier):
        return str(tokens[0].value)
    if tokens and tokens[0].match(T.Name.Builtin, ["timestamp"]):  # sqlparse's builtin, not an identifier
        if len(tokens) == 1:
            return "timestamp"
        if all(t.is_whitespace for t in tokens[1:-1]) and tokens[-1].ttype == T.Keyword.Order:
            return f"timestamp {tokens[-1].value}"
    raise invalid(f"Invalid order_by clause '{order_by}'. Could not be parsed.")
