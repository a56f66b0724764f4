"""A searchable corpus over a store: base segments, pending log entries, and both tables."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
