"""Fields extension: include/exclude paths applied to response items (as stac-api-validator checks them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameter

CONFORMANCE = ["https://api.stacspec.org/v1.0.0/item-search#fields",
               "https://api.stacspec.org/v1.0.0/ogcapi-features#fields"]

# The spec's default set, plus what keeps a response item valid STAC.
DEFAULT_INCLUDE = ("id", "type", "geometry", "bbox", "links", "assets", "properties.datetime", "stac_version",
                   "collection")


@dataclass(frozen=True)
class Fields:
    include: tuple[str, ...] | None  # None: no include given (an empty one selects the default set)
    exclude: tuple[str, ...]


def parse_fields_get(value: str) -> Fields:
    include, exclude = [], []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("-"):
            exclude.append(part[1:])
        else:
            include.append(part[1:] if part.startswith("+") else part)
    return _checked(include or None, exclude)


def parse_fields_post(value: Any) -> Fields:
    if not isinstance(value, dict) or set(value) - {"include", "exclude"}:
        raise InvalidParameter('fields must be an object {"include": [...], "exclude": [...]}')
    include = (value.get("include") or []) if "include" in value else None
    exclude = value.get("exclude") or []
    if not isinstance(include, (list, type(None))) or not isinstance(exclude, list):
        raise InvalidParameter("fields include and exclude must be arrays of strings")
    return _checked(include, exclude)


MAX_FIELDS = 256  # paths in include and exclude together: each is applied to every returned item


def _checked(include: list[Any] | None, exclude: list[Any]) -> Fields:
    if len(include or []) + len(exclude) > MAX_FIELDS:
        raise InvalidParameter(f"fields has more than {MAX_FIELDS} paths")
    for path in (include or []) + exclude:
        if not isinstance(path, str) or not path or any(not seg for seg in path.split(".")):
            raise InvalidParameter(f"invalid field path: {path!r}")
    return Fields(None if include is None else tuple(include), tuple(exclude))


def apply_fields(item: dict[str, Any], fields: Fields) -> dict[str, Any]:
    """The semantics stac-api-validator checks: includes select only themselves (plus what says
    what the object is: type, stac_version, id, collection); no include at all keeps the full item
    and an empty one the default set; then excludes drop paths, except a path included too (or
    above an included one)."""
    if fields.include:
        out: dict[str, Any] = {}
        for path in ("type", "stac_version", "id", "collection") + fields.include:
            _copy_path(item, out, path.split("."))
    elif fields.include is None and fields.exclude:
        out = item  # items are parsed per response: trimming in place is safe
    else:
        out = {}
        for path in DEFAULT_INCLUDE:
            _copy_path(item, out, path.split("."))
    for path in fields.exclude:
        if not any(inc == path or inc.startswith(path + ".") for inc in fields.include or ()):
            _drop_path(out, path.split("."))
    return out


def _copy_path(src: dict[str, Any], dst: dict[str, Any], segs: list[str]) -> None:
    head = segs[0]
    if head not in src:
        return
    if len(segs) == 1:
        dst[head] = src[head]  # items are parsed per response: sharing is safe
        return
    if not isinstance(src[head], dict):
        return
    sub = dst.get(head)
    if not isinstance(sub, dict):
        sub = dst[head] = {}
    _copy_path(src[head], sub, segs[1:])


def _drop_path(dst: dict[str, Any], segs: list[str]) -> None:
    node: Any = dst
    for seg in segs[:-1]:
        node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(segs[-1], None)
