"""A store wrapper that holds a chosen call until the test lets it go, or fails it (a crash).

Interleavings are forced, not hoped for: ``pause_nth_write(k, thread)`` blocks the k-th write
(PUT or DELETE) made by the named thread before it reaches the store, sets ``reached``, and waits
for ``release``; ``crash_on(predicate)`` makes the first matching write raise instead.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from chalicelib.store import ObjectInfo, ObjectStore, StoredObject
from tests.stac.counting import CountingStore


class Crash(RuntimeError):
    """The process dies here (as far as the caller can tell)."""


@dataclass
class Pause:
    matches: Callable[[str, str], bool]  # (kind, key) of a call by the chosen thread
    thread: str | None
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class PausingStore(CountingStore):
    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self._pauses: list[Pause] = []
        self._crashes: list[Callable[[str, str], bool]] = []
        self._lock = threading.Lock()

    def pause_nth_write(self, n: int, thread: str) -> Pause:
        seen = [0]

        def nth(kind: str, key: str) -> bool:
            if kind not in ("PUT", "DELETE"):
                return False
            seen[0] += 1
            return seen[0] == n
        pause = Pause(nth, thread)
        self._pauses.append(pause)
        return pause

    def crash_on(self, matches: Callable[[str, str], bool]) -> None:
        self._crashes.append(matches)

    def _gate(self, kind: str, key: str) -> None:
        name = threading.current_thread().name
        with self._lock:
            for crash in list(self._crashes):
                if crash(kind, key):
                    self._crashes.remove(crash)
                    raise Crash(f"crash before {kind} {key}")
            hit = [p for p in self._pauses
                   if p.thread in (None, name) and not p.reached.is_set() and p.matches(kind, key)]
        for pause in hit:
            pause.reached.set()
            assert pause.release.wait(10), "the test never released the paused call"

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        self._gate("GET", key)
        return super().get(key, if_none_match=if_none_match)

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        self._gate("PUT", key)
        return super()._put(key, body, if_none_match=if_none_match, if_match=if_match, content_type=content_type)

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        self._gate("DELETE", key)
        return super()._delete(key, if_match=if_match)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        self._gate("LIST", prefix)
        return super().list(prefix, start_after=start_after, limit=limit)


def run_paused(pause: Pause, target: Callable[[], Any], name: str,
               meanwhile: Callable[[], Any]) -> tuple[Any, BaseException | None, Any, BaseException | None]:
    """Run ``target`` in thread ``name``; once it is paused (or done), run ``meanwhile``, then release.

    Returns (target's result, its exception, meanwhile's result, its exception).
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            outcome["error"] = err
    worker = threading.Thread(target=run, name=name)
    worker.start()
    while not pause.reached.is_set() and worker.is_alive():
        pause.reached.wait(0.002)
    other, other_error = None, None
    try:
        other = meanwhile()
    except BaseException as err:  # noqa: BLE001
        other_error = err
    pause.release.set()
    worker.join(10)
    assert not worker.is_alive()
    return outcome.get("result"), outcome.get("error"), other, other_error
