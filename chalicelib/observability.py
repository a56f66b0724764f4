"""Logs, metrics and traces of every handler, with Powertools: one JSON log line per event, CloudWatch
EMF metrics per invocation, X-Ray subsegments when tracing is on.

A leaf module (it imports nothing of the project), so every layer may report through it: the store
adapters count their requests, the event functions their publications, the HTTP edge its requests.
Each HTTP request and each event record runs in an ``invocation``: it carries the correlation id that
every log line of that work shows, and the counters flushed as one EMF document when it ends.

Nothing secret reaches a log line: ``redact`` strips signed-URL tokens, presigned query signatures,
bearer credentials and the configured secrets (``known_secrets``) from every formatted record,
whatever module logged it and whatever it put in ``extra``.

Metrics go out as EMF on stdout in Lambda (CloudWatch parses them from the function's log) and
when ``STACFLOW_METRICS=emf``; elsewhere they are counted and dropped. Tracing needs the X-Ray SDK
and Lambda (``POWERTOOLS_TRACE_DISABLED`` turns it off); locally the hooks are no-ops.
"""
from __future__ import annotations

import atexit
import contextvars
import logging
import math
import os
import random
import re
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

SERVICE = "stacflow"
NAMESPACE = "stacflow"
LOGGERS = ("stacflow", "chalicelib")  # every module logger is one of these or a child
REDACTED = "<redacted>"

# A client's own correlation id is kept only if it is short and plain (it lands in every log line).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FILES_TOKEN = re.compile(r"(/files/)[^\s?#\"'\\]+")
# Query parameters carrying credentials: X-Amz-Signature/Credential/Security-Token, Signature, token, …
_SECRET_PARAM = re.compile(r"([?&][^=&\s\"'#\\]*(?:signature|credential|token|secret|password|key)[^=&\s\"'#\\]*=)"
                           r"[^&\s\"'#\\]*", re.IGNORECASE)
