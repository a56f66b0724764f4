"""A registry test world: tracking and registry services over one store whose changes are
recorded and delivered to the event functions on demand."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from chalicelib import services
from chalicelib.registry.lineage import ServiceTracking
from chalicelib.registry.publication import item_key
from chalicelib.registry.service import RegistryService
from chalicelib.settings import Settings
from chalicelib.store import CREATED, Change, NotFound, ObjectStore
from chalicelib.tracking.service import TrackingService
from chalicelib.events.base import StoreEvent
from chalicelib.events.dispatch import handle_events
from chalicelib.services import Services

MLMODEL = b"flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.23.2\n"


@dataclass
class World:
    store: ObjectStore
    tracking: TrackingService
    registry: RegistryService
    changes: list[Change]
    run_id: str
    artifacts: str  # store key prefix of the run's artifacts

    def new_run(self) -> tuple[str, str]:
        eid = self.tracking.create_experiment(f"e{random.random()}", None, [])
        run = self.tracking.create_run({"experiment_id": eid}).info
        return run.run_id, "mlflow-artifacts/" + run.artifact_uri.split(":", 1)[1].strip("/")

    def upload_model(self, prefix: str, onnx: bytes) -> None:
        self.store.put(f"{prefix}/model.onnx", onnx)
        self.store.put(f"{prefix}/MLmodel", MLMODEL)

    def deliver(self, changes: list[Change] | None = None) -> None:
        """Hand recorded changes to the functions, as S3 notifications would, and forget them."""
        todo = list(self.changes if changes is None else changes)
        self.changes.clear()
        handle_events(self.functions(), [StoreEvent(c.event_name == CREATED, c.key, c.etag, "") for c in todo])

    def functions(self) -> Services:
        """The services the event functions get: this store, the process's settings."""
        return Services(store=self.store, settings=services.settings())

    def item(self, name: str, version: int) -> dict[str, Any] | None:
        try:
            return self.store.get_json(item_key(name, version))  # type: ignore[no-any-return]
        except NotFound:
            return None

    def links(self, name: str, version: int) -> dict[str, str]:
        item = self.item(name, version)
        assert item is not None
        return {link["rel"]: link["href"].rsplit("/", 1)[-1] for link in item["links"]}


def make_world(store: ObjectStore, public_url: str | None = "http://svc") -> World:
    """Record the store's changes (``deliver`` hands them to the functions) and configure the
    process as the event functions see it (``public_url`` is STACFLOW_PUBLIC_URL)."""
    changes: list[Change] = []
    if hasattr(store, "emit_events"):
        store.emit_events = True  # type: ignore[attr-defined]
    store.subscribe(changes.append)
    services.configure(settings=Settings(store_uri=store.uri, public_url=public_url, dispatch_events=False))
    tracking = TrackingService(store)
    w = World(store, tracking, RegistryService(store, ServiceTracking(tracking)), changes, "", "")
    w.run_id, w.artifacts = w.new_run()
    return w
