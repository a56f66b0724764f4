"""What the benchmark scripts share: the repository on sys.path, servers started in a subprocess and
timed to their first answer, percentiles, memory read from /proc.

Import it before any project module: the scripts run as ``python bench/<name>.py``, so only ``bench/``
is on sys.path until this module adds the repository root.
"""
from __future__ import annotations

import math
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:<port>, no trailing slash
    start_s: float  # process start to the first 2xx answer of the readiness URL


@contextmanager
def serving(cmd: list[str], port: int, ready_path: str, timeout: float = 120.0) -> Iterator[Served]:
    """Run a server listening on ``port``; yield once ``ready_path`` answers 2xx, stop it on exit."""
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                # A generous per-request timeout: a cold first answer (index load) must not be retried.
                urllib.request.urlopen(url + ready_path, timeout=30).read()
                break
            except OSError:  # refused while starting, or a non-2xx answer (HTTPError)
                if proc.poll() is not None or time.perf_counter() - started > timeout:
                    raise RuntimeError(f"{cmd[0]} did not answer {ready_path}")
                time.sleep(0.005)
        yield Served(proc, url, time.perf_counter() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never leave a server behind on the shared machine
            proc.kill()
            proc.wait()


def stacflow_serve(store_uri: str, ready_path: str = "/health", *,
                   code: Path | None = None) -> AbstractContextManager[Served]:
    """``stacflow serve`` on a free port over ``store_uri`` (see ``serving``); with ``code``, the
    checkout there (its own modules: a baseline commit), else this one."""
    port = free_port()
    cmd = [sys.executable, "-m", "chalicelib.cli", "serve", "--port", str(port), "--store", store_uri]
    if code is not None:
        cmd = ["sh", "-c", 'cd "$0" && exec "$@"', str(code), *cmd]
    return serving(cmd, port, ready_path)


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """(p50, p95): the median and the nearest-rank 95th percentile, in the samples' unit."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[math.ceil(0.95 * len(ordered)) - 1]


def elapsed_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def memory_mb(pid: int, field: str = "VmRSS", children: bool = False) -> float:
    """A /proc/<pid>/status figure in MB (VmRSS: resident now, VmHWM: peak resident), optionally summed
    over the direct children too (servers that run workers in child processes)."""
    pids = [pid]
    if children:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    kb = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                kb += int(line.split()[1])
    return kb / 1024
