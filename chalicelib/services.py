"""Composition root: the one place that builds the store and the services over it.

Routes call this module's typed accessors (``services.tracking()``, ``services.stac_api()``, ...),
the event functions are handed ``services.root()``, the CLI both; domain packages never import this
module (tests/test_architecture.py). Each service is built on first use, its modules imported then,
so a cold start pays only for what its first request uses. ``configure`` replaces the process's
services: tests give a store, settings or any service of their own, the CLI its ``--store``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, TypedDict, TypeVar

from .settings import Settings
from .store import Change, ObjectStore, open_store

if TYPE_CHECKING:
    from typing import Unpack

    from .datasets.publication import DatasetContext
    from .datasets.webhook import Webhooks
    from .registry.lineage import Tracking
    from .registry.publication import Context
    from .registry.service import RegistryService
    from .stac.api import StacApi
    from .tracking.artifacts import ArtifactService
    from .tracking.service import TrackingService
    from .ui.static import Site

T = TypeVar("T")


class _Once(Generic[T]):
    """A value built on first use, once (or given up front)."""

    def __init__(self, lock: threading.RLock, build: Callable[[], T], given: T | None = None) -> None:
        self._lock, self._build, self._value = lock, build, given

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value


class Given(TypedDict, total=False):
    """What a ``Services`` may be given instead of building it."""

    settings: Settings
    store: ObjectStore
    stac_api: StacApi
    tracking: TrackingService
    artifacts: ArtifactService
    registry: RegistryService
    webhooks: Webhooks
    dataset_context: DatasetContext


class Services:
    """One store and the services over it, each built on first use from the settings.

    The process has one (``root()``), whose store's changes go to the event functions when the store
    has no notifications of its own (``dispatch=True``: the local store). Tests build others over
    stores of their own.
    """

    def __init__(self, *, dispatch: bool = False, **given: Unpack[Given]) -> None:
        lock = threading.RLock()  # builders call one another (registry -> tracking -> store -> settings)
        self._dispatch = dispatch
        self._listening: tuple[ObjectStore, Callable[[Change], None]] | None = None
        self._settings = _Once(lock, Settings.from_env, given.get("settings"))
        self._store = _Once(lock, self._open_store, given.get("store"))
        self._stac_api = _Once(lock, self._new_stac_api, given.get("stac_api"))
        self._tracking = _Once(lock, self._new_tracking, given.get("tracking"))
        self._artifacts = _Once(lock, self._new_artifacts, given.get("artifacts"))
        self._registry = _Once(lock, self._new_registry, given.get("registry"))
        self._lineage = _Once(lock, self._new_lineage)
        self._publication = _Once(lock, self._new_publication_context)
        self._webhooks = _Once(lock, self._new_webhooks, given.get("webhooks"))
        self._datasets = _Once(lock, self._new_dataset_context, given.get("dataset_context"))
        self._lock = lock
        self._sites: dict[tuple[str, bool], Site] = {}
        if "store" in given:
            self._listen(given["store"])

    def settings(self) -> Settings:
        return self._settings.get()

    def store(self) -> ObjectStore:
        return self._store.get()

    def stac_api(self) -> StacApi:
        return self._stac_api.get()

    def tracking(self) -> TrackingService:
        return self._tracking.get()

    def artifacts(self) -> ArtifactService:
        return self._artifacts.get()

    def registry(self) -> RegistryService:
        return self._registry.get()

    def publication_context(self) -> Context:
        """What the registry's STAC publication needs (the registry event function, republish-models)."""
        return self._publication.get()

    def webhooks(self) -> Webhooks:
        """The GitLab webhook receiver (``/webhooks/gitlab``)."""
        return self._webhooks.get()

    def dataset_context(self) -> DatasetContext:
        """What the datasets event function needs: the store, GitLab, the DVC remotes."""
        return self._datasets.get()

    def ui_site(self, name: str, *, history: bool) -> Site:
        """The static web UI ``name`` (``build/ui/<name>/``, or the store's ``ui/<name>/``)."""
        with self._lock:
            site = self._sites.get((name, history))
            if site is None:
                from .ui.static import Site, site_source
                ui_dir = self.settings().ui_dir
                source = site_source(name, Path(ui_dir) if ui_dir else None, self.store())
                site = self._sites[(name, history)] = Site(name, source, history)
            return site

    def close(self) -> None:
        """Stop dispatching the store's changes (a root being replaced)."""
        if self._listening is not None:
            store, listener = self._listening
            store.unsubscribe(listener)
            self._listening = None

    # -- builders -------------------------------------------------------------------------
    def _open_store(self) -> ObjectStore:
        cfg = self.settings()
        store = open_store(cfg.store_uri, emit_events=cfg.dispatch_events,
                           signing_key=cfg.signing_key.encode() if cfg.signing_key else None)
        self._listen(store)
        return store

    def _listen(self, store: ObjectStore) -> None:
        # The local store has no notifications: feed its changes to the same event functions
        # the deployed S3 -> SQS -> Lambda path calls.
        if not self._dispatch:
            return

        def listener(change: Change) -> None:
            from .events.dispatch import dispatch_change
            dispatch_change(self, change)
        store.subscribe(listener)
        self._listening = (store, listener)

    def _new_stac_api(self) -> StacApi:
        from .stac.api import StacApi
        keep_large_buffers()
        return StacApi(self.store())

    def _new_tracking(self) -> TrackingService:
        from .tracking.service import TrackingService
        return TrackingService(self.store(), artifact_root=self.settings().artifact_root)

    def _new_artifacts(self) -> ArtifactService:
        from .tracking.artifacts import ArtifactService
        return ArtifactService(self.store())

    def _new_lineage(self) -> Tracking:
        from .registry.lineage import ServiceTracking
        return ServiceTracking(self.tracking())

    def _new_registry(self) -> RegistryService:
        from .registry.service import RegistryService
        return RegistryService(self.store(), self._lineage.get())

    def _new_publication_context(self) -> Context:
        from .registry.publication import Context
        cfg = self.settings()
        return Context(store=self.store(), tracking=self._lineage.get(), public_url=cfg.public_url,
                       gitlab_url=cfg.gitlab_url, onnx_inspect_limit=cfg.onnx_inspect_limit)

    def _new_webhooks(self) -> Webhooks:
        from .datasets.webhook import Webhooks
        return Webhooks(self.store(), self.settings().webhook_secret)

    def _new_dataset_context(self) -> DatasetContext:
        from .datasets.gitlab import GitLabReader
        from .datasets.publication import DatasetContext
        from .datasets.remotes import ConfiguredRemotes
        from .datasets.snapshot import BuildSettings
        cfg = self.settings()
        reader = GitLabReader(cfg.gitlab_url, cfg.gitlab_token) if cfg.gitlab_url else None
        return DatasetContext(store=self.store(), reader=reader, remote=ConfiguredRemotes(cfg.dvc_remotes),
                              build=BuildSettings(max_files_per_directory=cfg.dvc_dir_assets,
                                                  base_url=cfg.public_url))


