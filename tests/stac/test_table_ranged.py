"""Ranged: a segment section read in chunks on first use, runs of chunks fetched side by side."""
from __future__ import annotations

import threading
import time

import numpy as np

from chalicelib.stac import table as table_module
from chalicelib.stac.table import Ranged, fetch_all


class Source:
    def __init__(self, data: bytes) -> None:
        self.data, self.calls, self.lock = data, [], threading.Lock()

    def __call__(self, start: int, length: int) -> bytes:
        with self.lock:
            self.calls.append((start, length))
        return self.data[start:start + length]


def test_empty_frames_and_an_empty_section_read_nothing() -> None:
    source = Source(b"")
    ranged = Ranged(source, 0, 0, chunk=4)
    ranged.prefetch(np.array([0, 0]), np.array([0, 0]))
    assert source.calls == []
    assert ranged[0:0] == b""


def test_runs_join_short_gaps_and_stop_at_a_piece(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 4
    source = Source(data)
    monkeypatch.setattr(table_module, "PIECE", 16)  # 4 chunks of 4 bytes
    ranged = Ranged(source, 0, len(data), chunk=4)
    # chunks 0, 2 (gap of one: read through), 10, 11..15 (split after 4 chunks), 40
    starts = np.array([1, 9, 41, 44, 160])
    ends = np.array([2, 10, 64, 64, 161])
    assert ranged.runs(starts, ends) == [(0, 2), (10, 13), (14, 15), (40, 40)]
    fetch_all([(ranged, starts, ends)])
    assert sorted(source.calls) == [(0, 12), (40, 16), (56, 8), (160, 4)]
    assert all(ranged[a:b] == data[a:b] for a, b in zip(starts.tolist(), ends.tolist()))
    assert len(source.calls) == 4, "everything asked for was read once"


def test_a_forked_child_runs_parallel_jobs_with_a_pool_of_its_own() -> None:
    import os
    jobs = list(range(64))  # enough to start every thread of the parent's pool
    assert table_module.parallel(lambda x: (time.sleep(0.001), x)[1], jobs) == jobs
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool threads do not exist here
        os.write(write, repr(table_module.parallel(lambda x: x * 3, [1, 2, 3])).encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:  # waiting on threads that are not there
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert os.read(read, 100) == b"[3, 6, 9]"
