"""Retrying conditional writes that lose to other writers: exponential backoff, full jitter, bounded.

Writers racing on one document (a collection, a shard, the index manifest, a counter) retry their
compare-and-swap. Retrying at once makes every loser collide again; each retry here waits a random
time in ``[0, min(cap, first * 2**n))`` ("full jitter"), and the whole loop gives up after
``attempts`` tries or ``budget`` seconds with ``Contention``, so an event handler fails and its queue
redelivers the event later instead of spinning inside one invocation.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import PreconditionFailed

T = TypeVar("T")


class Contention(PreconditionFailed):
    """A write gave up after its retry budget (the caller may retry later, e.g. by redelivery)."""


class TryAgain(Exception):
    """Raised inside an attempt that must be repeated for another reason than a lost swap."""


@dataclass(frozen=True)
class Backoff:
    first: float = 0.01  # upper bound of the first wait (s)
    cap: float = 0.5  # upper bound of any one wait (s)
    budget: float = 10.0  # total time (s) before giving up; well inside a Lambda's 60 s
    attempts: int = 50

    def run(self, attempt: Callable[[], T], what: str) -> T:
        """``attempt()`` until it returns; it raises ``PreconditionFailed`` or ``TryAgain`` to go again."""
        started = time.monotonic()
        try:  # most writes win at once: no retry machinery on that path
            return attempt()
        except Exception as err:
            if not _retried(err):
                raise
            if self.attempts <= 1:
                raise Contention(f"gave up {what} after 1 attempt") from err
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, \
            wait_random_exponential
        time.sleep(random.uniform(0, self.first))  # the first jittered wait, before the second try
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts - 1) | stop_after_delay(self.budget - (time.monotonic() - started)),
            wait=wait_random_exponential(multiplier=self.first * 2, max=self.cap),
            retry=retry_if_exception(_retried))
        try:
            return retrying(attempt)
        except RetryError as err:
            tries = int(retrying.statistics.get("attempt_number", 0)) + 1
            raise Contention(f"gave up {what} after {tries} attempts in "
                             f"{time.monotonic() - started:.1f} s of contention") from err


def _retried(err: BaseException) -> bool:
    # A nested loop that already gave up is not retried again here.
    return isinstance(err, (PreconditionFailed, TryAgain)) and not isinstance(err, Contention)


DEFAULT = Backoff()
