"""Bulk inputs (item files, folders, FeatureCollections, NDJSON) read as parsing tasks, parsed,
checked and serialised in worker processes, results handed back in input order.

Parsing, schema checks and normalisation cost most of a bulk load's CPU and need nothing shared, so
they run in a process pool: NDJSON is cut at line ends into tasks of ``TASK_BYTES``, other files go
``TASK_FILES`` to a task. A worker returns each valid item compactly, as the bytes the store will
hold (``Parsed``), so results cost a copy, not a Python object per field, with the search index's
rows of the task's items, built there too. Given a store a forked process can write through
(``ObjectStore.for_child_process``: local folders), the workers also write the item files and run the
publisher's static catalog updates (``in_worker``), so the publishing process is not the serial step.
At most ``window`` tasks are in flight: memory stays that of a few tasks however large the input.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Collection, Generator, Iterator, Sequence

import orjson

from ..store import InvalidKey, ObjectStore
from ..store.base import Usage
from .access import is_public
from .catalog import item_key
from .items import InvalidItem, Times, normalize_timed, parse
from .table import compact_json

# A task's items become one index segment: tasks big enough that a load leaves few segments, small
# enough that a worker holds one task's items as Python objects (~15 KB each) without strain.
TASK_BYTES = 4 << 20  # NDJSON bytes per task (~4,900 items of ~850 bytes)
TASK_FILES = 2048  # item files per task
WRITERS = 8  # parallel object writes of items parsed in the publishing process (S3: latency)
# Inputs smaller than this are parsed in-process: starting workers costs more than they save.
POOL_MIN_BYTES = 8 << 20
SUFFIXES = (".json", ".geojson", ".ndjson")


@dataclass(frozen=True)
class Task:
    """Items to parse: NDJSON text from ``first_line`` of ``label`` (``text``), or whole files; ``error``:
    why the rest of ``label`` could not be read."""

    label: str
    first_line: int = 0
    text: bytes = b""
    files: tuple[str, ...] = ()
    error: str = ""

    def source(self, where: int | str) -> str:
        """The rejection source of an item: its NDJSON line, or its file (and feature)."""
        return f"{self.label}:{where}" if isinstance(where, int) else where


@dataclass
class Parsed:
    """One task's valid items, each as (collection, id, public, summary as JSON (a publisher holds
    tens of thousands: ~half the memory of a tuple of floats and strings), stored body (b"" once written
    from NDJSON: see ``_write``), where: see ``Task.source``), its rejections as (where, reason), and the
    search index's rows of its items (``index.encode_part``: built here, where the items are parsed, not
    in the publishing process).

    ``written``: the item files are in the store already (the last copy of each item in the task, at the
    key its visibility gives it): ``refused`` lists the items the store refused (left out of ``items``,
    their reasons in ``rejected``), ``usage`` the requests the writes made."""

    items: list[tuple[str, str, bool, bytes, bytes, int | str]] = field(default_factory=list)
    rejected: list[tuple[int | str, str]] = field(default_factory=list)
    index: bytes = b""
    written: bool = False
    refused: list[tuple[str, str]] = field(default_factory=list)
    usage: Usage | None = None


def tasks(paths: Sequence[Path]) -> Iterator[Task]:
    """Every item of files, folders and NDJSON files, as tasks in input order."""
    files: list[str] = []
    for path in paths:
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES) \
            if path.is_dir() else [path]
        for file in found:
            if file.suffix != ".ndjson":
                files.append(str(file))
                if len(files) >= TASK_FILES:
                    yield Task("", files=tuple(files))
                    files = []
                continue
            if files:  # input order: the files before this one first
                yield Task("", files=tuple(files))
                files = []
            yield from _ndjson_tasks(file)
    if files:
        yield Task("", files=tuple(files))


def _ndjson_tasks(file: Path) -> Iterator[Task]:
    """The file in line-aligned pieces of about ``TASK_BYTES`` (streamed: any size; a line longer than
    a piece is gathered block by block and joined once)."""
    line, pending = 1, []
    try:
        with file.open("rb") as fh:
            while block := fh.read(TASK_BYTES):
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    pending.append(block)
                    continue
                text = b"".join([*pending, block[:cut]])
                pending = [block[cut:]]
                yield Task(str(file), line, text)
                line += text.count(b"\n")
    except OSError as err:
        yield Task(str(file), error=f"unreadable: {err}")
        return
    if rest := b"".join(pending):
        yield Task(str(file), line, rest)


def parse_task(task: Task, collection: str | None, store: ObjectStore | None = None, writers: int = WRITERS,
               dictionaries: dict[str, Any] | None = None) -> Parsed:
    """Parse, check and normalise a task's items (``collection``: of items naming none); with a ``store``,
    also write their files (``Parsed.written``), ``writers`` at a time. ``dictionaries``: the index rows'
    compression dictionaries, kept from one task to the next (``index.encode_part``)."""
    out = Parsed()
    valid: list[tuple[dict[str, Any], Times]] = []
    if task.error:
        out.rejected.append((task.label, task.error))
    for where, doc in _docs(task):
        try:
            cid, item, summary, times = _normalized(doc, collection)
        except InvalidItem as err:
            out.rejected.append((where, str(err)))
            continue
        out.items.append((cid, item["id"], is_public(item), orjson.dumps(summary), compact_json(item), where))
        valid.append((item, times))
    if valid:
        from .index import encode_part  # numpy and the index: only for bulk loads, not on import
        out.index = encode_part(valid, dictionaries)
    if store is not None:
        _write(store, out, writers, keep_bodies=not task.text)
    return out


def _normalized(doc: Any, collection: str | None) -> tuple[str, dict[str, Any], Any, Times]:
    """(collection, the item as stored, its summary, its times) of a parsed document; raises InvalidItem."""
    if isinstance(doc, InvalidItem):
        raise doc
    cid = doc.get("collection", collection) if isinstance(doc, dict) else collection
    if not isinstance(cid, str):
        raise InvalidItem("the item has no collection (and no default collection was given)")
    item, summary, times = normalize_timed(doc, cid)
    return cid, item, summary, times


def stored_bodies(task: Task, wheres: Collection[int], collection: str | None) -> dict[int, bytes]:
    """The stored bodies of the items on lines ``wheres`` of an NDJSON task, parsed again from its text:
    its worker wrote them and sent none back (``_write``), and the publisher writes a few again."""
    if not wheres:
        return {}
    lines = task.text.split(b"\n")
    return {where: compact_json(_normalized(_parsed(lines[where - task.first_line]), collection)[1])
            for where in wheres}


def _write(store: ObjectStore, out: Parsed, writers: int, *, keep_bodies: bool = True) -> None:
    """Write the last copy of each of ``out``'s items; one the store refuses leaves ``out.items`` (its
    index rows stay: the publisher drops them from every part of its batch). Unless ``keep_bodies``,
    the items' bodies leave ``out.items`` (b""): sent back, they were most of the bytes the publishing
    process received and unpickled (~1 KB an item), for the few it writes again (``stored_bodies``)."""
    last = {(cid, iid): n for n, (cid, iid, *_) in enumerate(out.items)}
    writes = [(n, item_key(cid, iid, private=not out.items[n][2])) for (cid, iid), n in last.items()]
    before = store.meter.usage()
    stored = store.put_many([(key, out.items[n][4]) for n, key in writes], workers=writers)
    out.usage = store.meter.usage() - before
    keep = []
    for (n, _), result in zip(writes, stored):
        if isinstance(result, InvalidKey):
            cid, iid, *_, where = out.items[n]
            out.rejected.append((where, f"cannot be stored: {result}"))
            out.refused.append((cid, iid))
        else:
            keep.append(out.items[n])
    out.items = keep if keep_bodies else [(cid, iid, public, summary, b"", where)
                                          for cid, iid, public, summary, _, where in keep]
    out.written = True


def _docs(task: Task) -> Iterator[tuple[int | str, Any]]:
    """(where, parsed JSON or an InvalidItem) of each item of the task."""
    if task.text:
        for n, line in enumerate(task.text.split(b"\n"), task.first_line):
            if line.strip():
                yield n, _parsed(line)
        return
    for file in task.files:
        try:
            text = Path(file).read_bytes()
            text.decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            yield file, InvalidItem(f"unreadable: {err}")
            continue
        doc = _parsed(text)
        if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
            for n, feature in enumerate(doc.get("features") or [], 1):
                yield f"{file}#{n}", feature
        else:
            yield file, doc


def _parsed(text: bytes) -> Any:
    try:
        return parse(text)
    except InvalidItem as err:
        return err


def workers_for(paths: Sequence[Path]) -> int:
    """Worker processes worth starting for ``paths``: none for small inputs, else one per core."""
    size = 0
    for path in paths:
        found = path.rglob("*") if path.is_dir() else [path]
        size += sum(p.stat().st_size for p in found if p.is_file() and p.suffix in SUFFIXES)
        if size >= POOL_MIN_BYTES:
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0


def window(workers: int) -> int:
    """Tasks ``parsed`` has in flight at most: a task's items are written before the task this many places
    later is started (0: in this process, one after the other)."""
    return 2 * workers + 2 if workers > 0 else 0


@dataclass
class Workers:
    """Worker processes (``pool``; None: work in this process) and whether they hold a copy of the store
    (``writes``: they write the items they parse and run ``in_worker`` jobs)."""

    count: int
    pool: Executor | None = None
    writes: bool = False


@contextmanager
def workers(count: int, store: ObjectStore | None = None) -> Iterator[Workers]:
    """``count`` worker processes (0: none), given ``store`` if it can be written from a forked process
    (``ObjectStore.for_child_process``).

    Enter before starting threads: workers are forked (cheap, and they inherit the loaded modules), and
    a fork copies no other thread."""
    if count <= 0:
        yield Workers(0)
        return
    forking = "fork" in multiprocessing.get_all_start_methods()
    child = store.for_child_process() if store is not None and forking else None
    # Under fork the initializer is inherited, not pickled: the store needs no pickling.
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork" if forking else "spawn"),
                             initializer=partial(_adopt, child) if child is not None else None) as pool:
        yield Workers(count, pool, child is not None)


def parsed(all_tasks: Iterator[Task], collection: str | None, procs: Workers, store: ObjectStore | None = None) \
        -> Generator[tuple[Task, Parsed], None, None]:
    """Each task with its outcome, in input order, parsed by ``procs`` (or in this process: its items
    written to ``store`` if given). Workers that hold the store write the items they parse; the items
    of two tasks in flight together (``window``) are written in either order."""
    if procs.pool is None:
        for task in all_tasks:
            yield task, parse_task(task, collection, store)
        return
    yield from _windowed(procs.pool, all_tasks, collection, window=window(procs.count))


_CHILD_STORE: ObjectStore | None = None  # a worker process's store (``workers``): it writes what it parses
# A worker's index compression dictionaries, trained on its first task and reused for the others (a
# load's items are alike; each segment still carries its dictionary). Lives as long as the pool.
_CHILD_DICTIONARIES: dict[str, Any] = {}


def _adopt(store: ObjectStore) -> None:
    global _CHILD_STORE
    _CHILD_STORE = store


def _parse_in_worker(task: Task, collection: str | None) -> Parsed:
    # One writer: the worker processes already keep the cores busy, and local files gain nothing from
    # threads contending for one interpreter (a store that does is not written from a child process).
    return parse_task(task, collection, _CHILD_STORE, writers=1, dictionaries=_CHILD_DICTIONARIES)


def in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(store, *args)`` in a worker process holding the store (submitted to ``Workers.pool``)."""
    assert _CHILD_STORE is not None, "this worker holds no store"
    return fn(_CHILD_STORE, *args)


def _windowed(pool: Executor, all_tasks: Iterator[Task], collection: str | None, *,
              window: int) -> Iterator[tuple[Task, Parsed]]:
    running: deque[tuple[Task, Future[Parsed]]] = deque()
    for task in all_tasks:
        running.append((task, pool.submit(_parse_in_worker, task, collection)))
        if len(running) >= window:
            done, future = running.popleft()
            yield done, future.result()
    while running:
        done, future = running.popleft()
        yield done, future.result()
