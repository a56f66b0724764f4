"""Process settings: the one place that reads the environment (``STACFLOW_*``), once per process."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STORE = "file://data"
DEFAULT_ONNX_INSPECT_LIMIT = 64 * 1024 * 1024
DEFAULT_EVENTS_QUEUE = "stacflow-store-events"
DEFAULT_DVC_DIR_ASSETS = 100
AUTH_MODES = ("off", "gitlab")
DEFAULT_AUTH_CACHE_TTL = 60.0  # seconds a GitLab answer (identity, role, memberships) is reused
DEFAULT_PAGE_CACHE = 256  # answers of `stacflow serve`'s page cache (chalicelib/http/page_cache.py)
DEFAULT_GITLAB_TIMEOUT = 5.0  # seconds per GitLab call of an access check (API Gateway waits 29 s)
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
    auth: str = "off"  # "off": everyone may do everything (one local user); "gitlab": GitLab roles decide
    anonymous_read: bool = False  # with auth on: callers without a token may read public projects
    auth_cache_ttl: float = DEFAULT_AUTH_CACHE_TTL
    gitlab_timeout: float = DEFAULT_GITLAB_TIMEOUT
    # GitLab OAuth application (browser sign-in by authorization code); unset: the token form only
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    # A workspace's GitLab group (full path): new experiments and registered models must belong to a
    # project inside it; unset: any project
    gitlab_group: str | None = None
    # Key of the encrypted session cookies (else derived from signing_key); same on every server
    session_key: str | None = field(default=None, repr=False)
    # The static web UIs' files: a directory holding <name>/ folders, or None for the store's ui/<name>/
    ui_dir: str | None = None
    # Origins whose browser apps may call the STAC API and /files ("*": any; never with credentials)
    cors_origins: tuple[str, ...] = ("*",)
    # `stacflow serve`: how many answers of the never-changing pages (landing pages, conformance,
    # OpenAPI) it keeps ready to send; 0: none
    page_cache_entries: int = DEFAULT_PAGE_CACHE

    @classmethod
    def from_env(cls) -> "Settings":
        proxies = os.environ.get("STACFLOW_TRUSTED_PROXIES", "")
        return cls(
            store_uri=os.environ.get("STACFLOW_STORE", DEFAULT_STORE),
            public_url=os.environ.get("STACFLOW_PUBLIC_URL") or None,
            dispatch_events=os.environ.get("STACFLOW_DISPATCH_EVENTS", "") in ("1", "true", "yes"),
            signing_key=_secret("STACFLOW_SIGNING_KEY"),
            onnx_inspect_limit=int(os.environ.get("STACFLOW_ONNX_INSPECT_LIMIT") or DEFAULT_ONNX_INSPECT_LIMIT),
            trusted_proxies=tuple(p.strip() for p in proxies.split(",") if p.strip()),
            artifact_root=os.environ.get("STACFLOW_ARTIFACT_ROOT") or None,
            gitlab_url=os.environ.get("STACFLOW_GITLAB_URL") or None,
            events_queue=os.environ.get("STACFLOW_EVENTS_QUEUE") or DEFAULT_EVENTS_QUEUE,
            gitlab_token=_secret("STACFLOW_GITLAB_TOKEN"),
            webhook_secret=_secret("STACFLOW_WEBHOOK_SECRET"),
            dvc_remotes=_remotes(os.environ.get("STACFLOW_DVC_REMOTES", "")),
            dvc_dir_assets=int(os.environ.get("STACFLOW_DVC_DIR_ASSETS") or DEFAULT_DVC_DIR_ASSETS),
            auth=_choice("STACFLOW_AUTH", os.environ.get("STACFLOW_AUTH") or "off", AUTH_MODES),
            anonymous_read=_flag("STACFLOW_ANONYMOUS_READ", os.environ.get("STACFLOW_ANONYMOUS_READ", "")),
            auth_cache_ttl=float(os.environ.get("STACFLOW_AUTH_CACHE_TTL") or DEFAULT_AUTH_CACHE_TTL),
            gitlab_timeout=float(os.environ.get("STACFLOW_GITLAB_TIMEOUT") or DEFAULT_GITLAB_TIMEOUT),
            oauth_client_id=os.environ.get("STACFLOW_OAUTH_CLIENT_ID") or None,
            oauth_client_secret=_secret("STACFLOW_OAUTH_CLIENT_SECRET"),
            session_key=_secret("STACFLOW_SESSION_KEY"),
            gitlab_group=(os.environ.get("STACFLOW_GITLAB_GROUP") or "").strip("/ ") or None,
            ui_dir=_ui_dir(os.environ.get("STACFLOW_UI", "")),
            cors_origins=_origins(os.environ.get("STACFLOW_CORS_ORIGINS")),
            page_cache_entries=int(os.environ.get("STACFLOW_PAGE_CACHE") or DEFAULT_PAGE_CACHE),
        ).checked()

    def checked(self) -> "Settings":
        """Refuse combinations that would silently leave the service open or unusable."""
        if self.auth == "gitlab" and not self.gitlab_url:
            raise ValueError("STACFLOW_AUTH=gitlab needs STACFLOW_GITLAB_URL")
        if self.gitlab_timeout <= 0 or self.auth_cache_ttl < 0:
            raise ValueError("STACFLOW_GITLAB_TIMEOUT must be > 0 and STACFLOW_AUTH_CACHE_TTL >= 0")
        if self.page_cache_entries < 0:
            raise ValueError("STACFLOW_PAGE_CACHE must be >= 0")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "gitlab"


# A secret setting may name where it is kept instead of holding it: ``ssm:/path/to/parameter``
# (SSM Parameter Store, decrypted) or ``secretsmanager:<name or ARN>`` (AWS Secrets Manager).
_SECRET_REF = re.compile(r"^(ssm|secretsmanager):(\S+)$")


def _secret(name: str) -> str | None:
    """A secret from the environment, or from the parameter it names (read once, at start).

    Powertools' parameters utility is imported only when a value names a parameter, so a cold start
    without any pays nothing for it."""
    value = os.environ.get(name) or None
    found = _SECRET_REF.match(value) if value else None
    if found is None:
        return value
    from aws_lambda_powertools.utilities import parameters
    kind, ref = found.groups()
    try:
        resolved = parameters.get_parameter(ref, decrypt=True) if kind == "ssm" else parameters.get_secret(ref)
    except Exception as err:  # fail at start, naming the setting, never the value
        raise ValueError(f"{name}: the {kind} parameter it names cannot be read ({type(err).__name__})") from None
    return str(resolved) if resolved else None


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