_BEARER = re.compile(r"((?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_secrets: tuple[str, ...] = ()


def known_secrets(values: Iterable[str | None]) -> None:
    """Values that must never appear in a log line (tokens, signing keys), whatever logs them."""
    global _secrets
    _secrets = tuple(sorted({v for v in values if v and len(v) >= 4} | set(_secrets), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` without signed-URL tokens, query secrets, bearer credentials or configured secrets."""
    # Each pattern runs only where it can match (every log line comes through here: most have none).
    if "/files/" in text:
        text = _FILES_TOKEN.sub(r"\g<1>" + REDACTED, text)
    if "=" in text and ("?" in text or "&" in text):
        text = _SECRET_PARAM.sub(r"\g<1>" + REDACTED, text)
    lower = text.lower()  # beyond ASCII, re's case folding knows more than lower() (ſ, ı, K): run it
    if not text.isascii() or "bearer" in lower or "basic" in lower or "token" in lower:
        text = _BEARER.sub(r"\g<1>" + REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# -- invocations: one HTTP request or one event record ---------------------------------------------
@dataclass(slots=True)  # one per request: made and dropped at every request's pace
class Invocation:
    correlation_id: str
    kind: str  # "http" | "event"
    started: float = field(default_factory=time.perf_counter)
    counts: dict[str, int] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> samples (milliseconds)
    lock: threading.Lock = field(default_factory=threading.Lock)


_current: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("stacflow_invocation", default=None)
# Worker threads of a pool do not inherit the context: their counts go to the latest invocation
# (exact in Lambda, one invocation per process at a time; approximate under the threaded local server).
_latest: Invocation | None = None


def correlation_id() -> str | None:
    inv = _current.get()
    return inv.correlation_id if inv else None


def new_correlation_id(*candidates: str | None) -> str:
    """The first usable candidate (a client's ``X-Request-Id``, API Gateway's request id), else a new one."""
    for value in candidates:
        if value and _CLIENT_ID.match(value):
            return value
    # An id, not a secret (a client may choose its own): 128 random bits without a system call per request.
    return "%032x" % random.getrandbits(128)


class invocation:  # noqa: N801 (used as a function: ``with invocation(...) as inv``)
    """Run one request or event record: its log lines carry ``correlation``; its metrics flush at the end.
    ``started``: when the work began (``time.perf_counter()``), if before this call. (A class, not a
    generator: it wraps every request, cached pages included.)"""

    __slots__ = ("_inv", "_token", "_dimensions")

    def __init__(self, correlation: str, kind: str, started: float | None = None, **dimensions: str) -> None:
        self._inv = Invocation(correlation, kind) if started is None else Invocation(correlation, kind, started)
        self._dimensions = dimensions
        self._token: contextvars.Token[Invocation | None] | None = None

    def __enter__(self) -> Invocation:
        global _latest
        setup()
        self._token = _current.set(self._inv)
        _latest = self._inv
        return self._inv

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _current.reset(self._token)
        _flush(self._inv, self._dimensions)


def _active() -> Invocation | None:
    return _current.get() or _latest


def count(metric: str, n: int = 1) -> None:
    """Add ``n`` to a counter of the running invocation (a no-op outside one)."""
    inv = _active()
    if inv is not None:
        with inv.lock:
            inv.counts[metric] = inv.counts.get(metric, 0) + n


def observe_ms(metric: str, value: float) -> None:
    inv = _active()
    if inv is not None:
        with inv.lock:
            inv.values.setdefault(metric, []).append(value)


def event_lag(event_time: str | None) -> None:
    """Record the lag from an object's write (S3 ``eventTime``, ISO 8601) to now, its publication."""
    if not event_time:
        return
    from datetime import datetime
    try:
        written = datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return
    observe_ms("EventLag", max(0.0, (time.time() - written) * 1000))


def metrics_enabled() -> bool:
    wanted = os.environ.get("STACFLOW_METRICS", "").lower()
    if wanted:
        return wanted == "emf"
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _flush(inv: Invocation, dimensions: dict[str, str]) -> None:
    if not metrics_enabled() or not (inv.counts or inv.values):
        return
    # EphemeralMetrics: no state shared between instances, so concurrent requests never mix.
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for name, dim in dimensions.items():
        metrics.add_dimension(name=name, value=dim)
    with inv.lock:
        for name, n in inv.counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=n)
        for name, samples in inv.values.items():
            for sample in samples:
                metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=sample)
    metrics.add_metadata(key="correlation_id", value=inv.correlation_id)
    metrics.flush_metrics()


# -- logs ------------------------------------------------------------------------------------------
_setup_lock = threading.Lock()
_is_setup = False


class _Correlation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id()
        return True


# -- the service's own lines, serialised through templates ----------------------------------------
# The service logger's lines (the access line: one per request) come in a few shapes, each formatted
# by Powertools at ~25 µs. A template per shape is cut from Powertools' own output for a copy of the
# record whose varying values (its time and scalar extras) are replaced by sentinels; later records of
# that shape fill the slots with their values, encoded as Powertools' serializer encodes them. Anything
# a template cannot hold (arguments, exceptions, non-scalar extras, formatter keys that read other
# record attributes) is formatted by Powertools itself.
_TEMPLATED = frozenset({SERVICE})
_MAX_TEMPLATES = 64
# Record attributes that are part of a template's key (so the formatter's keys may read them).
_KEYED = ("name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName", "msg")
_FIELD = re.compile(r"%\((\w+)\)")
_SCALAR = (str, int, float)  # a slot each; bool and None values are part of the key (None is left out)
_SENTINEL = "stacflow" + os.urandom(6).hex()
_STAMP_CREATED, _STAMP_MSECS = 999_999_999.0, 987.0  # a time no record has


@dataclass(frozen=True)
class _Template:
    state: tuple[Any, ...]  # the formatter's keys, context keys and trace id it was cut under
    parts: tuple[str, ...] | None  # the line around its slots; None: this shape is not templated
    slots: tuple[str | None, ...] = ()  # per slot: the extra it holds, or None: the timestamp
    form: str = field(init=False)  # the parts joined by "%s" (their own "%" doubled): one formatting fills it

    def __post_init__(self) -> None:
        object.__setattr__(self, "form", "%s".join(p.replace("%", "%%") for p in self.parts or ()))


def _encoder(serialize: Any) -> Any:
    def encode(value: Any) -> str:
        kind = type(value)
        if kind is str:
            # What json.dumps writes for a plain string whatever its options; anything else, it writes.
            if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
                return '"' + value + '"'
        elif kind is int:
            return int.__repr__(value)
        elif kind is float and math.isfinite(value):
            return float.__repr__(value)
        return str(serialize(value))
    return encode


def _formatter() -> logging.Formatter:
    from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter
    from aws_lambda_powertools.shared.constants import XRAY_TRACE_ID_ENV
    reserved = frozenset(RESERVED_LOG_ATTRS)

    class Redacting(LambdaPowertoolsFormatter):
        def __init__(self) -> None:
            super().__init__(service=SERVICE)
            self.templates: dict[tuple[Any, ...], _Template] = {}
            self.encode = _encoder(self.json_serializer)
            self._time: tuple[Any, str | None, str] = (None, None, "")  # (second and format, text around the ms)

        def formatTime(self, record: Any, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
            """Powertools' time of ``record``. In its usual form (time codes, ``%F`` the milliseconds) the
            text around the milliseconds is cut from Powertools' own once a second: ``localtime`` and
            ``strftime`` per line cost ~8 % of a cached page's server time. (A time zone changed by
            ``time.tzset()`` shows from the next second.)"""
            if self.use_rfc3339_iso8601 or self.use_datetime_directive:
                return str(super().formatTime(record, datefmt))
            key = (math.floor(record.created), datefmt, self.datefmt, self.converter)
            cut = self._time  # one tuple: threads swap it whole
            if cut[0] != key:
                cut = self._time = (key, *self._cut_time(key[0], datefmt))
            if cut[1] is None:
                return str(super().formatTime(record, datefmt))
            return "%s%03d%s" % (cut[1], record.msecs, cut[2])

        def _cut_time(self, second: int, datefmt: str | None) -> tuple[str | None, str]:
            """The text before and after the milliseconds in Powertools' time of ``second`` (None if the
            milliseconds are not once in it, as two different ones show)."""
            texts = []
            for msecs in (987.0, 123.0):
                stamp: Any = _Stamp(second)  # what formatTime reads of a record
                stamp.msecs = msecs
                texts.append(str(super().formatTime(stamp, datefmt)))
            if texts[0].count("987") != 1 or texts[0].replace("987", "123") != texts[1]:
                return None, ""
            before, after = texts[0].split("987")
            return before, after

        def format(self, record: logging.LogRecord) -> str:
            template = self.template(record)
            if template is None:
                return redact(super().format(record))
            return redact(self.fill(template, record.__dict__, record))

        def template(self, record: logging.LogRecord) -> _Template | None:
            """The template of ``record``'s shape, cut now if the formatter has none under its current
            keys; None if no template can hold it."""
            if record.name not in _TEMPLATED or record.args or record.exc_info or record.exc_text \
                    or record.stack_info or type(record.msg) is not str:
                return None
            fields = record.__dict__
            extras = [(k, v) for k, v in fields.items() if k not in reserved]
            shape = []
            for name, value in extras:
                kind = type(value)
                if kind in _SCALAR:
                    shape.append((name, kind))
                elif value is None or kind is bool:
                    shape.append((name, value))
                else:
                    return None
            key = (*(fields[a] for a in _KEYED), *shape)
            template = self.templates.get(key)
            if template is None or not self.current(template):
                if len(self.templates) >= _MAX_TEMPLATES:
                    self.templates.clear()
                template = self.templates[key] = self._cut(record, extras, self._state())
            return template if template.parts is not None else None

        def _state(self) -> tuple[Any, ...]:
            return self.log_format, self.thread_safe_get_current_keys(), os.environ.get(XRAY_TRACE_ID_ENV)

        def current(self, template: _Template) -> bool:
            """Whether ``template`` was cut under the formatter's present keys, context and trace id."""
            return template.state == self._state()

        def fill(self, template: _Template, values: Mapping[str, Any], stamp: Any) -> str:
            """``template``'s line for ``values`` (its slots by name), stamped at ``stamp``'s time (a
            record, or anything with its ``created`` and ``msecs``); not redacted yet."""
            assert template.parts is not None
            encode = self.encode
            return template.form % tuple([encode(self.formatTime(stamp) if slot is None else values[slot])
                                          for slot in template.slots])

        def _cut(self, record: logging.LogRecord, extras: list[tuple[str, Any]], state: tuple[Any, ...]) -> _Template:
            """The template of ``record``'s shape: Powertools' line for a copy holding sentinels."""
            snapshot = (dict(state[0]), dict(state[1]), state[2])
            read = {f for value in self.log_format.values() if isinstance(value, str) for f in _FIELD.findall(value)}
            if not read <= {*_KEYED, "asctime"}:
                return _Template(snapshot, None)
            copy = logging.makeLogRecord(record.__dict__)
            copy.created, copy.msecs = _STAMP_CREATED, _STAMP_MSECS
            wanted: dict[str, str | None] = {self.encode(self.formatTime(copy)): None}
            for i, (name, value) in enumerate(extras):
                if type(value) in _SCALAR:
                    sentinel: Any = {str: f"{_SENTINEL}{i}", int: 987_654_321_000 + i, float: 987_654_321.5 + i}[type(value)]
                    setattr(copy, name, sentinel)
                    wanted[self.encode(sentinel)] = name
            line = super().format(copy)
            found = []
            for text, slot in wanted.items():
                count = line.count(text)
                if count == 1:
                    found.append((line.index(text), text, slot))
                elif count or slot is not None:  # a slot that is not in the line once: not templated
                    return _Template(snapshot, None)
            parts, slots, at = [], [], 0
            for start, text, slot in sorted(found, key=lambda f: f[0]):
                parts.append(line[at:start])
                slots.append(slot)
                at = start + len(text)
            parts.append(line[at:])
            return _Template(snapshot, tuple(parts), tuple(slots))

    return Redacting()


def handler(stream: Any = None) -> logging.Handler:
    """A handler writing the service's JSON lines (redacted, with correlation ids) to ``stream`` (stderr)."""
    out = logging.StreamHandler(stream)
    out.setFormatter(_formatter())
    out.addFilter(_Correlation())
    return out


def setup(level: str | None = None) -> None:
    """Structured JSON logs (Powertools' formatter, redacted) on the project's loggers; once per process."""
    global _is_setup
    if _is_setup:
        return
    with _setup_lock:
        if _is_setup:
            return
        out = handler()
        in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        for name in LOGGERS:
            logger = logging.getLogger(name)
            # Ours only: Chalice gives its app's logger ("stacflow") a plain-text handler of its own.
            logger.handlers = [out]
            logger.setLevel(level or os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO")
            logger.propagate = not in_lambda  # Lambda's root handler would print every line twice
        _is_setup = True


def logger() -> logging.Logger:
    setup()
    return logging.getLogger(SERVICE)


class _Stamp:
    """A time as a record holds it, for ``formatTime`` (as ``LogRecord`` computes it)."""

    __slots__ = ("created", "msecs")

    def __init__(self, now: float) -> None:
        self.created = now
        self.msecs = int((now - int(now)) * 1000) + 0.0


def _sole_handler(log: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The one handler a record of ``log`` at INFO reaches, if it is a service handler (``handler()``:
    a stream, the service's formatter, the correlation filter alone) and nothing else could change or
    see the record (no logger filter, no other handler up the hierarchy); else None."""
    if log.filters or log.disabled:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = log
    while current is not None:
        for one in current.handlers:
            if found is not None:
                return None
            found = one
        if not current.propagate:
            break
        current = current.parent
    if type(found) is not logging.StreamHandler or found.level > logging.INFO:
        return None
    filters = found.filters
    if len(filters) != 1 or type(filters[0]) is not _Correlation or not hasattr(found.formatter, "fill"):
        return None
    return found


class Line:
    """One kind of line of the service logger, from one call site: ``Line(message).info(**fields)``
    writes what ``logger().info(message, extra=fields)`` at that call site would write.

    While a service handler is the only one the line reaches (the configuration ``setup()`` makes),
    the line is its formatter's template for the first such record (``_formatter``), filled in and
    written to the handler's stream: no record, no handler chain, ~5x cheaper. Any other configuration
    (a handler or filter added, another formatter, a level) gets the record through ``logging``."""

    def __init__(self, message: str) -> None:
        self.message = message
        # Per shape of the values (their names and types): the handler and template it was cut for.
        self._cuts: dict[tuple[Any, ...], tuple[logging.Handler, _Template]] = {}
        self._log: logging.Logger | None = None

    def info(self, **fields: Any) -> None:
        log = self._log
        if log is None:
            log = self._log = logger()
        if not log.isEnabledFor(logging.INFO):
            return
        out = _sole_handler(log)
        if out is None:
            log.info(self.message, extra=fields, stacklevel=2)
            return
        formatter: Any = out.formatter
        values = {**fields, "correlation_id": correlation_id()}  # what the correlation filter adds
        shape = (*values, *map(type, values.values()))
        cut = self._cuts.get(shape)
        if cut is None or cut[0] is not out or not formatter.current(cut[1]):
            # The line the standard way (a record, filtered, handled), and the template of its shape.
            fn, lno, func, sinfo = log.findCaller(False, 2)
            record = log.makeRecord(log.name, logging.INFO, fn, lno, self.message, (), None, func, fields, sinfo)
            out.filter(record)
            template = formatter.template(record)
            if template is not None and len(self._cuts) < _MAX_TEMPLATES:
                self._cuts[shape] = (out, template)
            log.handle(record)
            return
        _emit(out, redact(formatter.fill(cut[1], values, _Stamp(time.time()))) + out.terminator, "", self.message)

    def prefill(self, fields: Mapping[str, Any], varying: Iterable[str]) -> Prefilled | None:
        """What ``info(**fields)`` writes in an invocation, with every field but ``varying`` filled in
        once: for a caller writing many lines that differ only in those, their time and correlation id
        (``Prefilled.defer``). None unless ``info`` has written a line of this shape the short way
        under the present configuration (the fields' values may differ, their names and types not)."""
        log = self._log
        out = None if log is None else _sole_handler(log)
        values = {**fields, "correlation_id": ""}  # a str, as in an invocation
        cut = self._cuts.get((*values, *map(type, values.values())))
        if out is None or cut is None or cut[0] is not out:
            return None
        formatter: Any = out.formatter
        template = cut[1]
        if not formatter.current(template):
            return None
        assert template.parts is not None
        keep = {*varying, "correlation_id"}
        parts, slots = [template.parts[0]], []
        for slot, part in zip(template.slots, template.parts[1:]):
            if slot is None or slot in keep:
                slots.append(slot)
                parts.append(part)
            else:
                parts[-1] += formatter.encode(fields[slot]) + part
        return Prefilled(self, out, template, _Template(template.state, tuple(parts), tuple(slots)),
                         {name: type(fields[name]) for name in varying})


def _emit(out: logging.StreamHandler[Any], text: str, before: str, message: str) -> None:
    """Write ``text`` (whole lines) to the handler's stream after ``before`` (text for stderr: in the same
    write when the handler writes there too), as ``StreamHandler.emit`` would (``message``: for its error report)."""
    if before and out.stream is not sys.stderr:
        sys.stderr.write(before)
        before = ""
    out.acquire()
    try:
        stream = out.stream
        stream.write(before + text)
        if hasattr(stream, "flush"):  # as ``out.flush()``, whose lock is ours already
            stream.flush()
    except Exception:  # as StreamHandler.emit: reported, never raised to the caller
        out.handleError(logging.makeLogRecord({"msg": message, "name": SERVICE}))
    finally:
        out.release()


@dataclass(frozen=True)
class Prefilled:
    """A line's template with its fixed fields filled in (``Line.prefill``), for the handler it was cut for."""

    line: Line
    handler: logging.StreamHandler[Any]
    template: _Template  # what it was filled from: while that is current, so is this
    filled: _Template  # the line with the fixed fields in; its slots: the varying fields, the correlation id, the time
    kinds: Mapping[str, type]  # the varying fields' types (another type may be written differently)

    def defer(self, correlation: str, before: str = "", **varying: Any) -> bool:
        """Write what ``line.info(**fields, **varying)`` would in an invocation of ``correlation``, after
        ``before`` (text for stderr: in the same write when the line goes there too), later: the line is
        formatted and written with others by ``flush_deferred``, or once ``DEFERRED_LINES`` wait, stamped
        with the time of this call. False (nothing deferred) if the logging configuration has changed
        since the prefill, or a value's type differs from the prefilled one's: the caller writes both
        the usual way. For a server answering in tens of
        microseconds (``stacflow serve``'s cached pages): formatting and writing the line on the spot
        took ~20 µs of a ~100 µs answer on its client's clock. Its caller flushes at least every half
        second, before any line it writes the usual way, and at exit."""
        entry = self._entry(correlation, before, varying)
        if entry is None:
            return False
        with _deferred_lock:
            _deferred.append(entry)
            full = len(_deferred) >= DEFERRED_LINES
        if full:
            flush_deferred()
        return True

    def _entry(self, correlation: str, before: str, varying: dict[str, Any]) -> _Entry | None:
        """What the line needs to be written, checked against the configuration now (None: it changed,
        or a value's type differs)."""
        log, out, kinds = self.line._log, self.handler, self.kinds
        if log is None or _sole_handler(log) is not out:
            return None
        for name, value in varying.items():
            if type(value) is not kinds.get(name):
                return None
        if not log.isEnabledFor(logging.INFO):
            return None, time.time(), varying, before
        if not out.formatter.current(self.template):  # type: ignore[union-attr]
            return None
        varying["correlation_id"] = correlation  # a dict of this call's own
        return self, time.time(), varying, before


# A deferred line: its form (None: only ``before`` is written), the time it stands for, its values, the text before it.
_Entry = tuple["Prefilled | None", float, dict[str, Any], str]
DEFERRED_LINES = 64  # lines ``Prefilled.defer`` keeps at most before writing them
_deferred: list[_Entry] = []
_deferred_lock = threading.Lock()
_flush_lock = threading.Lock()  # one flush at a time: lines leave in the order they were deferred


def flush_deferred() -> None:
    """Write the lines ``Prefilled.defer`` holds, in order, one write per run of lines for one handler."""
    if not _deferred:
        return
    with _flush_lock:
        with _deferred_lock:
            entries = _deferred[:]
            _deferred.clear()
        _write_entries(entries)


atexit.register(flush_deferred)


def _write_entries(entries: list[_Entry]) -> None:
    """Write the deferred lines in order: one write per run of them for one handler."""
    out: logging.StreamHandler[Any] | None = None  # None: a run of texts for stderr alone
    text: list[str] = []
    before: list[str] = []
    message = ""
    for form, created, values, ahead in entries:
        handler = form.handler if form is not None else None
        if handler is not out and (text or before):
            _emit_or_stderr(out, text, before, message)
            text, before = [], []
        out = handler
        if form is None:
            before.append(ahead)
            continue
        formatter: Any = form.handler.formatter
        line = redact(formatter.fill(form.filled, values, _Stamp(created)))
        if form.handler.stream is sys.stderr:  # its text before it in the same write
            text += (ahead, line, form.handler.terminator)
        else:
            before.append(ahead)
            text += (line, form.handler.terminator)
        message = form.line.message
    if text or before:
        _emit_or_stderr(out, text, before, message)


def _emit_or_stderr(out: logging.StreamHandler[Any] | None, text: list[str], before: list[str], message: str) -> None:
    if out is None:
        sys.stderr.write("".join(before))
    else:
        _emit(out, "".join(text), "".join(before), message)


# -- traces ----------------------------------------------------------------------------------------
_tracer: Any = None
_tracer_checked = False


def _get_tracer() -> Any:
    global _tracer, _tracer_checked
    if not _tracer_checked:
        _tracer_checked = True
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() \
                not in ("1", "true"):
            try:
                import aws_xray_sdk  # noqa: F401  (not in the Lambda runtime: tracing is opt-in by packaging it)
                from aws_lambda_powertools import Tracer
                _tracer = Tracer(service=SERVICE)
            except ImportError:
                _tracer = None
    return _tracer


@contextmanager
def trace(name: str) -> Iterator[None]:
    """An X-Ray subsegment named ``name`` when tracing is on; nothing otherwise."""
    tracer = _get_tracer()
    if tracer is None:
        yield
        return
    with tracer.provider.in_subsegment(name=name) as sub:
        sub.put_annotation(key="correlation_id", value=correlation_id() or "")
        yield
