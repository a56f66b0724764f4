"""Access-control settings: values checked at start, secrets from the environment or from the AWS
parameter they name (SSM Parameter Store, Secrets Manager; moto's server here)."""
from __future__ import annotations

import boto3
import pytest

from chalicelib.settings import Settings


def test_auth_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STACFLOW_AUTH", "STACFLOW_ANONYMOUS_READ", "STACFLOW_GITLAB_URL"):
        monkeypatch.delenv(name, raising=False)
    cfg = Settings.from_env()
    assert cfg.auth == "off"
    assert cfg.auth_enabled is False
    assert cfg.anonymous_read is False


@pytest.mark.parametrize("env", [{"STACFLOW_AUTH": "maybe"}, {"STACFLOW_AUTH": "gitlab"},
                                 {"STACFLOW_ANONYMOUS_READ": "sometimes"},
                                 {"STACFLOW_GITLAB_TIMEOUT": "0", "STACFLOW_AUTH": "off"}])
def test_bad_auth_settings_stop_the_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.delenv("STACFLOW_GITLAB_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        Settings.from_env()


def test_gitlab_auth_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACFLOW_AUTH", "GitLab")
    monkeypatch.setenv("STACFLOW_GITLAB_URL", "https://gitlab.example")
    monkeypatch.setenv("STACFLOW_ANONYMOUS_READ", "true")
    monkeypatch.setenv("STACFLOW_AUTH_CACHE_TTL", "30")
    monkeypatch.setenv("STACFLOW_OAUTH_CLIENT_SECRET", "oauth-secret-value")
    cfg = Settings.from_env()
    assert cfg.auth_enabled
    assert cfg.anonymous_read
    assert cfg.auth_cache_ttl == 30.0
    assert "oauth-secret-value" not in repr(cfg)


def test_secrets_come_from_ssm_and_secrets_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(Name="/stacflow/gitlab-token", Value="glpat-from-ssm", Type="SecureString",
                                      Overwrite=True)
    boto3.client("secretsmanager").create_secret(Name="stacflow-webhook", SecretString="hook-from-sm")
    monkeypatch.setenv("STACFLOW_GITLAB_TOKEN", "ssm:/stacflow/gitlab-token")
    monkeypatch.setenv("STACFLOW_WEBHOOK_SECRET", "secretsmanager:stacflow-webhook")
    cfg = Settings.from_env()
    assert cfg.gitlab_token == "glpat-from-ssm"
    assert cfg.webhook_secret == "hook-from-sm"


def test_a_missing_parameter_stops_the_start_without_naming_a_value(moto_endpoint: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACFLOW_SESSION_KEY", "ssm:/stacflow/absent")
    with pytest.raises(ValueError) as failed:
        Settings.from_env()
    assert "STACFLOW_SESSION_KEY" in str(failed.value)
