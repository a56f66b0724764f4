"""An append-only log of create-only objects folded onto a compare-and-swap snapshot.

Layout under ``prefix``: ``log/<key>.json`` (one object per write, never rewritten) and
``snapshot.json`` = ``{"covered": <last folded key>, "state": <fold of every entry <= covered>}``.
Any number of processes append without coordination; a reader revalidates its warm copy with
ONE ``LIST`` (start_after the covered key: it returns the tail *and* the snapshot's ETag, since
``snapshot.json`` sorts after ``log/``) and GETs only entries it has not seen.

Entry keys sort by time (microseconds, then a random suffix). A write may land after a
later-keyed one, so compaction folds only entries keyed more than ``MARGIN_S`` before the moment
its LIST *started*: an entry whose PUT ended more than ``MARGIN_S / 2`` after its key's time is
reported as failed (the client retries; folds are idempotent), so every acknowledged entry keyed
before that cutoff was already stored when the LIST began and is in it. The cutoff is taken before
the LIST, never after: a refresh can take arbitrarily long (S3 retries, a starved CPU), and a
cutoff taken after it would cover keys whose writes landed behind the LIST. This holds while the
clocks of any two processes differ by less than ``MARGIN_S / 2``.

Entries are written with the store's ``create_entry``: on the local store data and name are synced
together, so a crash of the machine before the write was acknowledged can leave an entry empty or
cut short. Such an entry does not parse and is read as never written (the client retried it under
another key); a reader remembers it and does not fetch it again.

Entries are never deleted, so ``refold`` can rebuild a snapshot from the whole log (the
``stacflow repair-logs`` command) if a snapshot ever covers an entry it does not hold.

``tip.json`` (logs created with ``tip=True``: the experiments' logs, which every search reads and
whose tail grows with every run's writes) spares a warm reader the LIST. A reader GETs the tip with
``If-None-Match`` before it LISTs; a 304 for the version it *confirmed* at an earlier LIST means
no append was acknowledged since that LIST began, so its fold is current: one conditional GET,
whatever the tail's length. Tip versions never come back (each body is unique).

An append PUTs its tip (body: the entry's key) side by side with its entry, so the tip costs no
extra round trip; it may therefore land first. Two rules make that safe:
* a reader confirms a tip version only if the entry it names is in its fold after the LIST (a tip
  naming an entry still in flight is not confirmed: the next read LISTs again);
* a writer, once entry and tip have landed, GETs the tip with ``If-None-Match`` its own version:
  304 (the common case) acknowledges the append; a newer version (another append's tip landed
  after it) is followed by one more tip PUT, ``after <key>``, which starts after the entry landed
  and so needs no confirmation (the protocol before tips went side by side), then the ack.
Why an acknowledged entry is seen by any read that starts after the ack: if that read gets a 304,
the tip stayed at the version V the reader confirmed at a LIST that began after its GET g. The
writer's check saw its own tip current once its entry had landed, at time c. If c came after g,
that tip is V, which names the entry, so confirming V needed the entry in the fold; if c came
before g, the entry landed before the LIST. (A writer's ``after`` PUT landing after g would have
changed the tip.) Compaction's cutoff is taken before the tip's GET, as before the LIST: an
acknowledged entry keyed before it was acknowledged before the GET, hence is in the fold. A repair
PUTs a tip (``repair <key>``) after its snapshot, so every process reloads the repaired snapshot. A
log without a tip (written before tips existed) is LISTed on every read, as it always was.
"""
from __future__ import annotations

import itertools
import json
import math
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, TypeVar

import orjson

from ..mlflowapi.errors import unavailable
from ..store import NotFound, NotModified, ObjectStore, PreconditionFailed

MARGIN_S = 10.0
COMPACT_AFTER = 200  # settled tail entries that trigger a compaction
_TS_DIGITS = 17  # microseconds since the epoch, zero-padded so keys sort by time

