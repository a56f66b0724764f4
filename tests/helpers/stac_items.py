"""Catalog test helpers: valid items for the configured collections, pystac validating offline."""
from __future__ import annotations

import posixpath
import random
from contextlib import contextmanager
from typing import Any, Iterator


def make_item(item_id: str, collection: str | None = "dataset", *, lon: float = 10.0, lat: float = 50.0,
              size: float = 0.0, dt: str | None = "2021-06-01T00:00:00Z", **props: Any) -> dict[str, Any]:
    """A valid STAC 1.1 item: a point (size 0) or a square of ``size`` degrees at lon/lat."""
    if size:
        ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
        bbox = [lon, lat, lon + size, lat + size]
    else:
        geometry, bbox = {"type": "Point", "coordinates": [lon, lat]}, [lon, lat, lon, lat]
    item: dict[str, Any] = {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": item_id,
        "geometry": geometry, "bbox": bbox, "properties": {"datetime": dt, **props},
        "assets": {"data": {"href": f"https://example.com/{item_id}.tif", "type": "image/tiff"}},
        "links": [{"rel": "license", "href": "https://example.com/license", "type": "text/html"}]}
    if collection:
        item["collection"] = collection
    return item


def random_items(n: int, collection: str = "dataset", seed: int = 1, *, ranges: bool = True,
                 prefix: str = "it") -> list[dict[str, Any]]:
    """Varied items: points and boxes all over, a year of datetimes, every 7th a time range (if ``ranges``)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        lon, lat = rnd.uniform(-170, 160), rnd.uniform(-80, 70)
        day = rnd.randrange(0, 336)
        dt = f"2022-{1 + day // 28:02d}-{1 + day % 28:02d}T{rnd.randrange(24):02d}:00:00Z"
        props: dict[str, Any] = {"eo:cloud_cover": rnd.randrange(0, 101), "platform": rnd.choice(["s1", "s2", "l8"]),
                                 "title": f"scene {i} over {rnd.choice(['alps', 'delta', 'coast', 'forest'])}"}
        if ranges and i % 7 == 0:
            item = make_item(f"{prefix}-{i:05d}", collection, lon=lon, lat=lat, size=rnd.uniform(0.1, 5), dt=None,
                             start_datetime=dt, end_datetime=dt.replace("2022-", "2023-"), **props)
        else:
            item = make_item(f"{prefix}-{i:05d}", collection, lon=lon, lat=lat, size=rnd.choice([0, 0.5, 2]), dt=dt,
                             **props)
        out.append(item)
    return out


@contextmanager
def offline_validation() -> Iterator[None]:
    """pystac's validate()/validate_all() against the offline schema mirror (no network)."""
    import pystac.validation
    from pystac.validation.stac_validator import STACValidator
    from stac_offline import validate_object

    class OfflineValidator(STACValidator):
        def validate_core(self, stac_dict: dict[str, Any], stac_object_type: Any, stac_version: str,
                          href: str | None = None) -> Any:
            errors = validate_object(stac_dict)  # core schema and every listed extension
            if errors:
                raise pystac.STACValidationError(f"{href}: {'; '.join(errors)}")
            return None

        def validate_extension(self, *args: Any, **kwargs: Any) -> Any:
            return None  # covered by validate_core

    previous = pystac.validation.RegisteredValidator._validator
    pystac.validation.set_validator(OfflineValidator())
    try:
        yield
    finally:
        pystac.validation.RegisteredValidator._validator = previous


def indexed(store: Any) -> set[tuple[str, str]]:
    """(collection, id) of everything the search index finds in ``store``."""
    from chalicelib.stac import catalog, search
    from chalicelib.stac.index import SearchIndex
    page = search.execute(SearchIndex(store).snapshot(), search.parse_post({"limit": search.MAX_LIMIT}),
                          known_collections=catalog.config().collection_ids)
    assert page.next_token is None
    return {(item["collection"], item["id"]) for item in page.items}


def reachable(store: Any, cid: str = "dataset") -> set[str]:
    """Ids of the items reached by walking the static catalog: collection -> linked shards (-> linked
    sub-shards) -> items."""
    from chalicelib.stac import catalog
    coll = store.get_json(catalog.collection_key(cid))
    out: set[str] = set()
    pages = [f"collections/{cid}/{link['href'].removeprefix('./')}" for link in coll["links"] if link["rel"] == "child"]
    while pages:  # shards, and the sub-shards of split ones
        page = pages.pop()
        shard = store.get_json(page)
        pages += [posixpath.normpath(posixpath.join(posixpath.dirname(page), link["href"]))
                  for link in shard["links"] if link["rel"] == "child"]
        out |= {item["href"].removeprefix("../items/").removesuffix(".json")
                for item in shard["links"] if item["rel"] == "item"}
    return out


def unrevised(doc: Any) -> Any:
    """A catalog document without its revision numbers (they grow with every write, rebuilds included)."""
    from chalicelib.stac import catalog
    out = {k: v for k, v in doc.items() if k not in (catalog.REV_FIELD, catalog.SHRUNK_FIELD)}
    if catalog.SHARDS_FIELD in out:
        out[catalog.SHARDS_FIELD] = {hh: {k: v for k, v in e.items() if k != "rev"}
                                     for hh, e in out[catalog.SHARDS_FIELD].items()}
    return out


def ids_in_shard(shard: str, n: int, prefix: str = "in") -> list[str]:
    """``n`` item ids that hash to ``shard``."""
    from chalicelib.stac import catalog
    out: list[str] = []
    i = 0
    while len(out) < n:
        if catalog.shard_of(f"{prefix}-{i}") == shard:
            out.append(f"{prefix}-{i}")
        i += 1
    return out
