"""Logs, metrics and correlation ids (chalicelib/observability.py, chalicelib/http/observe.py).

Requests carrying tokens, signed URLs and secrets are driven through the app; every log line they
produce is captured with the service's own JSON handler and scanned for those values.
"""
from __future__ import annotations

import io
import json
import logging
import sys
import time
from contextlib import contextmanager
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


# -- the service's lines through templates, and the access line the short way ---------------------------
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                     st.sampled_from(["plain", 'quo"te', "back\\slash", "tab\there", "é", "\x00", "\u2028", ""]))
_NAMES = st.sampled_from(["route", "status", "duration_ms", "store_requests", "service", "level", "x", "correlation_id"])


@settings(max_examples=300, deadline=None)
@given(extras=st.dictionaries(_NAMES, _SCALARS, max_size=5), message=st.sampled_from(["request", "x", "[1]", "{}"]),
       created=st.floats(min_value=0, max_value=4e9))
def test_a_line_cut_from_a_template_is_the_line_powertools_writes(extras: dict[str, Any], message: str,
                                                                 created: float) -> None:
    """Whatever the values (quotes, control characters, NaN, huge ints, None left out, bools), the
    templated line is Powertools' own, after a first record of that shape has cut the template."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
    formatter: Any = observability._formatter()
    records = []
    for shift in (0.0, 1.5):  # the first cuts the template, the second is filled in from it
        record = logging.getLogger(observability.SERVICE).makeRecord(
            observability.SERVICE, logging.INFO, __file__, 7, message, (), None, "fn", extras)
        record.created, record.msecs = created + shift, float(int(((created + shift) % 1) * 1000))
        records.append(record)
    expected = [observability.redact(LambdaPowertoolsFormatter.format(formatter, r)) for r in records]
    assert [formatter.format(r) for r in records] == expected


@settings(max_examples=300, deadline=None)
@given(created=st.floats(min_value=-1e9, max_value=4e9), steps=st.lists(st.floats(0, 1.5), max_size=4),
       form=st.sampled_from([None, "", "%Y-%m-%d %H:%M:%S,%F%z", "%H:%M:%S.%F", "%F %F", "1987 %Y %F", "%%F", "%s",
                             "%Y", "no time"]),
       utc=st.booleans(), rfc3339=st.booleans(), directive=st.booleans())
def test_a_time_cut_once_a_second_is_the_time_powertools_writes(created: float, steps: list[float], form: str | None,
                                                                utc: bool, rfc3339: bool, directive: bool) -> None:
    """Whatever the time, its format and the milliseconds' place (none, twice, next to a year 1987), and
    for several lines within one second: Powertools' own text."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
    formatter: Any = observability._formatter()
    formatter.datefmt, formatter.utc, formatter.converter = form, utc, time.gmtime if utc else time.localtime
    formatter.use_rfc3339_iso8601, formatter.use_datetime_directive = rfc3339, directive
    records = [logging.makeLogRecord({"created": t, "msecs": int((t - int(t)) * 1000) + 0.0})
               for t in [created, *(created + step for step in steps)]]
    assert [formatter.formatTime(r) for r in records] == \
        [LambdaPowertoolsFormatter.formatTime(formatter, r) for r in records]


def test_the_time_is_made_by_strftime_once_a_second_not_once_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real = time.strftime
    monkeypatch.setattr(time, "strftime", lambda form, *rest: made.append(form) or real(form, *rest))
    formatter: Any = observability._formatter()
    second = 1_700_000_000
    texts = [formatter.formatTime(logging.makeLogRecord({"created": second + i / 50, "msecs": i * 20.0}))
             for i in range(50)]
    assert len(made) == 2  # the second's cut
    assert len(set(texts)) == 50


def test_the_formatter_keeps_one_template_per_shape() -> None:
    formatter: Any = observability._formatter()
    for i in range(5):
        record = logging.getLogger(observability.SERVICE).makeRecord(
            observability.SERVICE, logging.INFO, __file__, 7, "request", (), None, "fn", {"route": f"/r{i}", "n": i})
        formatter.format(record)
    assert len(formatter.templates) == 1


