"""What every event function takes: typed store events and the services it may use."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from ..store import ObjectStore

if TYPE_CHECKING:
    from ..registry.publication import Context


@dataclass(frozen=True)
class StoreEvent:
    """One S3 notification record, reduced to what the functions use."""

    created: bool  # ObjectCreated:* (else ObjectRemoved:*)
    key: str  # store-relative key
    etag: str
    sequencer: str


class EventServices(Protocol):
    """The services an event function may use, built by the composition root (``chalicelib.services``).

    Each is built on first use: the catalog function never pays for the tracking service."""

    def store(self) -> ObjectStore: ...

    def publication_context(self) -> Context: ...


Handler = Callable[[EventServices, list[StoreEvent]], None]
Route = tuple[str, Handler]  # (key pattern, function)