Fold = Callable[[Any, dict[str, Any]], None]
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_generations = itertools.count(1)  # unique across every log of the process
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="store")
        return _pool


def parallel(calls: list[Callable[[], T]], side_by_side: bool = True) -> list[T]:
    """Run independent store calls at once (a write's two PUTs, a cold tail's GETs); re-raise the first error.

    Not ``side_by_side`` (the store's ``side_by_side``: a local directory), one after the other on
    this thread, in order; every call still runs before the first error is re-raised."""
    if len(calls) < 2:
        return [c() for c in calls]
    if not side_by_side:
        results: list[T] = []
        error: BaseException | None = None
        for call in calls:
            try:
                results.append(call())
            except Exception as err:  # the others still run, as they would side by side
                error = error or err
        if error is not None:
            raise error
        return results
    futures: list[Future[T]] = [_executor().submit(c) for c in calls[1:]]
    try:
        first = calls[0]()  # on this thread: one hand-off fewer (each costs a scheduling delay under load)
    finally:
        wait(futures)  # every call has ended before this returns or raises
    return [first, *(f.result() for f in futures)]


def background(call: Callable[[], T], side_by_side: bool = True) -> Future[T]:
    """Start one store call now, to overlap with another (its result is read later); not
    ``side_by_side`` (see ``parallel``), made now on this thread."""
    if side_by_side:
        return _executor().submit(call)
    done: Future[T] = Future()
    try:
        done.set_result(call())
    except Exception as err:
        done.set_exception(err)
    return done


def new_entry_key(after: str | None = None) -> str:
    """A time-sortable unique key, strictly after ``after`` (keeps one writer's causal order)."""
    now = int(time.time() * 1_000_000)
    if after:
        now = max(now, entry_time_us(after) + 1)
    return f"{now:0{_TS_DIGITS}d}-{uuid.uuid4().hex[:12]}"


def entry_time_us(key: str) -> int:
    return int(key.split("-", 1)[0])


