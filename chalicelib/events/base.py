"""What every event function takes: typed store events and the services it may use."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from ..store import ObjectStore

if TYPE_CHECKING:
    from ..datasets.publication import DatasetContext
    from ..registry.publication import Context
    from ..settings import Settings


@dataclass(frozen=True)
class StoreEvent:
    """One S3 notification record, reduced to what the functions use."""

    created: bool  # ObjectCreated:* (else ObjectRemoved:*)
    # store-relative key, or ``s3://bucket/key`` for an object of a configured DVC remote (never a
    # valid store key: its empty segment is refused by ``check_key``)
    key: str
    etag: str
    sequencer: str
    size: int = 0


class EventServices(Protocol):
    """The services an event function may use, built by the composition root (``chalicelib.services``).

    Each is built on first use: the catalog function never pays for the tracking service."""

    def settings(self) -> Settings: ...

    def store(self) -> ObjectStore: ...

    def publication_context(self) -> Context: ...

    def dataset_context(self) -> DatasetContext: ...


Handler = Callable[[EventServices, list[StoreEvent]], None]
Route = tuple[str, Handler]  # (key pattern, function)
