"""Process settings, read from the environment once."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_STORE = "file://data"


@dataclass(frozen=True)
class Settings:
    store_uri: str
    # The service's public base URL. Links stored in items use it (never a request's headers);
    # it also overrides the request-derived base of API responses.
    public_url: str | None
    dispatch_events: bool  # dispatch store changes in-process (always true for the local store)
    # Peers (IPs or CIDRs, "*" for any) whose X-Forwarded-Proto/Host/Prefix headers are believed;
    # from anyone else they are ignored. API Gateway's own request context needs no entry.
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> "Settings":
        proxies = os.environ.get("STACFLOW_TRUSTED_PROXIES", "")
        return cls(
            store_uri=os.environ.get("STACFLOW_STORE", DEFAULT_STORE),
            public_url=os.environ.get("STACFLOW_PUBLIC_URL") or None,
            dispatch_events=os.environ.get("STACFLOW_DISPATCH_EVENTS", "") in ("1", "true", "yes"),
            trusted_proxies=tuple(p.strip() for p in proxies.split(",") if p.strip()),
        )
