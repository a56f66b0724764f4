"""Process settings: the one place that reads the environment (``STACFLOW_*``), once per process."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_STORE = "file://data"
DEFAULT_ONNX_INSPECT_LIMIT = 64 * 1024 * 1024
DEFAULT_EVENTS_QUEUE = "stacflow-store-events"


@dataclass(frozen=True)
class Settings:
    store_uri: str
    # The service's public base URL. Links stored in items use it (never a request's headers);
    # it also overrides the request-derived base of API responses.
    public_url: str | None
    dispatch_events: bool  # dispatch store changes in-process (always true for the local store)
    # HMAC key of the local store's signed /files URLs (else generated in the store); kept out of reprs
    signing_key: str | None = field(default=None, repr=False)
    onnx_inspect_limit: int = DEFAULT_ONNX_INSPECT_LIMIT  # bytes: larger ONNX files are hashed, not parsed
    # Peers (IPs or CIDRs, "*" for any) whose X-Forwarded-Proto/Host/Prefix headers are believed;
    # from anyone else they are ignored. API Gateway's own request context needs no entry.
    trusted_proxies: tuple[str, ...] = ()
    # ``s3://…``: new experiments put their artifacts there (clients write straight to S3), else proxied
    artifact_root: str | None = None
    gitlab_url: str | None = None  # GitLab of the ``project`` tags: items link to the project's page
    events_queue: str = DEFAULT_EVENTS_QUEUE  # the SQS queue the bucket's notifications go to (deployment)

    @classmethod
    def from_env(cls) -> "Settings":
        proxies = os.environ.get("STACFLOW_TRUSTED_PROXIES", "")
        return cls(
            store_uri=os.environ.get("STACFLOW_STORE", DEFAULT_STORE),
            public_url=os.environ.get("STACFLOW_PUBLIC_URL") or None,
            dispatch_events=os.environ.get("STACFLOW_DISPATCH_EVENTS", "") in ("1", "true", "yes"),
            signing_key=os.environ.get("STACFLOW_SIGNING_KEY") or None,
            onnx_inspect_limit=int(os.environ.get("STACFLOW_ONNX_INSPECT_LIMIT") or DEFAULT_ONNX_INSPECT_LIMIT),
            trusted_proxies=tuple(p.strip() for p in proxies.split(",") if p.strip()),
            artifact_root=os.environ.get("STACFLOW_ARTIFACT_ROOT") or None,
            gitlab_url=os.environ.get("STACFLOW_GITLAB_URL") or None,
            events_queue=os.environ.get("STACFLOW_EVENTS_QUEUE") or DEFAULT_EVENTS_QUEUE,
        )
