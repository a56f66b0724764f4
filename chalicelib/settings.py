"""Process settings, read from the environment once."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_STORE = "file://data"


@dataclass(frozen=True)
class Settings:
    store_uri: str
    public_url: str | None  # overrides the request-derived base URL (behind API Gateway or a proxy)
    dispatch_events: bool  # dispatch store changes in-process (always true for the local store)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            store_uri=os.environ.get("STACFLOW_STORE", DEFAULT_STORE),
            public_url=os.environ.get("STACFLOW_PUBLIC_URL") or None,
            dispatch_events=os.environ.get("STACFLOW_DISPATCH_EVENTS", "") in ("1", "true", "yes"),
        )
