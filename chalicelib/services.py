"""Composition root: the lazily created, per-process store and services.

Handlers call these accessors; nothing is built at import time, so a cold start
pays only for what its first request uses.
"""
from __future__ import annotations

import threading
from typing import Any

from .settings import Settings
from .store import ObjectStore, open_store

_lock = threading.RLock()
_state: dict[str, Any] = {}


def settings() -> Settings:
    with _lock:
        if "settings" not in _state:
            _state["settings"] = Settings.from_env()
        return _state["settings"]  # type: ignore[no-any-return]


def store() -> ObjectStore:
    with _lock:
        if "store" not in _state:
            cfg = settings()
            st = open_store(cfg.store_uri, emit_events=cfg.dispatch_events,
                            signing_key=cfg.signing_key.encode() if cfg.signing_key else None)
            _wire_events(st)
            _state["store"] = st
        return _state["store"]  # type: ignore[no-any-return]


def _wire_events(st: ObjectStore) -> None:
    # The local store has no notifications: feed its changes to the same event
    # functions the deployed S3 -> SQS -> Lambda path calls.
    from functions import dispatch_change
    st.subscribe(lambda change: dispatch_change(st, change))


def configure(*, store: ObjectStore | None = None, settings: Settings | None = None) -> None:
    """Replace the process state (tests, the CLI). Cached services are dropped."""
    with _lock:
        _state.clear()
        if settings is not None:
            _state["settings"] = settings
        if store is not None:
            _wire_events(store)
            _state["store"] = store


def cached(name: str, factory: Any) -> Any:
    """A per-process singleton built on first use (search engine, tracking service, ...)."""
    with _lock:
        if name not in _state:
            _state[name] = factory()
        return _state[name]