@contextmanager
def _sole() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The service logger as ``setup()`` leaves it, its one handler writing to a buffer."""
    observability.setup()
    log = logging.getLogger(observability.SERVICE)
    saved = log.handlers, log.propagate, log.level
    buf = io.StringIO()
    log.handlers, log.propagate, log.level = [observability.handler(buf)], False, logging.INFO
    try:
        yield log, buf
    finally:
        log.handlers, log.propagate, log.level = saved


@pytest.fixture
def sole() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    with _sole() as got:
        yield got


def _without_time(text: str) -> list[str]:
    import re
    return [re.sub(r'"timestamp":"[^"]*"', '"timestamp":"T"', line) for line in text.split("\n")]


def _emit(line: observability.Line, correlation: str, **fields: Any) -> None:
    with observability.invocation(correlation, "http"):
        line.info(**fields)


@settings(max_examples=150, deadline=None)
@given(route=st.text(max_size=20), status=st.integers(100, 599), duration=st.floats(allow_nan=False),
       correlation=st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True))
def test_a_line_written_the_short_way_is_the_line_logging_writes(route: str, status: int, duration: float,
                                                                 correlation: str) -> None:
    with _sole() as (log, buf):
        _compare_short_and_standard(log, buf, route, status, duration, correlation)


def _compare_short_and_standard(log: logging.Logger, buf: io.StringIO, route: str, status: int, duration: float,
                                correlation: str) -> None:
    line = observability.Line("request")
    fields = {"http_method": "GET", "route": route, "status": status, "duration_ms": duration}
    _emit(line, "first", **fields)  # cuts the template
    created = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        created.append(1)
        return factory(*args, **kwargs)
    logging.setLogRecordFactory(counting)
    try:
        _emit(line, correlation, **fields)
    finally:
        logging.setLogRecordFactory(factory)
    other = io.StringIO()
    log.addHandler(observability.handler(other))  # now two handlers: the standard way
    try:
        _emit(line, correlation, **fields)
    finally:
        log.removeHandler(log.handlers[-1])
    assert created == []  # no record: the short way
    assert _without_time(buf.getvalue())[1] == _without_time(other.getvalue())[0]
    assert json.loads(buf.getvalue().split("\n")[1])["correlation_id"] == correlation


def test_a_line_follows_the_loggers_level_handlers_and_the_formatters_keys(
        sole: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    log, buf = sole
    line = observability.Line("request")
    _emit(line, "a", route="/a")
    _emit(line, "b", route="/b")  # the short way
    log.setLevel(logging.WARNING)
    _emit(line, "c", route="/c")
    log.setLevel(logging.INFO)
    log.handlers[0].formatter.append_keys(extra_key="k")  # type: ignore[union-attr]
    _emit(line, "d", route="/d")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc;Parent=x")
    _emit(line, "e", route="/e")
    lines = [json.loads(one) for one in buf.getvalue().split("\n") if one]
    assert [one["correlation_id"] for one in lines] == ["a", "b", "d", "e"]
    assert [one.get("extra_key") for one in lines] == [None, None, "k", "k"]
    assert lines[-1]["xray_trace_id"] == "1-abc"


def test_a_line_is_redacted_the_short_way_too(sole: tuple[logging.Logger, io.StringIO]) -> None:
    observability.known_secrets([SECRET])
    line = observability.Line("request")
    _emit(line, "a", route="/x")
    _emit(line, SECRET, route=f"/files/tok?token={SECRET}")
    assert SECRET not in sole[1].getvalue()


_FIXED = {"http_method": "GET", "store_requests": 0}


def _prefilled(line: observability.Line, route: str, status: int) -> observability.Prefilled:
    _emit(line, "first", **_FIXED, route=route, status=status, duration_ms=0.0)  # the short way's template
    form = line.prefill({**_FIXED, "route": route, "status": status, "duration_ms": 1.5}, ["duration_ms"])
    assert form is not None
    return form


@settings(max_examples=150, deadline=None)
@given(route=st.text(max_size=20), status=st.integers(100, 599), duration=st.floats(allow_nan=False),
       correlation=st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True), before=st.sampled_from(["", "plain\n"]))
def test_a_prefilled_line_is_the_line_info_writes_after_the_text_before_it(
        route: str, status: int, duration: float, correlation: str, before: str) -> None:
    """Whatever the fixed values (quotes, control characters) and the varying ones: the same line as
    ``info`` writes in an invocation, in one write after ``before`` when both go to stderr."""
    with _sole() as (log, buf):
        log.handlers = [observability.handler()]  # stderr, as ``setup()`` leaves it
        line = observability.Line("request")
        form = _prefilled(line, route, status)
        out = io.StringIO()
        log.handlers[0].setStream(out)  # type: ignore[attr-defined]
        real, sys.stderr = sys.stderr, out
        try:
            assert form.defer(correlation, before, duration_ms=duration) is True
            observability.flush_deferred()
            _emit(line, correlation, **_FIXED, route=route, status=status, duration_ms=duration)
        finally:
            sys.stderr = real
        written = out.getvalue()
        assert written.startswith(before)
        first, second = written[len(before):].split("\n")[:2]
        assert _without_time(first) == _without_time(second)


def test_a_prefilled_line_gives_way_when_the_configuration_or_a_values_type_changes(
        sole: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    log, buf = sole
    line = observability.Line("request")
    form = _prefilled(line, "/a", 200)
    assert form.defer("b", duration_ms=1) is False  # an int: json may write it otherwise than a float
    assert form.defer("b", duration_ms=0.5, other=1) is False
    log.setLevel(logging.WARNING)
    assert form.defer("c", duration_ms=0.5) is True  # written as info would: not at all
    log.setLevel(logging.INFO)
    log.handlers[0].formatter.append_keys(extra_key="k")  # type: ignore[union-attr]
    assert form.defer("d", duration_ms=0.5) is False
    log.handlers[0].formatter.remove_keys(["extra_key"])  # type: ignore[union-attr]
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc;Parent=x")
    assert form.defer("e", duration_ms=0.5) is False
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    log.addHandler(observability.handler(io.StringIO()))
    assert form.defer("f", duration_ms=0.5) is False
    log.removeHandler(log.handlers[-1])
    assert form.defer("g", duration_ms=0.5) is True
    observability.flush_deferred()
    assert [json.loads(one)["correlation_id"] for one in buf.getvalue().split("\n") if one] == ["first", "g"]


def test_deferred_lines_wait_for_a_flush_and_keep_their_order_and_the_time_they_were_deferred(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is written until ``flush_deferred``; then each line after its text before it, in the
    order deferred, as ``info`` writes it, with the time of its ``defer``."""
    with _sole() as (log, _):
        log.handlers = [observability.handler()]  # stderr, as ``setup()`` leaves it
        line = observability.Line("request")
        forms = [_prefilled(line, route, 200) for route in ("/a", "/b")]
        out = io.StringIO()
        log.handlers[0].setStream(out)  # type: ignore[attr-defined]
        monkeypatch.setattr(sys, "stderr", out)
        calls = [(forms[i % 2], f"id{i}", f"before {i}\n", i + 0.5) for i in range(5)]
        monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
        for form, correlation, before, duration in calls:
            assert form.defer(correlation, before, duration_ms=duration) is True
        assert out.getvalue() == ""
        monkeypatch.setattr(time, "time", lambda: 1_800_000_000.75)
        observability.flush_deferred()
        deferred = out.getvalue().split("\n")
        assert deferred[0::2][:5] == [before.rstrip("\n") for _, _, before, _ in calls]
        monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
        out.seek(0)
        out.truncate()
        for form, correlation, _, duration in calls:
            _emit(line, correlation, **_FIXED, route=["/a", "/b"][forms.index(form)], status=200,
                  duration_ms=duration)
        assert deferred[1::2][:5] == out.getvalue().split("\n")[:5]  # the time included