def keep_large_buffers() -> None:
    """Let glibc reuse freed large blocks instead of mmap-ing (and page-faulting) each one anew.

    A STAC page of 1,000 items is built in ~1 MB buffers several times per request; with glibc's
    defaults each is a fresh mmap, which doubled the time to answer such a page. A process-wide
    setting: made once, when the STAC API is first built, not as a side effect of an import.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")  # by name: find_library would spawn ldconfig on a cold start
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: keep the allocator's defaults
        pass


# -- the process's services ---------------------------------------------------------------
_lock = threading.Lock()
_root: Services | None = None


def root() -> Services:
    global _root
    current = _root
    if current is None:
        with _lock:
            if _root is None:
                _root = Services(dispatch=True)
            current = _root
    return current


def configure(**given: Unpack[Given]) -> None:
    """Replace the process's services (tests, the CLI): those given are used as they are, the others
    are built on first use (settings from the environment unless given)."""
    global _root
    with _lock:
        if _root is not None:
            _root.close()
        _root = Services(dispatch=True, **given)


def settings() -> Settings:
    return root().settings()


def store() -> ObjectStore:
    return root().store()


def stac_api() -> StacApi:
    return root().stac_api()


def ui_site(name: str, *, history: bool) -> Site:
    return root().ui_site(name, history=history)


def tracking() -> TrackingService:
    return root().tracking()


def artifacts() -> ArtifactService:
    return root().artifacts()


def registry() -> RegistryService:
    return root().registry()


def publication_context() -> Context:
    return root().publication_context()


def webhooks() -> Webhooks:
    return root().webhooks()


def dataset_context() -> DatasetContext:
    return root().dataset_context()
