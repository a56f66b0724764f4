"""Synthetic EO items for index tests and the benchmark: varied footprints, times and properties."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

WORDS = ["ocean", "coast", "forest", "urban", "flood", "crop", "snow", "desert", "river", "glacier",
         "wildfire", "wetland", "harbour", "delta", "volcano", "mangrove"]
PLATFORMS = ["sentinel-2a", "sentinel-2b", "landsat-8", "landsat-9"]
COLLECTIONS = ["s2-l2a", "landsat-c2", "dem"]
EPOCH = datetime(2018, 1, 1, tzinfo=timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def make_item(i: int, rng: random.Random, *, collection: str | None = None, prefix: str = "item") -> dict[str, Any]:
    coll = collection or COLLECTIONS[i % len(COLLECTIONS)]
    size = rng.choice([0.05, 0.2, 1.0, 5.0]) if rng.random() > 0.02 else 30.0
    x = rng.uniform(-180, 180 - size)
    y = rng.uniform(-85, 85 - size)
    if rng.random() < 0.01:  # crosses the antimeridian
        x0, x1 = 179.0, -179.0
        bbox = [x0, y, x1, y + size]
        geometry: dict[str, Any] = {"type": "MultiPolygon", "coordinates": [
            [[[179.0, y], [180.0, y], [180.0, y + size], [179.0, y + size], [179.0, y]]],
            [[[-180.0, y], [-179.0, y], [-179.0, y + size], [-180.0, y + size], [-180.0, y]]]]}
    elif rng.random() < 0.3:  # a triangle: its bbox is bigger than its footprint
        bbox = [x, y, x + size, y + size]
        geometry = {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x, y + size], [x, y]]]}
    else:
        bbox = [x, y, x + size, y + size]
        geometry = {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size],
                                                        [x, y + size], [x, y]]]}
    when = EPOCH + timedelta(seconds=rng.randrange(0, 6 * 365 * 86400))
    props: dict[str, Any] = {}
    if rng.random() < 0.1:
        props["datetime"] = None
        props["start_datetime"] = iso(when)
        props["end_datetime"] = iso(when + timedelta(days=rng.randrange(1, 90)))
    else:
        props["datetime"] = iso(when)
    if rng.random() < 0.9:
        props["eo:cloud_cover"] = round(rng.uniform(0, 100), 2)
    props["platform"] = rng.choice(PLATFORMS)
    props["gsd"] = rng.choice([10, 20, 30, 60])
    words = rng.sample(WORDS, 3)
    props["title"] = f"{words[0].capitalize()} scene {i}"
    props["description"] = f"Imagery of {words[1]} and {words[2]} areas"
    props["keywords"] = rng.sample(WORDS, 2)
    props["updated"] = iso(EPOCH + timedelta(days=3000, seconds=i))
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": f"{prefix}-{i:07d}",
        "collection": coll, "bbox": bbox, "geometry": geometry, "properties": props,
        "links": [], "assets": {"data": {"href": f"s3://bucket/{coll}/{i}.tif", "type": "image/tiff"}},
    }


def make_items(n: int, seed: int = 1, **kw: Any) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_item(i, rng, **kw) for i in range(n)]
