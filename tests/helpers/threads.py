"""Calls on their own named threads, for tests that force an interleaving with ``InstrumentedStore.pause``."""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Sequence

from .stores import Pause


class Background:
    """A call on its own named thread; ``result()`` re-raises what it raised."""

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        self.outcome: list[tuple[Any, BaseException | None]] = []
        self.thread = threading.Thread(target=self._run, args=(fn, args), name=name)
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.outcome.append((fn(*args), None))
        except BaseException as err:  # noqa: BLE001 - handed to the test
            self.outcome.append((None, err))

    def join(self, timeout: float = 10) -> tuple[Any, BaseException | None]:
        """(what the call returned, what it raised), once it is done."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} is still running"
        return self.outcome[0]

    def result(self) -> Any:
        value, error = self.join()
        if error is not None:
            raise error
        return value


def run_paused(pause: Pause, target: Callable[[], Any], name: str,
               meanwhile: Callable[[], Any]) -> tuple[Any, BaseException | None, Any, BaseException | None]:
    """Run ``target`` in thread ``name``; once it is paused (or done), run ``meanwhile``, then release.

    Returns (target's result, its exception, meanwhile's result, its exception).
    """
    worker = Background(name, target)
    while not pause.reached.is_set() and worker.thread.is_alive():
        pause.reached.wait(0.002)
    other, other_error = None, None
    try:
        other = meanwhile()
    except BaseException as err:  # noqa: BLE001 - reported to the test
        other_error = err
    pause.release.set()
    return (*worker.join(), other, other_error)


def together(fn: Callable[..., Any], calls: Iterable[Sequence[Any]]) -> list[BaseException]:
    """``fn(*args)`` for each of ``calls``, each on its own thread, all released at once by a barrier;
    returns what they raised."""
    todo = list(calls)
    barrier = threading.Barrier(len(todo))
    errors: list[BaseException] = []

    def run(args: Sequence[Any]) -> None:
        try:
            barrier.wait()
            fn(*args)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            errors.append(err)

    threads = [threading.Thread(target=run, args=(args,)) for args in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