class FoldedLog:
    """One log's warm, revalidated fold. Thread-safe; hold ``view()`` while reading the state."""

    def __init__(self, store: ObjectStore, prefix: str, fold: Fold, empty: Callable[[], Any], *,
                 tip: bool = False) -> None:
        self.store = store
        self.tip = tip  # keep a tip (worth its PUT per append where reads outnumber appends)
        self.prefix = prefix.rstrip("/") + "/"
        self._fold = fold
        self._empty = empty
        self._lock = threading.RLock()
        self._snap_etag: str | None = None
        self._snap_body: bytes | None = None
        self._covered = ""  # last key folded into the snapshot
        self._tail: dict[str, dict[str, Any]] = {}  # entries after the snapshot, by key
        self._state: Any = empty()
        self._last_key = ""
        self._tip_etag: str | None = None  # the tip's version confirmed by the last LIST (module docstring)
        self.generation = next(_generations)  # renewed whenever the fold changes (keys caches derived from it)
        self._own: dict[str, dict[str, Any]] = {}  # entries this process appended: no GET needed later
        self._unreadable: set[str] = set()  # listed entries that read as never written (see ``_fetch``)
        # ``_own`` has its own lock: appends run on the shared store pool, and a refresh holds
        # ``_lock`` while it waits on that pool, so appends must never wait for ``_lock``.
        self._own_lock = threading.Lock()

    @property
    def _log(self) -> str:
        return self.prefix + "log/"

    @property
    def _snapshot_key(self) -> str:
        return self.prefix + "snapshot.json"

    @property
    def _tip_key(self) -> str:
        return self.prefix + "tip.json"

    # -- writes -------------------------------------------------------------------------
    def append(self, key: str, entry: dict[str, Any]) -> None:
        append_all([(self, key, entry)])

    def _put_entry(self, key: str, entry: dict[str, Any]) -> None:
        body = _entry_body(entry)
        self.store.create_entry(f"{self._log}{key}.json", body, content_type="application/json")
        with self._own_lock:
            if len(self._own) < 1000:  # bounded: a writer that never reads this log must not grow
                self._own[key] = entry

    def _put_tip(self, body: str) -> str:
        """PUT the tip; its new version (ETag)."""
        # A hint: readers that could hold a version of it die with the machine a crash would revert it on.
        return self.store.put_hint(self._tip_key, body.encode(), content_type="text/plain").etag

    def _settle_tip(self, key: str, version: str) -> None:
        """After entry ``key`` and its tip (``version``) landed: make sure a tip version that covers the
        entry is current (see the module docstring)."""
        try:
            self.store.get(self._tip_key, if_none_match=version)
        except NotModified:
            return  # still ours: it names the entry, which readers must then see to confirm it
        except NotFound:
            pass
        self._put_tip(f"after {key}")  # starts after the entry landed: covers it for every reader

    # -- reads --------------------------------------------------------------------------
    @contextmanager
    def view(self) -> Iterator[Any]:
        """The current fold, revalidated against the store; valid while the block runs."""
        with self._lock:
            self._refresh()
            yield self._state

    def last_key(self) -> str:
        """Newest entry key seen at the last refresh (call inside ``view``)."""
        return self._last_key

    def _refresh(self) -> None:
        listed_at = time.time()  # before the tip's GET and the LIST: see the module docstring
        tip = self._read_tip() if self.tip else None
        if tip is not None and tip[0] == self._tip_etag:
            self._maybe_compact(listed_at)  # nothing acknowledged since the LIST that confirmed it began
            return
        self._list_tail(listed_at)
        # Confirmed only if the entry it names (if any) is folded: its PUT may still be in flight.
        pending = tip[1] if tip is not None else None
        covered = pending is None or pending <= self._covered or pending in self._tail
        self._tip_etag = tip[0] if tip is not None and covered else None

    def _read_tip(self) -> tuple[str, str | None] | None:
        """The tip's current version and the entry key it names if that entry may not have landed
        before it (None if the log has no tip yet)."""
        confirmed = self._tip_etag
        try:
            obj = self.store.get(self._tip_key, if_none_match=confirmed)
        except NotModified:
            assert confirmed is not None  # a 304 answers only a version we sent
            return confirmed, None
        except NotFound:
            return None
        body = obj.body.decode("utf-8", "replace")
        return obj.etag, (None if " " in body else body)  # "after …"/"repair …": landed before it

    def _list_tail(self, listed_at: float) -> None:
        start = self._log + self._covered + ".json" if self._covered else None
        log_keys: list[str] = []
        snap_etag: str | None = None
        for info in self.store.list(self.prefix, start_after=start):
            if info.key == self._snapshot_key:
                snap_etag = info.etag
            elif info.key.startswith(self._log) and info.key.endswith(".json"):
                log_keys.append(info.key[len(self._log):-5])
        rebuild = False
        if snap_etag != self._snap_etag:
            self._load_snapshot()
            rebuild = True
        fresh = [k for k in log_keys if k > self._covered and k not in self._tail and k not in self._unreadable]
        with self._own_lock:
            self._own = {k: e for k, e in self._own.items() if k > self._covered and k not in self._tail}
            own = {k: self._own.pop(k) for k in fresh if k in self._own}
        if fresh:
            unknown = [k for k in fresh if k not in own]
            fetched = dict(zip(unknown, self._fetch(unknown)))
            for key in fresh:
                entry = own.get(key) or fetched.get(key)
                if entry is not None:
                    self._tail[key] = entry
                elif len(self._unreadable) < 1000:
                    self._unreadable.add(key)  # entries never change: not fetched again
            if not rebuild and self._last_key and min(fresh) < self._last_key:
                rebuild = True  # a late write sorts before entries already applied
        if rebuild or fresh:
            self.generation = next(_generations)
        if rebuild:
            self._state = json.loads(self._snap_body)["state"] if self._snap_body else self._empty()
            for key in sorted(self._tail):
                self._fold(self._state, self._tail[key])
        else:
            for key in sorted(fresh):
                if key in self._tail:
                    self._fold(self._state, self._tail[key])
        self._last_key = max([self._last_key, self._covered, *self._tail]) if self._tail or self._covered else ""
        self._maybe_compact(listed_at)

    def _load_snapshot(self) -> None:
        try:
            obj = self.store.get(self._snapshot_key)
        except NotFound:
            self._snap_etag, self._snap_body, self._covered = None, None, ""
            return
        doc = obj.json()
        self._snap_etag, self._snap_body, self._covered = obj.etag, obj.body, doc["covered"]
        self._tail = {k: v for k, v in self._tail.items() if k > self._covered}

    def _fetch(self, keys: list[str]) -> list[dict[str, Any] | None]:
        def get(key: str) -> dict[str, Any] | None:
            try:
                entry = self.store.get(f"{self._log}{key}.json").json()
            except NotFound:
                return None
            except ValueError:
                # Empty or cut short: written with ``create_entry`` when the machine crashed, so never
                # acknowledged (a complete entry is a JSON object, and no proper prefix of one parses).
                return None
            return entry if isinstance(entry, dict) else None
        return parallel([lambda k=k: get(k) for k in keys], self.store.side_by_side)  # type: ignore[misc]

    def _maybe_compact(self, listed_at: float) -> None:
        """Fold the tail's settled entries into the snapshot; ``listed_at``: when the last LIST started."""
        settled = sorted(k for k in self._tail if entry_time_us(k) < _cutoff_us(listed_at))
        if len(settled) < COMPACT_AFTER:
            return
        if len(settled) == len(self._tail):
            state = self._state  # the fold of the snapshot and the whole tail, in key order: no re-fold
        else:
            state = json.loads(self._snap_body)["state"] if self._snap_body else self._empty()
            for key in settled:
                self._fold(state, self._tail[key])
        body = json.dumps({"covered": settled[-1], "state": state}, separators=(",", ":"),
                          ensure_ascii=False).encode()  # once: the PUT's body is the warm copy's too
        try:
            if self._snap_etag is None:
                info = self.store.put(self._snapshot_key, body, if_none_match=True, content_type="application/json")
            else:
                info = self.store.put(self._snapshot_key, body, if_match=self._snap_etag,
                                      content_type="application/json")
        except PreconditionFailed:
            return  # another process compacted first; the next refresh loads its snapshot
        self._snap_etag = info.etag
        self._snap_body = body
        self._covered = settled[-1]
        for key in settled:
            del self._tail[key]

    # -- repair -------------------------------------------------------------------------
    def refold(self, attempts: int = 5) -> bool:
        """Rebuild the snapshot from every entry of the log, ignoring the snapshot's state.

        The new snapshot covers at least what the old one claimed to, so entries hidden below an
        old cutoff come back. Compare-and-swap, retried if a compaction lands meanwhile. Returns
        whether the stored state changed. Costs a GET per entry: a repair tool, not a request path.
        """
        with self._lock:
            for _ in range(attempts):
                try:
                    snap = self.store.get(self._snapshot_key)
                    etag, old = snap.etag, snap.json()
                except NotFound:
                    etag, old = None, None
                listed_at = time.time()
                keys = sorted(info.key[len(self._log):-5] for info in self.store.list(self._log)
                              if info.key.endswith(".json"))
                settled = [k for k in keys if entry_time_us(k) < _cutoff_us(listed_at)]
                covered = max(([old["covered"]] if old else []) + settled[-1:], default="")
                if not covered:
                    return False  # no settled entry yet: nothing a snapshot could hide
                chosen = [k for k in keys if k <= covered]
                state = self._empty()
                for entry in self._fetch(chosen):
                    if entry is not None:
                        self._fold(state, entry)
                doc = {"covered": covered, "state": state}
                if old is not None and _canonical(old) == _canonical(doc):
                    return False
                try:
                    if etag is None:
                        self.store.put_json(self._snapshot_key, doc, if_none_match=True)
                    else:
                        self.store.put_json(self._snapshot_key, doc, if_match=etag)
                except PreconditionFailed:
                    continue
                if self.tip:
                    self._put_tip(f"repair {new_entry_key()}")  # every process's next read LISTs and reloads it
                self._forget()
                return True
        raise unavailable(f"{self.prefix}: snapshot kept changing during the repair; run it again")

    def diverges(self) -> bool:
        """Whether the snapshot differs from the fold of every entry it claims to cover (read-only:
        what ``refold`` would repair). An absent snapshot diverges from nothing."""
        try:
            old = self.store.get(self._snapshot_key).json()
        except NotFound:
            return False
        covered = old.get("covered", "")
        keys = sorted(info.key[len(self._log):-5] for info in self.store.list(self._log)
                      if info.key.endswith(".json"))
        state = self._empty()
        for entry in self._fetch([k for k in keys if k <= covered]):
            if entry is not None:
                self._fold(state, entry)
        return _canonical(state) != _canonical(old.get("state"))

    def _forget(self) -> None:
        """Drop the warm copy: the next view rebuilds from the store."""
        self._snap_etag, self._snap_body, self._covered, self._tip_etag = None, None, "", None
        self._tail, self._state, self._last_key = {}, self._empty(), ""
        self.generation = next(_generations)


