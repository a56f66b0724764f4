"""The STAC Versioning Indicators extension (v1.2.0): fields and relation types.

Same names as ``pystac.extensions.version``; written here on item dicts because the items are
built as JSON and pystac's link helpers want resolved ``Item`` objects for the targets.
"""
from __future__ import annotations

from typing import Any

SCHEMA_URI = "https://stac-extensions.github.io/version/v1.2.0/schema.json"

VERSION = "version"
DEPRECATED = "deprecated"
EXPERIMENTAL = "experimental"

LATEST = "latest-version"
PREDECESSOR = "predecessor-version"
SUCCESSOR = "successor-version"
RELATIONS = (LATEST, PREDECESSOR, SUCCESSOR)


def apply(item: dict[str, Any], version: str, *, deprecated: bool, latest: str | None = None,
          predecessor: str | None = None, successor: str | None = None,
          media_type: str = "application/geo+json") -> None:
    """Set the fields and (re)place the version links (hrefs given; None drops the link)."""
    item["properties"][VERSION] = version
    item["properties"][DEPRECATED] = deprecated
    exts = item.setdefault("stac_extensions", [])
    if SCHEMA_URI not in exts:
        exts.append(SCHEMA_URI)
    links = [link for link in item.setdefault("links", []) if link.get("rel") not in RELATIONS]
    for rel, href in ((LATEST, latest), (PREDECESSOR, predecessor), (SUCCESSOR, successor)):
        if href:
            links.append({"rel": rel, "href": href, "type": media_type})
    item["links"] = links
