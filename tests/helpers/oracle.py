"""Brute-force answers over plain item dicts, written independently of the index, to compare with."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import shapely
from shapely.geometry import shape

Item = dict[str, Any]


def maybe_ts(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def ts(text: str) -> float:
    stamp = maybe_ts(text)
    assert stamp is not None
    return stamp


def interval(item: Item) -> tuple[float, float] | None:
    p = item["properties"]
    dt, start, end = maybe_ts(p.get("datetime")), maybe_ts(p.get("start_datetime")), maybe_ts(p.get("end_datetime"))
    lo = start if start is not None else dt
    hi = end if end is not None else dt
    if lo is None or hi is None:
        return None
    return (lo, hi)


def start(item: Item) -> float:
    iv = interval(item)
    assert iv is not None
    return iv[0]


def end(item: Item) -> float:
    iv = interval(item)
    assert iv is not None
    return iv[1]


def sort_instant(item: Item) -> float | None:
    dt = maybe_ts(item["properties"].get("datetime"))
    return dt if dt is not None else start(item)


def box(minx: float, miny: float, maxx: float, maxy: float) -> Any:
    if minx > maxx:
        return shapely.union(shapely.box(minx, miny, 180, maxy), shapely.box(-180, miny, maxx, maxy))
    return shapely.box(minx, miny, maxx, maxy)


def in_bbox(item: Item, b: list[float]) -> bool:
    return item.get("geometry") is not None and shape(item["geometry"]).intersects(box(*b))


def in_datetime(item: Item, lo: float, hi: float) -> bool:
    iv = interval(item)
    return iv is not None and iv[0] <= hi and iv[1] >= lo


def text_words(item: Item) -> list[str]:
    p = item["properties"]
    parts = [p.get("title") or "", p.get("description") or "", *(p.get("keywords") or [])]
    return re.findall(r"\w+", " ".join(parts).lower())


def has_word(item: Item, word: str) -> bool:
    return word.lower() in text_words(item)


def order(items: Iterable[Item], keys: list[tuple[Callable[[Item], Any], bool]]) -> list[Item]:
    """Sort by (key, desc) pairs with nulls last ascending (first descending), ties on (collection, id)."""
    out = sorted(items, key=lambda it: (it["collection"], it["id"]))
    for key, desc in reversed(keys):
        present = [it for it in out if key(it) is not None]
        missing = [it for it in out if key(it) is None]
        present.sort(key=key, reverse=desc)
        out = (missing + present) if desc else (present + missing)
    return out


def prop(name: str) -> Callable[[Item], Any]:
    return lambda it: it["properties"].get(name)


def cloud_lt(limit: float) -> Callable[[Item], bool]:
    return lambda it: it["properties"].get("eo:cloud_cover") is not None and it["properties"]["eo:cloud_cover"] < limit
