"""Process settings: the one place that reads the environment (``STACFLOW_*``), once per process."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STORE = "file://data"
DEFAULT_ONNX_INSPECT_LIMIT = 64 * 1024 * 1024
DEFAULT_EVENTS_QUEUE = "stacflow-store-events"
DEFAULT_DVC_DIR_ASSETS = 100
# Where `make setup` builds the web UIs (build/ui/<name>/); absent in the Lambda package.
BUILT_UI = Path(__file__).resolve().parent.parent / "build" / "ui"


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
    gitlab_url: str | None = None  # GitLab of the ``project`` tags and of the datasets (webhooks, python-gitlab)
    # A service account's token: read access to the dataset projects (python-gitlab ``private_token``)
    gitlab_token: str | None = field(default=None, repr=False)
    # The secret GitLab sends in ``X-Gitlab-Token``; unset: every webhook is refused (fail closed)
    webhook_secret: str | None = field(default=None, repr=False)
    # DVC S3 remotes (``s3://bucket[/prefix]``) whose ObjectCreated events mark dataset assets available
    dvc_remotes: tuple[str, ...] = ()
    dvc_dir_assets: int = DEFAULT_DVC_DIR_ASSETS  # a tracked directory with more files: one manifest asset
    events_queue: str = DEFAULT_EVENTS_QUEUE  # the SQS queue the bucket's notifications go to (deployment)
    # The static web UIs' files: a directory holding <name>/ folders, or None for the store's ui/<name>/
    ui_dir: str | None = None
    # Origins whose browser apps may call the STAC API and /files ("*": any; never with credentials)
    cors_origins: tuple[str, ...] = ("*",)

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
            gitlab_token=os.environ.get("STACFLOW_GITLAB_TOKEN") or None,
            webhook_secret=os.environ.get("STACFLOW_WEBHOOK_SECRET") or None,
            dvc_remotes=_remotes(os.environ.get("STACFLOW_DVC_REMOTES", "")),
            dvc_dir_assets=int(os.environ.get("STACFLOW_DVC_DIR_ASSETS") or DEFAULT_DVC_DIR_ASSETS),
            ui_dir=_ui_dir(os.environ.get("STACFLOW_UI", "")),
            cors_origins=_origins(os.environ.get("STACFLOW_CORS_ORIGINS")),
        )


def _ui_dir(value: str) -> str | None:
    """``STACFLOW_UI``: ``store``, a directory, or unset: ``build/ui`` if it was built, else the store."""
    if value.strip() == "store":
        return None
    if value.strip():
        return value.strip()
    return str(BUILT_UI) if BUILT_UI.is_dir() else None


def _origins(value: str | None) -> tuple[str, ...]:
    """``STACFLOW_CORS_ORIGINS``: unset means ``*``; empty means no cross-origin access at all."""
    if value is None:
        return ("*",)
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"STACFLOW_CORS_ORIGINS: {origin!r} is not '*' or an http(s)://host[:port] origin")
    return origins


def _remotes(value: str) -> tuple[str, ...]:
    """``s3://bucket[/prefix]`` URLs, comma-separated; trailing slashes dropped, anything else refused."""
    out = []
    for url in (part.strip().rstrip("/") for part in value.split(",")):
        if not url:
            continue
        if not url.startswith("s3://") or len(url) <= len("s3://") or url.startswith("s3:///"):
            raise ValueError(f"STACFLOW_DVC_REMOTES: {url!r} is not an s3://bucket[/prefix] URL")
        out.append(url)
    return tuple(out)
