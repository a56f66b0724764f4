"""Queryables: a JSON Schema of the properties a filter can name, inferred from the indexed items."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..auth.access import EVERYTHING, ReadScope
from .index import Snapshot

SCHEMA = "https://json-schema.org/draft/2019-09/schema"

_CORE: dict[str, dict[str, Any]] = {
    "id": {"title": "Item ID", "type": "string"},
    "collection": {"title": "Collection ID", "type": "string"},
    "geometry": {"title": "Item geometry", "$ref": "https://geojson.org/schema/Geometry.json"},
    "datetime": {"title": "Acquisition time (the start for an interval item)", "type": "string",
                 "format": "date-time"},
}
_KIND_SCHEMA = {"num": {"type": "number"}, "bool": {"type": "boolean"}, "str": {"type": "string"},
                "time": {"type": "string", "format": "date-time"}}


def queryables(snapshot: Snapshot, collection: str | None, scope: ReadScope = EVERYTHING) -> dict[str, Any]:
    """JSON Schema (draft 2019-09) without "$id": the caller sets it to the request URL. Only the
    items ``scope`` may read contribute: a property name can say something of its item."""
    props: dict[str, dict[str, Any]] = dict(_CORE)
    found: dict[str, set[str]] = {}
    for table, alive in snapshot.parts:
        rows = alive if collection is None else alive & table.collection_mask([collection])
        readable = table.readable(scope)
        if readable is not None:
            rows = rows & readable
        if not rows.any():
            continue
        for name in table.props:
            if name in props or not (table.present(name) & rows).any():
                continue
            kind = table.kind_of(name)
            if kind is None:
                column = table.values(name)
                values = [column[r] for r in np.flatnonzero(rows)]
                kind = "array" if any(isinstance(v, list) for v in values) else \
                    "object" if any(isinstance(v, dict) for v in values) else "any"
            found.setdefault(name, set()).add(kind)
    for name in sorted(found):
        kinds = found[name]
        kind = kinds.pop() if len(kinds) == 1 else "any"
        schema = dict(_KIND_SCHEMA.get(kind, {"type": kind} if kind in ("array", "object") else {}))
        schema["title"] = name
        props[name] = schema
    title = f"Queryables of {collection}" if collection else "Queryables"
    return {"$schema": SCHEMA, "type": "object", "title": title, "properties": props,
            "additionalProperties": True}
