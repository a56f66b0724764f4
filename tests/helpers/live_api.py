"""``stacflow serve`` over a store holding a known set of published items (the ``api`` fixture)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from chalicelib.stac.publish import publish_paths
from chalicelib.store.local import LocalStore

from .servers import LiveServer
from .stac_items import make_item, random_items


def corpus() -> list[dict[str, Any]]:
    """dataset: varied, with interval items; ai-model: every item has a datetime (the API validator
    sorts on it) and one sits in the validator's bbox 20,20,21,21."""
    return (random_items(150) + random_items(60, "ai-model", seed=3, ranges=False, prefix="m")
            + [make_item("m-near-20", "ai-model", lon=20.5, lat=20.5, platform="s2", title="scene near 20"),
               make_item("unet:flood+v2", "ai-model", lon=2, lat=48, platform="s1", title="flood model")])


class Api:
    def __init__(self, url: str, store: LocalStore, items: list[dict[str, Any]]) -> None:
        self.url = url  # .../stac
        self.store = store
        self.items = items


@contextmanager
def serve(root: Path) -> Iterator[Api]:
    """Publish ``corpus()`` into a store under ``root`` and serve it until the block ends."""
    store = LocalStore(root / "store", fsync=False)
    items = corpus()
    source = root / "items.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items))
    report = publish_paths(store, [Path(source)], progress=False)
    assert report.published == len(items)
    assert not report.rejected
    server = LiveServer(store.uri)
    try:
        yield Api(server.url + "/stac", store, items)
    finally:
        server.stop()
