"""Process settings: the one place that reads the environment (``STACFLOW_*``), once per process."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_STORE = "file://data"
DEFAULT_ONNX_INSPECT_LIMIT = 64 * 1024 * 1024
DEFAULT_EVENTS_QUEUE = "stacflow-store-events"
DEFAULT_DVC_DIR_ASSETS = 100
AUTH_MODES = ("off", "gitlab")
DEFAULT_AUTH_CACHE_TTL = 60.0  # seconds a GitLab answer (identity, role, memberships) is reused
DEFAULT_GITLAB_TIMEOUT = 5.0  # seconds per GitLab call of an access check (API Gateway waits 29 s)


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
    auth: str = "off"  # "off": everyone may do everything (one local user); "gitlab": GitLab roles decide
    anonymous_read: bool = False  # with auth on: callers without a token may read public projects
    auth_cache_ttl: float = DEFAULT_AUTH_CACHE_TTL
    gitlab_timeout: float = DEFAULT_GITLAB_TIMEOUT
    # GitLab OAuth application (browser sign-in by authorization code); unset: the token form only
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    # Key of the encrypted session cookies (else derived from signing_key); same on every server
    session_key: str | None = field(default=None, repr=False)

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
            auth=_choice("STACFLOW_AUTH", os.environ.get("STACFLOW_AUTH") or "off", AUTH_MODES),
            anonymous_read=_flag("STACFLOW_ANONYMOUS_READ", os.environ.get("STACFLOW_ANONYMOUS_READ", "")),
            auth_cache_ttl=float(os.environ.get("STACFLOW_AUTH_CACHE_TTL") or DEFAULT_AUTH_CACHE_TTL),
            gitlab_timeout=float(os.environ.get("STACFLOW_GITLAB_TIMEOUT") or DEFAULT_GITLAB_TIMEOUT),
            oauth_client_id=os.environ.get("STACFLOW_OAUTH_CLIENT_ID") or None,
            oauth_client_secret=os.environ.get("STACFLOW_OAUTH_CLIENT_SECRET") or None,
            session_key=os.environ.get("STACFLOW_SESSION_KEY") or None,
        ).checked()

    def checked(self) -> "Settings":
        """Refuse combinations that would silently leave the service open or unusable."""
        if self.auth == "gitlab" and not self.gitlab_url:
            raise ValueError("STACFLOW_AUTH=gitlab needs STACFLOW_GITLAB_URL")
        if self.gitlab_timeout <= 0 or self.auth_cache_ttl < 0:
            raise ValueError("STACFLOW_GITLAB_TIMEOUT must be > 0 and STACFLOW_AUTH_CACHE_TTL >= 0")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "gitlab"


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.strip().lower() not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}: {value!r} is not true or false")


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