def append_all(appends: list[tuple[FoldedLog, str, dict[str, Any]]],
               also: list[Callable[[], Any]] | None = None) -> list[Any]:
    """Append entries to logs (``(log, key, entry)``), every PUT side by side (entries, tips, and the
    store calls ``also``, whose results are returned), then settle the tips. One round of PUTs, so
    a write costs the slowest PUT, not a chain. Raises ``unavailable`` if it took so long that a
    compaction may have passed a key: the client retries (folds are idempotent)."""
    started = time.time()
    calls = list(also or [])
    tipped: list[tuple[FoldedLog, str, int]] = []
    for log, key, entry in appends:
        calls.append(lambda log=log, key=key, entry=entry: log._put_entry(key, entry))  # type: ignore[misc]
        if log.tip:
            tipped.append((log, key, len(calls)))
            calls.append(lambda log=log, key=key: log._put_tip(key))  # type: ignore[misc]
    with ExitStack() as together:  # entries made durable together (one commit on a local store)
        for store in {id(log.store): log.store for log, _, _ in appends}.values():
            together.enter_context(store.entries_together())
        results = parallel(calls, any(log.store.side_by_side for log, _, _ in appends))
    for log, key, at in tipped:
        log._settle_tip(key, results[at])
    now = time.time()
    if now - started > MARGIN_S / 2 or any(now * 1e6 - entry_time_us(key) > MARGIN_S / 2 * 1e6
                                           for _, key, _ in appends):
        raise unavailable("write took too long; retry")
    return results[:len(also or [])]


def _entry_body(entry: dict[str, Any]) -> bytes:
    """An entry as JSON: orjson (a log-batch of 1,000 metrics costs a fraction of ``json``'s time)
    unless a metric value is not finite: orjson would write NaN and infinities as null, where MLflow
    keeps them (``json`` writes them as ``NaN``/``Infinity``, which every reader here parses)."""
    if all(math.isfinite(m[1]) for m in entry.get("metrics", ())):
        try:
            return orjson.dumps(entry)
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, say
            pass
    return json.dumps(entry, separators=(",", ":")).encode()


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _cutoff_us(listed_at: float) -> float:
    """Entries keyed before this were stored before a LIST that started at ``listed_at``."""
    return (listed_at - MARGIN_S) * 1_000_000
