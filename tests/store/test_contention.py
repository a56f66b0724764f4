"""Compare-and-swap retries back off with jitter and give up within a bounded time."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chalicelib.store import ObjectInfo, PreconditionFailed
from chalicelib.store.contention import Backoff, Contention, TryAgain
from chalicelib.store.local import LocalStore


class AlwaysLoses(LocalStore):
    """Every compare-and-swap of ``hot.json`` loses, as if another writer always got there first."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.attempts: list[float] = []

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        if key == "hot.json" and (if_match or if_none_match):
            self.attempts.append(time.monotonic())
            raise PreconditionFailed(key)
        return super()._put(key, body, if_none_match=if_none_match, if_match=if_match, content_type=content_type)


def test_a_lost_swap_backs_off_with_jitter_and_gives_up_in_time(tmp_path, monkeypatch) -> None:
    # The waits asked for, not the gaps between attempts: a loaded machine stretches those.
    waits: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    store = AlwaysLoses(tmp_path, fsync=False)
    store.put_json("hot.json", {"n": 0})
    policy = Backoff(first=0.01, cap=0.08, budget=0.5, attempts=1000)
    started = time.monotonic()
    with pytest.raises(Contention, match="updating hot.json"):
        store.update_json("hot.json", lambda doc: {"n": doc["n"] + 1}, backoff=policy)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 0.5 + policy.cap + 0.5
    assert 3 <= len(store.attempts) < 100, "retries wait instead of spinning"
    assert len(waits) == len(store.attempts) - 1, "every retry waits first"
    assert max(waits) <= policy.cap, "waits are capped"
    assert len({round(w, 6) for w in waits}) > 1, "waits are random"
    assert store.get_json("hot.json") == {"n": 0}


def test_a_retry_for_another_reason_is_bounded_too() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise TryAgain

    with pytest.raises(Contention):
        Backoff(first=0.001, cap=0.002, budget=5, attempts=7).run(attempt, "testing")
    assert len(calls) == 7


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        Backoff().run(attempt, "testing")
    assert len(calls) == 1


def test_contended_counter_loses_no_update(local_store) -> None:
    """32 writers bump one counter: all land, with backoff instead of hundreds of immediate retries."""
    def bump(doc: dict[str, int]) -> dict[str, int]:
        return {"n": doc["n"] + 1}

    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(3):
                local_store.update_json("ctr.json", bump, default=lambda: {"n": 0})
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert local_store.get_json("ctr.json") == {"n": 96}


def test_a_write_that_wins_at_once_pays_for_no_retry_machinery(tmp_path) -> None:
    """The common case stays on the hot path: no tenacity import, no Retrying object."""
    import subprocess
    import sys
    code = ("import sys; from chalicelib.store.local import LocalStore; s = LocalStore(sys.argv[1], fsync=False); "
            "s.update_json('a.json', lambda d: {'n': d['n'] + 1}, default=lambda: {'n': 0}); "
            "print('tenacity' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
