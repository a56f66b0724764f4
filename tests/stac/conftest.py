"""A searchable corpus over each store backend: base segments, pending log entries, and both tables."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.stac.index import SearchIndex
from chalicelib.store import ObjectStore

from .synthetic import COLLECTIONS, make_items


@dataclass
class Corpus:
    store: ObjectStore
    writer: SearchIndex
    reader: SearchIndex
    items: list[dict[str, Any]]

    @property
    def known(self) -> set[str]:
        return set(COLLECTIONS)


def build_corpus(store: ObjectStore, n: int = 360, pending: int = 40) -> Corpus:
    writer = SearchIndex(store, settle=0.05, compact_entries=3, fanout=2)
    items = make_items(n + pending, seed=7)
    for i in range(0, n, n // 6):  # compacted into segments
        writer.apply(items[i:i + n // 6], [])
    time.sleep(0.06)
    writer.apply(items[n:n + 1], [])  # the fourth pending entry triggers compaction
    patient = SearchIndex(store, settle=60)  # entries this fresh are never compacted
    for i in range(n + 1, n + pending, 13):  # left in the log
        patient.apply(items[i:i + 13], [])
    reader = SearchIndex(store, delta_max=1000)  # fresh process: segments -> base, log -> delta
    return Corpus(store, writer, reader, items)


@pytest.fixture(scope="module", params=["local", "s3"])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Read-only corpus shared by a module's tests, one per store backend."""
    if request.param == "local":
        from chalicelib.store.local import LocalStore
        return build_corpus(LocalStore(tmp_path_factory.mktemp("corpus"), fsync=False))
    from chalicelib.store.s3 import S3Store

    from ..conftest import new_bucket
    return build_corpus(S3Store(new_bucket(request.getfixturevalue("moto_endpoint")), "pre/fix"))


@pytest.fixture
def fresh_corpus(store: ObjectStore) -> Corpus:
    """A corpus a test may change."""
    return build_corpus(store)
