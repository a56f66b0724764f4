"""Logs, metrics and correlation ids (chalicelib/observability.py, chalicelib/http/observe.py).

Requests carrying tokens, signed URLs and secrets are driven through the app; every log line they
produce is captured with the service's own JSON handler and scanned for those values.
"""
from __future__ import annotations

import io
import json
import logging
from typing import Any, Iterator

import pytest
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import observability, services
from chalicelib.settings import Settings
from chalicelib.store.local import LocalStore

SECRET = "webhook-secret-5f0c1d2e3a4b"
GITLAB_TOKEN = "glpat-abcdefghijklmnop1234"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    observability.setup()  # first: it replaces the loggers' handlers with the service's own
    buf = io.StringIO()
    out = observability.handler(buf)
    loggers = [logging.getLogger(name) for name in observability.LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(out)
        lg.setLevel(logging.DEBUG)
    yield buf
    for lg, level in zip(loggers, levels):
        lg.removeHandler(out)
        lg.setLevel(level)


@pytest.fixture
def client(local_store: LocalStore) -> Iterator[Client]:
    services.configure(store=local_store, settings=Settings(
        store_uri=local_store.uri, public_url=None, dispatch_events=True, webhook_secret=SECRET,
        gitlab_token=GITLAB_TOKEN))
    from app import app
    with Client(app) as c:
        yield c
    services.configure()


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_a_request_gets_a_correlation_id_echoed_and_logged(client: Client, logs: io.StringIO) -> None:
    resp = client.http.get("/stac/collections", headers={"X-Request-Id": "req-12345"})
    assert resp.headers["X-Request-Id"] == "req-12345"
    access = [line for line in _lines(logs) if line.get("message") == "request"]
    assert [(a["correlation_id"], a["route"], a["status"]) for a in access] == [("req-12345", "/stac/collections", 200)]


def test_an_unusable_client_id_is_replaced(client: Client) -> None:
    resp = client.http.get("/health", headers={"X-Request-Id": "bad id\nwith newline " + "x" * 200})
    assert len(resp.headers["X-Request-Id"]) == 32


def test_no_secret_token_or_signed_url_reaches_a_log_line(client: Client, local_store: LocalStore,
                                                          logs: io.StringIO) -> None:
    local_store.put("mlflow-artifacts/a/secret.bin", b"s")
    signed = local_store.presign_get("mlflow-artifacts/a/secret.bin", base_url="http://h")
    token = signed.rsplit("/", 1)[1]
    put_token = local_store.presign_put("up.bin", base_url="http://h").rsplit("/", 1)[1]
    query_secret = "AKIAEXAMPLESECRET999"
    client.http.get(f"/files/{token}?X-Amz-Signature={query_secret}", headers={"Accept": "*/*"})
    client.http.get(f"/files/{token[:-3]}xyz", headers={"Accept": "*/*"})  # a forged token: refused
    client.http.put(f"/files/{put_token}", body=b"u")
    client.http.post("/webhooks/gitlab", body=b"{}", headers={"X-Gitlab-Token": "wrong-" + SECRET,
                                                              "Content-Type": "application/json"})
    client.http.post("/webhooks/gitlab", body=b"{not json", headers={"X-Gitlab-Token": SECRET,
                                                                     "Content-Type": "application/json"})
    client.http.get("/mlflow/api/2.0/mlflow/experiments/get?experiment_id=1",
                    headers={"Authorization": f"Bearer {GITLAB_TOKEN}"})
    # A module that logs a URL, a header or a setting anyway: the formatter still takes them out.
    services.settings()
    log = logging.getLogger("chalicelib.stac.publish")
    log.warning("fetching %s with %s", signed + f"?X-Amz-Credential={query_secret}", f"Bearer {GITLAB_TOKEN}",
                extra={"secret": SECRET, "url": signed})
    text = logs.getvalue()
    assert len(_lines(logs)) >= 7  # every request logged a line
    for secret in (token, put_token, query_secret, SECRET, GITLAB_TOKEN):
        assert secret not in text, secret


def test_metrics_are_emitted_as_emf(client: Client, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACFLOW_METRICS", "emf")
    client.http.get("/stac/collections")
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [d for d in docs if "_aws" in d]
    names = {m["Name"] for d in emf for block in d["_aws"]["CloudWatchMetrics"] for m in block["Metrics"]}
    assert {"Requests", "StoreRequests", "Latency"} <= names


def test_an_event_record_counts_publications_and_lag(local_store: LocalStore) -> None:
    from chalicelib.events.dispatch import handle_s3_event
    from chalicelib.events.notifications import s3_event_for
    from chalicelib.store import CREATED, Change
    from tests.helpers.stac_items import make_item
    item = make_item("lagged", collection="dataset")
    info = local_store.put_json("collections/dataset/items/lagged.json", item)
    event = s3_event_for(local_store.event_source, [Change(CREATED, info.key, info.etag, info.size)])
    event["Records"][0]["eventTime"] = "2020-01-01T00:00:00.000Z"
    seen: list[observability.Invocation] = []
    real = observability._flush
    observability._flush = lambda inv, dims: seen.append(inv)  # type: ignore[assignment]
    try:
        handle_s3_event(event, services.Services(store=local_store, settings=Settings(
            store_uri=local_store.uri, public_url=None, dispatch_events=False)))
    finally:
        observability._flush = real  # type: ignore[assignment]
    assert seen[-1].counts["Publications"] == 1
    assert seen[-1].values["EventLag"][0] > 1e11  # years, in milliseconds


@settings(max_examples=400, deadline=None)
@given(text=st.lists(st.sampled_from([*"abcikrstBT /?&=._-:", "files/", "bearer ", "token=", "basic ", "baſic ", "basıc ", "to\u212aen ", "ſ", "ı",
                                      "\u212a", "é", "abcdefgh12"]), max_size=30).map("".join))
def test_redacting_only_where_a_pattern_can_match_changes_no_line(text: str) -> None:
    """``redact`` skips a pattern when a plain substring test says it cannot match: same result as
    running every pattern on every line (case-folding look-alikes such as "ſ" included)."""
    assert observability.redact(text) == _redact_everything(text)


def _redact_everything(text: str) -> str:
    repl = r"\g<1>" + observability.REDACTED
    text = observability._BEARER.sub(repl, observability._SECRET_PARAM.sub(
        repl, observability._FILES_TOKEN.sub(repl, text)))
    for secret in observability._secrets:
        text = text.replace(secret, observability.REDACTED)
    return text