def test_at_most_so_many_lines_wait_to_be_written(sole: tuple[logging.Logger, io.StringIO]) -> None:
    _, buf = sole
    form = _prefilled(observability.Line("request"), "/a", 200)
    written = len(buf.getvalue().splitlines())
    for i in range(observability.DEFERRED_LINES - 1):
        assert form.defer(f"id{i}", duration_ms=0.5) is True
    assert len(buf.getvalue().splitlines()) == written
    assert form.defer("last", duration_ms=0.5) is True
    assert len(buf.getvalue().splitlines()) == written + observability.DEFERRED_LINES


def test_no_line_is_prefilled_before_info_has_written_one_of_its_shape(sole: tuple[logging.Logger, io.StringIO]) -> None:
    line = observability.Line("request")
    assert line.prefill({"route": "/a"}, []) is None
    _emit(line, "a", route="/a")
    assert line.prefill({"route": "/b"}, []) is not None
    assert line.prefill({"route": 7}, []) is None  # another shape


def test_a_prefilled_line_is_redacted_too(sole: tuple[logging.Logger, io.StringIO]) -> None:
    observability.known_secrets([SECRET])
    line = observability.Line("request")
    _emit(line, "a", route="/x", n=1.0)
    form = line.prefill({"route": f"/files/tok?token={SECRET}", "n": 1.0}, ["n"])
    assert form is not None
    assert form.defer(SECRET, n=2.0) is True
    observability.flush_deferred()
    assert SECRET not in sole[1].getvalue()
