"""The composition root: typed services built once, on first use, overridable; the event functions use its own."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterator

import pytest

from chalicelib import services
from chalicelib.registry.lineage import ServiceTracking
from chalicelib.store import ObjectStore
from chalicelib.tracking.service import TrackingService
from tests.helpers.paths import REPO


@pytest.fixture
def root(local_store: ObjectStore) -> Iterator[ObjectStore]:
    services.configure(store=local_store)
    yield local_store
    services.configure()


def test_each_service_is_built_once_over_the_root_store(root: ObjectStore) -> None:
    tracking = services.tracking()
    assert tracking is services.tracking()
    assert tracking.store is root
    assert services.registry().store is root
    assert services.artifacts().store is root
    assert services.stac_api() is services.stac_api()


def test_the_registry_and_its_publication_share_the_root_tracking_service(root: ObjectStore) -> None:
    for port in (services.registry().tracking, services.publication_context().tracking):
        assert isinstance(port, ServiceTracking)
        assert port.service is services.tracking()


def test_configure_overrides_a_service_and_what_is_built_over_it(root: ObjectStore) -> None:
    mine = TrackingService(root)
    services.configure(store=root, tracking=mine)
    assert services.tracking() is mine
    assert services.publication_context().tracking.service is mine  # type: ignore[union-attr]


def test_settings_reach_the_services_they_configure(root: ObjectStore) -> None:
    from chalicelib.settings import Settings
    services.configure(store=root, settings=Settings(store_uri=root.uri, public_url="https://svc", dispatch_events=False,
                                                     artifact_root="s3://bucket/artifacts",
                                                     gitlab_url="https://gitlab.example.org"))
    eid = services.tracking().create_experiment("e", None, [])
    assert services.tracking().get_experiment(eid).artifact_location == f"s3://bucket/artifacts/{eid}"
    context = services.publication_context()
    assert (context.public_url, context.gitlab_url) == ("https://svc", "https://gitlab.example.org")


def test_registry_events_use_the_root_services_not_a_new_tracking_service_per_batch(
        root: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[TrackingService] = []
    real_init = TrackingService.__init__

    def counting_init(self: TrackingService, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)
    monkeypatch.setattr(TrackingService, "__init__", counting_init)
    for n in range(3):  # each write is one event batch, dispatched in-process
        services.registry().create_registered_model(f"m{n}")
    assert built == [services.tracking()]


def test_a_replaced_root_no_longer_dispatches_its_store(root: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.stac import publish
    batches: list[list[str]] = []
    monkeypatch.setattr(publish, "apply_item_events", lambda store, events: batches.append([e.key for e in events]))
    services.configure(store=root)  # the same store again, e.g. new settings
    root.put_json("collections/dataset/items/a.json", {})
    assert batches == [["collections/dataset/items/a.json"]]  # once, by the current root


def _run(code: str) -> Any:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "STACFLOW_STORE": "file:///nonexistent"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_cold_start_imports_only_what_its_first_request_uses() -> None:
    loaded = _run(
        "import json, sys\n"
        "import app\n"
        "before = set(sys.modules)\n"
        "from chalicelib import services\n"
        "services.configure(store=__import__('chalicelib.store.local', fromlist=['LocalStore'])"
        ".LocalStore(__import__('tempfile').mkdtemp()))\n"
        "services.artifacts()\n"
        "print(json.dumps({'app': sorted(m for m in before if m.startswith('chalicelib.')),\n"
        "                  'artifacts': sorted(m for m in set(sys.modules) - before if m.startswith('chalicelib.'))}))\n")
    for heavy in ("chalicelib.tracking.service", "chalicelib.registry.service", "chalicelib.events.dispatch",
                  "chalicelib.stac.index"):
        assert heavy not in loaded["app"]
        assert heavy not in loaded["artifacts"]


def test_the_allocator_is_tuned_when_the_stac_api_is_built_not_when_a_module_is_imported() -> None:
    calls = _run(
        "import ctypes, json, tempfile\n"
        "calls = []\n"
        "class Libc:\n"
        "    def mallopt(self, *args): calls.append(list(args))\n"
        "ctypes.CDLL = lambda name, *a, **k: Libc()\n"
        "import app\n"
        "imported = list(calls)\n"
        "from chalicelib import services\n"
        "from chalicelib.store.local import LocalStore\n"
        "services.configure(store=LocalStore(tempfile.mkdtemp()))\n"
        "services.stac_api()\n"
        "print(json.dumps({'imported': imported, 'built': calls}))\n")
    assert calls["imported"] == []
    assert calls["built"] == [[-3, 64 << 20], [-1, 128 << 20]]
