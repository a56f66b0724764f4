"""A columnar, immutable view of a set of STAC items: what a search evaluates against.

Core columns (id, collection, bbox, time interval) are numpy arrays built once (and persisted
with each index segment, so a reader loads them without parsing items); typed
views of any property (number, string, time, boolean), the shapely geometries and the
free-text postings are derived on first use and cached, so a query pays only for the
columns it touches.

Memory per item is kept small for a million items in one process: item bodies stay compressed one
by one (zstd with a per-segment dictionary, ~125 B for a ~750 B item), property columns stay
compressed in blocks and are decoded a block at a time, strings repeated on every row (collection,
log key) are shared, and lookups by id use sorted hashes instead of a dict entry per row.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, cast, overload

import numpy as np
import orjson

from ..auth.access import ReadScope
from .access import PROJECT, PROJECT_ID, VISIBILITY, Owners, is_public
from .catalog import STRUCTURAL_RELS
from .datetimes import try_instant
from .hrefs import route_downloads

if TYPE_CHECKING:
    from .grid import BoxGrid

WORD = re.compile(r"\w+")
TEXT_FIELDS = ("title", "description")
_NUMBER = (int, float)
_NAN = float("nan")
_READABLE_CACHE = 64  # read-scope masks kept per table


@dataclass(frozen=True)
class Record:
    """One item version from the change log (``item`` None = deleted)."""

    collection: str
    id: str
    version: int  # nanoseconds: when the publisher observed this state of the store
    log_key: str  # tie-breaker between equal versions: later log entry wins
    item: dict[str, Any] | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.collection, self.id)

    @property
    def deleted(self) -> bool:
        return self.item is None

    def beats(self, version: int, log_key: str) -> bool:
        return (self.version, self.log_key) > (version, log_key)


class Blobs:
    """Byte strings stored back to back (one buffer + offsets): cheap to persist and to load. ``data``
    may be a ``Ranged`` section of a segment object, fetched in chunks as rows are read."""

    def __init__(self, data: bytes | Ranged, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets  # int64, len n + 1

    @classmethod
    def of(cls, parts: Sequence[bytes]) -> Blobs:
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return cls(b"".join(parts), offsets)

    @classmethod
    def joined(cls, parts: Sequence[Blobs]) -> Blobs:
        """``parts`` one after another (the bytes of their rows read whole; a part may be rows of a larger
        buffer, as the parts of a segment's bodies share its section)."""
        datas = [p.data[int(p.offsets[0]):int(p.offsets[-1])] for p in parts]
        starts = np.cumsum([0] + [len(d) for d in datas])
        offsets = [p.offsets[:-1] - p.offsets[0] + s for p, s in zip(parts, starts)] \
            + [np.array([starts[-1]], dtype=np.int64)]
        return cls(b"".join(datas), np.concatenate(offsets).astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> bytes:
        return self.data[int(self.offsets[row]):int(self.offsets[row + 1])]

    def take(self, rows: Sequence[int] | np.ndarray) -> list[bytes]:
        if not len(rows):
            return []
        data, idx = self.data, np.asarray(rows, dtype=np.intp)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        if isinstance(data, Ranged):
            data.prefetch(starts, ends)
        return [data[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def id_hash(item_id: str) -> int:
    """A stable 64-bit hash of an item id (persisted with each segment: a reader finds ids and checks
    segments for shared items without a Python object per row)."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little", signed=True)


class _StringColumn(Sequence[str]):
    """A column of strings: ``at(row)`` reads one; a slice reads a list."""

    def at(self, row: int) -> str:
        raise NotImplementedError

    def many(self, rows: slice) -> list[str]:
        return [self.at(r) for r in range(*rows.indices(len(self)))]

    @overload
    def __getitem__(self, row: int) -> str: ...

    @overload
    def __getitem__(self, row: slice) -> list[str]: ...

    def __getitem__(self, row: int | slice) -> str | list[str]:
        return self.many(row) if isinstance(row, slice) else self.at(row)


class Strings(_StringColumn):
    """Strings as one UTF-8 buffer and offsets (~20 B per short id, against ~70 B as Python strings),
    decoded when read."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    @classmethod
    def of(cls, values: Iterable[str]) -> Strings:
        return cls(Blobs.of([v.encode() for v in values]))

    def __len__(self) -> int:
        return len(self.blobs)

    def at(self, row: int) -> str:
        return self.blobs[row].decode()

    def __iter__(self) -> Iterator[str]:
        data = self.blobs.data[0:len(self.blobs.data)]
        bounds = self.blobs.offsets.tolist()
        for a, b in zip(bounds, bounds[1:]):
            yield data[a:b].decode()


class Coded(_StringColumn):
    """Strings repeated on many rows (collection, log key): distinct values and a code per row."""

    def __init__(self, names: list[str], codes: np.ndarray) -> None:
        self.names, self.codes = names, codes

    @classmethod
    def of(cls, values: Iterable[str]) -> Coded:
        seen: dict[str, int] = {}
        codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int32)
        return cls(list(seen), codes)

    @classmethod
    def concat(cls, parts: Sequence[tuple[Coded, np.ndarray | None]]) -> Coded:
        """Rows of each part (None: all of them), in order."""
        names: dict[str, int] = {}
        codes = []
        for coded, rows in parts:
            remap = np.array([names.setdefault(n, len(names)) for n in coded.names], dtype=np.int32)
            picked = coded.codes if rows is None else coded.codes[rows]
            codes.append(remap[picked] if len(remap) else picked.astype(np.int32))
        return cls(list(names), np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.codes)

    def at(self, row: int) -> str:
        return self.names[self.codes[row]]

    def many(self, rows: slice) -> list[str]:
        return [self.names[c] for c in self.codes[rows].tolist()]

    def __iter__(self) -> Iterator[str]:
        names = self.names
        return (names[c] for c in self.codes.tolist())


def _coded(values: Sequence[str]) -> Coded:
    return values if isinstance(values, Coded) else Coded.of(values)


def _strings(values: Sequence[str]) -> Strings:
    return values if isinstance(values, Strings) else Strings.of(values)


Fetch = Callable[[int, int], bytes]  # (start, length) -> those bytes of a segment object


class Ranged:
    """A byte range of a stored object read in ``chunk``-sized pieces on first use (ranged GETs), kept once
    read: a reader holds only the item bodies of pages it has returned."""

    def __init__(self, fetch: Fetch, start: int, size: int, chunk: int = 64 << 10) -> None:
        self.fetch, self.start, self.size, self.chunk = fetch, start, size, chunk
        self._chunks: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.size

    def _get(self, c: int) -> bytes:
        got = self._chunks.get(c)
        if got is None:
            at = c * self.chunk
            got = self._chunks[c] = self.fetch(self.start + at, min(self.chunk, self.size - at))
        return got

    def prefetch(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """Fetch the chunks holding these ranges, adjacent missing chunks in one request each."""
        fetch_all([(self, starts, ends)])

    def runs(self, starts: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
        """[first, last] chunk runs holding these ranges and not read yet (short gaps included), each at
        most ``PIECE`` bytes."""
        full = ends > starts  # an empty frame (a rectangle's geometry) needs no bytes
        starts, ends = starts[full], ends[full]
        if not len(starts):
            return []
        firsts = starts // self.chunk
        lasts = (ends - 1) // self.chunk
        wanted = np.zeros(-(-self.size // self.chunk) + 1, dtype=np.int32)
        np.add.at(wanted, firsts, 1)  # chunks covered by a range: a +1/-1 sweep over range ends
        np.add.at(wanted, lasts + 1, -1)
        covered = np.flatnonzero(np.cumsum(wanted[:-1]) > 0).tolist()
        missing = [c for c in covered if c not in self._chunks]
        out: list[tuple[int, int]] = []
        most = max(1, PIECE // self.chunk)
        for c in missing:  # a gap of a chunk or two is read through: one request instead of two
            if out and c - out[-1][1] <= 3 and c - out[-1][0] < most:
                out[-1] = (out[-1][0], c)
            else:
                out.append((c, c))
        return out

    def load(self, first: int, last: int) -> None:
        at, stop = first * self.chunk, min(self.size, (last + 1) * self.chunk)
        body = self.fetch(self.start + at, stop - at)
        for c in range(first, last + 1):
            self._chunks[c] = body[(c - first) * self.chunk:(c - first + 1) * self.chunk]

    def __getitem__(self, span: slice) -> bytes:
        a, b = span.start, span.stop
        if b <= a:
            return b""
        first, last = a // self.chunk, (b - 1) // self.chunk
        if first == last:
            base = first * self.chunk
            return self._get(first)[a - base:b - base]
        self.prefetch(np.array([a]), np.array([b]))
        return b"".join(self._get(c) for c in range(first, last + 1))[a - first * self.chunk:b - first * self.chunk]

    @property
    def loaded(self) -> int:
        return sum(len(c) for c in self._chunks.values())


PIECE = 4 << 20  # the most one ranged GET of a cold reader asks for: bigger reads go side by side
FETCHERS = 8  # ranged GETs a reader has in flight at once


def fetch_all(jobs: Sequence[tuple[Ranged, np.ndarray, np.ndarray]]) -> None:
    """Read the chunks holding (starts, ends) of each ``Ranged``: one request per run of adjacent missing
    chunks (at most ``PIECE`` bytes), side by side (on S3 a GET's latency, not its bytes, is the cost)."""
    runs = [(ranged, first, last) for ranged, starts, ends in jobs for first, last in ranged.runs(starts, ends)]
    parallel(lambda run: run[0].load(run[1], run[2]), runs)


_pool: Any = None
_pool_lock = threading.Lock()


def _mark_worker() -> None:
    _local.worker = True


def _forget_pool() -> None:
    """A forked child has none of the pool's threads: it starts its own if it needs one."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def parallel(fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
    """``fn`` over ``jobs`` in a process-wide pool of ``FETCHERS`` threads (started once: a cold reader
    would otherwise start threads per request, slow on a busy machine); in this thread when there is one
    job, or when this thread is one of the pool's (a job waiting on jobs queued behind it would wait
    forever)."""
    global _pool
    if len(jobs) <= 1 or getattr(_local, "worker", False):
        return [fn(job) for job in jobs]
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from concurrent.futures import ThreadPoolExecutor
                _pool = ThreadPoolExecutor(FETCHERS, thread_name_prefix="segment-io", initializer=_mark_worker)
    return list(_pool.map(fn, jobs))


# -- compression: zstd; item bodies each on its own with a dictionary trained per segment -------------
_local = threading.local()


def _zstd() -> Any:
    import zstandard
    return zstandard


def zcompress(data: bytes) -> bytes:
    comp = getattr(_local, "comp", None)
    if comp is None:
        comp = _local.comp = _zstd().ZstdCompressor(level=3)
    return comp.compress(data)  # type: ignore[no-any-return]


def zdecompress(data: bytes) -> bytes:
    dec = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = _zstd().ZstdDecompressor()
    return dec.decompress(data)  # type: ignore[no-any-return]


_libc: Any = None


def release_memory() -> None:
    """Hand memory freed after a one-off build (a snapshot's load, a view, the postings) back to the
    OS: glibc keeps freed blocks mapped (the STAC API raises its trim threshold for page buffers), so a
    process serving a million items would otherwise hold the build's peak. No-op off glibc."""
    global _libc
    if _libc is None:
        import ctypes
        try:
            _libc = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc(0)


BIG = 1 << 14  # rows from which building a derived column is worth a release_memory()
DICT_SAMPLES = 500  # item bodies a segment's dictionary is trained on (more: same ratio, slower)
DICT_BYTES = 16 << 10
MIN_DICT_ROWS = 256  # fewer rows: each body compressed without a dictionary
ORDERED_ROWS = 2048  # segments from this many rows are written in the default search order
MAX_PARTS = 64  # body codecs a segment keeps as they came from merged segments (more: one codec retrained)


class Codec:
    """How a body is stored: ``dictionary`` None = as is, b"" = zstd, else zstd with that dictionary.
    One (de)compressor per codec behind a lock: zstandard's objects must not serve concurrent calls,
    and a per-thread copy would load the dictionary again for each request thread."""

    def __init__(self, dictionary: bytes | None) -> None:
        self.dictionary = dictionary
        self._lock = threading.Lock()
        self._pair: tuple[Any, Any] | None = None

    def _made(self) -> tuple[Any, Any]:
        if self._pair is None:
            zs = _zstd()
            data = zs.ZstdCompressionDict(self.dictionary) if self.dictionary else None
            self._pair = (zs.ZstdCompressor(level=3, dict_data=data, write_checksum=False, write_dict_id=False),
                          zs.ZstdDecompressor(dict_data=data))
        return self._pair

    def decode(self, frame: bytes) -> bytes:
        if self.dictionary is None or not frame:
            return frame
        if not self.dictionary:
            return zdecompress(frame)
        with self._lock:
            return self._made()[1].decompress(frame)  # type: ignore[no-any-return]

    def encode_many(self, bodies: list[bytes]) -> list[bytes]:
        """Each body compressed, under one lock (a segment's bodies in one pass); an empty body stays empty
        (a rectangle's geometry frame)."""
        if self.dictionary is None:
            return bodies
        if not self.dictionary:  # no dictionary: the thread's shared context (small segments are many)
            return [zcompress(b) if b else b for b in bodies]
        with self._lock:
            compress = self._made()[0].compress
            return [compress(b) if b else b for b in bodies]

    def decode_many(self, frames: list[bytes]) -> list[bytes]:
        """``decode`` of each frame, under one lock."""
        if self.dictionary is None:
            return frames
        if not self.dictionary:
            return [zdecompress(f) if f else f for f in frames]
        with self._lock:
            decompress = self._made()[1].decompress
            return [decompress(f) if f else f for f in frames]

    @classmethod
    def trained(cls, sample: Sequence[bytes]) -> Codec:
        if len(sample) >= MIN_DICT_ROWS:
            try:
                return cls(_zstd().train_dictionary(DICT_BYTES, list(sample)).as_bytes())
            except Exception:  # zstd refuses samples it cannot learn from: no dictionary
                pass
        return cls(b"")


RAW = Codec(None)


class Bodies:
    """Item bodies, each compressed on its own (any row is read without its neighbours). Rows of a
    concatenation keep their frames and codecs; parts taken whole stay lazy (``Ranged``)."""

    def __init__(self, parts: Sequence[tuple[Blobs, Codec]]) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(b) for b, _ in self.parts])
        self.n = int(self.starts[-1])

    @classmethod
    def plain(cls, bodies: Sequence[bytes]) -> Bodies:
        return cls([(Blobs.of(bodies), RAW)])

    def __len__(self) -> int:
        return self.n

    def _locate(self, row: int) -> tuple[Blobs, Codec, int]:
        if len(self.parts) == 1:
            blobs, codec = self.parts[0]
            return blobs, codec, row
        p = int(np.searchsorted(self.starts, row, side="right")) - 1
        blobs, codec = self.parts[p]
        return blobs, codec, row - int(self.starts[p])

    def __getitem__(self, row: int) -> bytes:
        blobs, codec, local = self._locate(row)
        return codec.decode(blobs[local])

    def prefetch(self, rows: Sequence[int] | np.ndarray) -> None:
        """Fetch the chunks holding ``rows`` of lazily read parts: adjacent ones in one request, the
        requests side by side (parts of one segment share their section's chunks)."""
        if not any(isinstance(blobs.data, Ranged) for blobs, _ in self.parts):
            return
        rows = np.asarray(rows, dtype=np.intp)
        which = np.searchsorted(self.starts, rows, side="right") - 1
        spans: dict[int, tuple[Ranged, list[np.ndarray], list[np.ndarray]]] = {}
        for p, (blobs, _) in enumerate(self.parts):
            if isinstance(blobs.data, Ranged):
                local = rows[which == p] - self.starts[p]
                if len(local):
                    job = spans.setdefault(id(blobs.data), (blobs.data, [], []))
                    job[1].append(blobs.offsets[local])
                    job[2].append(blobs.offsets[local + 1])
        fetch_all([(ranged, np.concatenate(a), np.concatenate(b)) for ranged, a, b in spans.values()])

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        """The stored frame length of each of ``rows`` (0: empty)."""
        out = np.zeros(len(rows), dtype=np.int64)
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for p, (blobs, _) in enumerate(self.parts):
            mine = which == p
            local = rows[mine] - self.starts[p]
            out[mine] = blobs.offsets[local + 1] - blobs.offsets[local]
        return out

    def take(self, rows: Sequence[int] | np.ndarray) -> list[bytes]:
        """The bodies of ``rows``, in order (a page: one pass per part, not a lookup per row; each part's
        frames decoded together, while its dictionary is in the cache)."""
        rows = np.asarray(rows, dtype=np.intp)
        if len(self.parts) == 1:
            blobs, codec = self.parts[0]
            return codec.decode_many(blobs.take(rows))
        which = np.searchsorted(self.starts, rows, side="right") - 1
        out: list[bytes] = [b""] * len(rows)
        for p in np.unique(which).tolist():
            at = np.flatnonzero(which == p)
            blobs, codec = self.parts[p]
            for i, body in zip(at.tolist(), codec.decode_many(blobs.take(rows[at] - self.starts[p]))):
                out[i] = body
        return out

    def frames(self, rows: np.ndarray) -> list[tuple[bytes, Codec]]:
        """The stored frames of ``rows`` and their codecs (copied as they are into a concatenation)."""
        self.prefetch(rows)  # every part's missing chunks side by side, not a part at a time
        out: list[tuple[bytes, Codec]] = []
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for p, (blobs, codec) in enumerate(self.parts):
            mine = rows[which == p] - self.starts[p]
            out.extend((f, codec) for f in blobs.take(mine.tolist()))
        order = np.argsort(which, kind="stable")
        back = np.empty(len(rows), dtype=np.intp)
        back[order] = np.arange(len(rows))
        return [out[i] for i in back.tolist()]

    @classmethod
    def concat(cls, parts: Sequence[tuple[Bodies, np.ndarray, bool]]) -> Bodies:
        """(bodies, rows, whole) per part; whole parts keep their (lazy) storage."""
        out: list[tuple[Blobs, Codec]] = []
        for bodies, rows, whole in parts:
            if whole:
                out.extend(bodies.parts)
                continue
            frames = bodies.frames(rows)
            run: list[bytes] = []
            for i, (frame, codec) in enumerate(frames):
                run.append(frame)
                if i + 1 == len(frames) or frames[i + 1][1] is not codec:
                    out.append((Blobs.of(run), codec))
                    run = []
        return cls([p for p in out if len(p[0])] or [(Blobs.of([]), RAW)])

    def compressed(self, codec: Codec | None = None) -> tuple[Blobs, Codec]:
        """All rows under one codec trained on a sample of them, or under ``codec`` (as they are when
        already so, or when training on them already found no dictionary: a bulk load's segment is
        stamped without a pass)."""
        if len(self.parts) == 1 and self.parts[0][1].dictionary is not None:
            return self.parts[0]
        if codec is None:
            step = max(1, self.n // DICT_SAMPLES)
            codec = Codec.trained([body for r in range(0, self.n, step) if (body := self[r])])
        frames = []
        for blobs, old in self.parts:
            frames += codec.encode_many(old.decode_many(blobs.take(np.arange(len(blobs)))))
        return Blobs.of(frames), codec

    def stored_reusing(self, kept: dict[str, Codec], name: str) -> list[tuple[Blobs, Codec]]:
        """``stored``, new rows compressed with the dictionary ``kept[name]`` when there is one, else with one
        trained here and kept there: one producer of many alike segments (a bulk load's worker: ~17 µs an
        item to train one per segment) trains once. Each segment still carries its dictionary."""
        fresh = all(codec.dictionary is None for _, codec in self.parts)
        if fresh and name in kept and self.n >= MIN_DICT_ROWS:
            return [self.compressed(kept[name])]
        parts = self.stored()
        if fresh and len(parts) == 1 and parts[0][1].dictionary:
            kept.setdefault(name, parts[0][1])
        return parts

    def stored(self) -> list[tuple[Blobs, Codec]]:
        """The parts to persist: as they are when each is compressed and they are few and long enough
        for their dictionaries to pay (segments concatenated by a merge: no body is decoded), else all
        rows under one newly trained codec. Adjacent parts with one dictionary become one."""
        runs: list[tuple[list[Blobs], Codec]] = []
        for blobs, codec in self.parts:
            if not len(blobs):
                continue
            if runs and runs[-1][1].dictionary == codec.dictionary:
                runs[-1][0].append(blobs)
            else:
                runs.append(([blobs], codec))
        # Each run joined once (joining part by part copied a long run's bytes once per part).
        parts = [(run[0] if len(run) == 1 else Blobs.joined(run), codec) for run, codec in runs]
        if not parts:
            return [self.compressed()]
        if len(parts) > 1 and (len(parts) > MAX_PARTS or self.n < MIN_DICT_ROWS * len(parts)
                               or any(codec.dictionary is None for _, codec in parts)):
            return [self.compressed()]
        if len(parts) == 1 and parts[0][1].dictionary is None:
            return [self.compressed()]
        return parts


Source = Callable[[], list[bytes]]  # -> a property column as blocks: zstd-compressed JSON arrays
BLOCK = 16384  # rows per block: what is decoded into Python objects at once to build a view


def _pack(values: Sequence[Any]) -> list[bytes]:
    return [zcompress(compact_json(list(values[i:i + BLOCK]))) for i in range(0, len(values), BLOCK)]


def _unpack(block: bytes) -> list[Any]:
    text = zdecompress(block)
    try:
        return orjson.loads(text)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        return json.loads(text)  # type: ignore[no-any-return]


class Columns(Mapping[str, list[Any]]):
    """Property columns kept as blocks of zstd-compressed JSON arrays (a segment's are fetched on first
    use): a reader holds what queries touch, compressed. Decoded columns (Python objects, ~10x their
    JSON) are not kept: views are built block by block, and they are what tables cache."""

    def __init__(self, sources: Mapping[str, Source]) -> None:
        self._sources = dict(sources)
        self._packed: dict[str, list[bytes]] = {}

    @classmethod
    def of(cls, lists: Mapping[str, Sequence[Any]]) -> Columns:
        return cls({k: _const(_pack(v)) for k, v in lists.items()})

    def packed(self, name: str, keep: bool = True) -> list[bytes]:
        """The blocks of ``name``; ``keep=False``: a column read to be joined into another is not kept
        here too."""
        got = self._packed.get(name)
        if got is None:
            got = self._sources[name]()
            if keep:
                self._packed[name] = got
        return got

    def chunks(self, name: str) -> Iterator[list[Any]]:
        """The column's values a block at a time."""
        for block in self.packed(name):
            yield _unpack(block)

    def __getitem__(self, name: str) -> list[Any]:
        """The whole column decoded (not kept)."""
        out: list[Any] = []
        for chunk in self.chunks(name):
            out.extend(chunk)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def _const(value: list[bytes]) -> Source:
    return lambda: value


def _joined(tables: Sequence[Any], name: str) -> Source:
    """Column ``name`` of ``tables`` one after another: their blocks, read when first used (what is held
    until then: each table's column source, not the table)."""
    parts = [(t.n, t.props) for t in tables if t.n]

    def part(n: int, props: Columns) -> list[bytes]:
        return props.packed(name, keep=False) if name in props else _pack([None] * n)

    def load() -> list[bytes]:
        # Each segment's column is a GET: side by side.
        return [b for got in parallel(lambda p: part(*p), parts) for b in got]
    return load


def _whole(parts: Sequence[tuple[Any, np.ndarray]]) -> list[bool]:
    return [len(rows) == t.n and (not len(rows) or (rows[0] == 0 and bool(np.all(np.diff(rows) == 1))))
            for t, rows in parts]


def split_links(item: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the item's JSON without links, its non-structural links as a JSON array).

    The API writes its own structural links in front of the kept ones, so responses are
    spliced from these bytes instead of parsing and re-serialising each item. A non-public item's
    assets already point at the download route (``hrefs.route_downloads``).
    """
    core = dict(item)  # a copy without "links" (the comprehension costs twice as much)
    core.pop("links", None)
    if isinstance(core.get("assets"), dict) and not is_public(item):
        core["assets"] = {k: dict(v) if isinstance(v, dict) else v for k, v in core["assets"].items()}
        route_downloads(core)
    links = item.get("links")
    own = [link for link in links if not (isinstance(link, dict) and link.get("rel") in STRUCTURAL_RELS)] \
        if isinstance(links, list) else []
    return _dumps(core), _dumps(own)


def compact_json(doc: Any) -> bytes:
    """``doc`` as compact UTF-8 JSON (orjson: ~10x ``json.dumps``, which bulk loads feel per item);
    what orjson refuses (integers beyond 64 bits) goes through ``json``."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


_dumps = compact_json


def property_name(name: str) -> str:
    """Queryable name -> key in ``properties`` (``properties.x`` and ``x`` are the same)."""
    return name[len("properties."):] if name.startswith("properties.") else name


def tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _bbox(item: dict[str, Any]) -> tuple[float, float, float, float]:
    box = item.get("bbox")
    try:
        if isinstance(box, list) and len(box) in (4, 6):
            half = len(box) // 2
            return (float(box[0]), float(box[1]), float(box[half]), float(box[half + 1]))
        if item.get("geometry"):
            import shapely
            minx, miny, maxx, maxy = shapely.from_geojson(json.dumps(item["geometry"])).bounds
            return (minx, miny, maxx, maxy)
    except Exception:  # a broken geometry just never matches spatially
        pass
    return (_NAN, _NAN, _NAN, _NAN)


def _default_order(times: np.ndarray, colls: Iterable[str], ids: Iterable[str]) -> np.ndarray:
    """Rows newest first (no time last), then by collection and id: the default search order."""
    if not len(times):
        return np.zeros(0, dtype=np.intp)
    t = times[:, 2]
    newest = np.where(np.isnan(t), np.inf, -t)
    return np.lexsort((np.array(list(ids), dtype=str), np.array(list(colls), dtype=str), newest))


def _view_of(raw: Sequence[Any], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of ``raw`` as ``kind`` ("num", "str", "time" or "bool")."""
    if kind == "num":
        nums = [v if type(v) in _NUMBER else _NAN for v in raw]
        vals = np.array(nums, dtype=np.float64) if nums else np.zeros(0)
        return vals, np.array([type(v) in _NUMBER for v in raw], dtype=bool)
    if kind == "str":
        ok = np.array([type(v) is str for v in raw], dtype=bool)
        strs = [v if type(v) is str else "" for v in raw]
        return (np.array(strs, dtype=str) if strs else np.zeros(0, dtype="U1")), ok
    if kind == "time":
        parsed = [try_instant(v) if type(v) is str else None for v in raw]
        ok = np.array([t is not None for t in parsed], dtype=bool)
        return np.array([_NAN if t is None else t for t in parsed], dtype=np.float64), ok
    if kind == "bool":
        ok = np.array([type(v) is bool for v in raw], dtype=bool)
        return np.array([v is True for v in raw], dtype=bool), ok
    raise ValueError(kind)


def _is_box(geometry: Any, box: Sequence[float]) -> bool:
    """Whether ``geometry`` is the rectangle ``box`` (minx, miny, maxx, maxy): then the bbox is exact."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon" or not box[0] <= box[2]:
        return False
    rings = geometry.get("coordinates")
    if not isinstance(rings, list) or len(rings) != 1 or not isinstance(rings[0], list) or len(rings[0]) != 5:
        return False
    ring = rings[0]
    try:
        corners = {(float(p[0]), float(p[1])) for p in ring[:4] if len(p) == 2}
        closed = float(ring[0][0]) == float(ring[4][0]) and float(ring[0][1]) == float(ring[4][1])
    except (TypeError, ValueError, IndexError):
        return False
    x0, y0, x1, y1 = (float(v) for v in box)
    return closed and corners == {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}


def _interval(props: dict[str, Any]) -> tuple[float, float, float]:
    """(start, end, sort instant) of an item; NaN where unknown."""
    dt = try_instant(props.get("datetime"))
    start = try_instant(props.get("start_datetime"))
    end = try_instant(props.get("end_datetime"))
    t0 = start if start is not None else dt
    t1 = end if end is not None else dt
    t0 = t1 if t0 is None else t0
    t1 = t0 if t1 is None else t1
    t0 = _NAN if t0 is None else t0
    t1 = _NAN if t1 is None else t1
    return t0, t1, (dt if dt is not None else t0)


def _text(values: Sequence[Any]) -> str:
    """Searchable text of (title, description, keywords)."""
    parts = [v for v in values[:-1] if isinstance(v, str)]
    kws = values[-1]
    if isinstance(kws, list):
        parts.extend(k for k in kws if isinstance(k, str))
    # Padded with spaces so a phrase is a substring test: " a b " in " x a b y ".
    return " " + " ".join(tokens(" \n ".join(parts))) + " "


class Table:
    """Items in rows. Build with ``from_records``, ``concat`` or ``from_bytes``/``open``; never mutated afterwards."""

    def __init__(self, *, raw: Bodies, links: Blobs, ids: Sequence[str], colls: Sequence[str], version: np.ndarray,
                 log_keys: Sequence[str], box: np.ndarray, times: np.ndarray, props: Columns,
                 has_geom: np.ndarray, geoms: Bodies | None = None, hashes: np.ndarray | None = None) -> None:
        self.n = len(ids)
        # Each item's geometry as GeoJSON, empty where it is its bbox as a rectangle (or absent); None:
        # read from ``raw`` (version-1 segments). A spatial query reads no item body.
        self.geoms = geoms
        self.raw = raw  # item JSON without links (see split_links), each row compressed on its own
        self.links = links  # the item's own (non-structural) links, a JSON array each
        self.id_list = _strings(ids)
        self.coll_list = _coded(colls)
        self.version = version
        self.log_keys = _coded(log_keys)
        self._hashes = hashes
        self.box = box  # (n, 4): minx, miny, maxx, maxy (minx > maxx crosses the antimeridian)
        self.times = times  # (n, 3): start, end, sort instant (epoch seconds)
        self.props = props
        self.has_geom = has_geom  # the geometry itself is parsed from ``raw`` when a query needs it
        self._views: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._shapes: np.ndarray | None = None
        self._shaped: np.ndarray | None = None
        self._kinds: dict[str, str | None] = {}
        self._coll_codes: tuple[np.ndarray, np.ndarray] | None = None
        self._postings: Postings | None = None
        self._readable: dict[ReadScope, np.ndarray] = {}

    # Derived lazily: a cold reader answers its first search without building what it does not use.
    @property
    def id_hashes(self) -> np.ndarray:
        """``id_hash`` of each row's id."""
        if self._hashes is None:
            self._hashes = np.fromiter(map(id_hash, self.id_list), dtype=np.int64, count=self.n)
        return self._hashes

    @cached_property
    def _by_id(self) -> _Lookup:
        return _Lookup(self.id_hashes, self.id_list)

    def row_of(self, key: tuple[str, str]) -> int | None:
        """The row of item (collection, id), if this table holds it."""
        for row in self._by_id.rows(key[1]):
            if self.coll_list[row] == key[0]:
                return row
        return None

    @cached_property
    def ids(self) -> np.ndarray:
        return np.array(list(self.id_list), dtype=str) if self.n else np.zeros(0, dtype="U1")

    @cached_property
    def colls(self) -> np.ndarray:
        names, codes = self.coll_codes
        return names[codes] if self.n else np.zeros(0, dtype="U1")

    @property
    def coll_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct collections, each row's index into them)."""
        if self._coll_codes is None:
            names = np.array(self.coll_list.names, dtype=str) if self.coll_list.names else np.zeros(0, dtype="U1")
            order = np.argsort(names)
            rank = np.empty(len(names), dtype=np.int32)
            rank[order] = np.arange(len(names), dtype=np.int32)
            self._coll_codes = (names[order], rank[self.coll_list.codes] if len(names) else self.coll_list.codes)
        return self._coll_codes

    def text(self, row: int) -> str:
        """The searchable text of ``row`` (see ``_text``), from its stored item."""
        props = orjson.loads(self.raw[row]).get("properties") or {}
        return _text([props.get(f) for f in TEXT_FIELDS + ("keywords",)])

    def item(self, row: int) -> dict[str, Any]:
        """The stored item of ``row`` with its own links."""
        item = orjson.loads(self.raw[row])
        item["links"] = orjson.loads(self.links[row])
        return item  # type: ignore[no-any-return]

    def items(self, rows: Sequence[int] | np.ndarray, batch: int = 4096) -> Iterator[dict[str, Any]]:
        """The stored items of ``rows``, in order (all of a collection: the geoparquet export). Bodies
        still in the segment object are fetched a batch at a time, adjacent chunks in one request."""
        rows = np.asarray(rows, dtype=np.intp)
        for lo in range(0, len(rows), batch):
            part = rows[lo:lo + batch]
            self.raw.prefetch(part)
            for row in part.tolist():
                yield self.item(row)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Sequence[Record], times_of: Sequence[tuple[float, float, float]] | None = None) \
            -> Table:
        """``times_of``: each record's (start, end, sort instant) as ``_interval`` reads them, when the caller
        has them already (a bulk load's normaliser); then every record must hold an item."""
        live = [r for r in records if r.item is not None]
        assert times_of is None or len(times_of) == len(live)
        n = len(live)
        props: dict[str, list[Any]] = {}
        box = np.empty((n, 4), dtype=np.float64)
        times = np.empty((n, 3), dtype=np.float64)
        has_geom = np.zeros(n, dtype=bool)
        raw, links, geoms = [], [], []
        for row, rec in enumerate(live):
            item = rec.item
            assert item is not None
            p = item.get("properties") or {}
            if not isinstance(p, dict):
                p = {}
            for key, value in p.items():
                col = props.get(key)
                if col is None:
                    col = props[key] = [None] * n
                col[row] = value
            bounds = _bbox(item)
            box[row] = bounds
            times[row] = _interval(p) if times_of is None else times_of[row]
            geometry = item.get("geometry")
            has_geom[row] = bool(geometry)
            geoms.append(b"" if not geometry or _is_box(geometry, bounds) else compact_json(geometry))
            core, own = split_links(item)
            raw.append(core)
            links.append(own)
        # Rows in the default search order already: writing the table then needs no reordering pass.
        order = _default_order(times, [r.collection for r in live], [r.id for r in live]).tolist()
        live = [live[i] for i in order]
        props = {k: [col[i] for i in order] for k, col in props.items()}
        return cls(raw=Bodies.plain([raw[i] for i in order]), links=Blobs.of([links[i] for i in order]),
                   ids=[r.id for r in live], colls=[r.collection for r in live],
                   version=np.array([r.version for r in live], dtype=np.int64), log_keys=[r.log_key for r in live],
                   box=box[order], times=times[order], props=Columns.of(props), has_geom=has_geom[order],
                   geoms=Bodies.plain([geoms[i] for i in order]))

    @classmethod
    def concat(cls, parts: Iterable[tuple[Table, np.ndarray]]) -> Table:
        """Rows ``rows`` of each table, in order (folding new items into the base, merging segments).
        Parts taken whole keep their storage as it is (a segment's lazily read columns stay unread)."""
        parts = [(t, np.asarray(rows, dtype=np.intp)) for t, rows in parts]
        whole = _whole(parts)
        if len(parts) == 1 and whole[0]:
            return parts[0][0]
        n = sum(len(rows) for _, rows in parts)
        keys = list(dict.fromkeys(k for t, _ in parts for k in t.props))
        sources: dict[str, Source] = {}
        if all(whole):
            sources = {k: _joined([t for t, _ in parts], k) for k in keys}
        else:
            for k in keys:  # one column at a time as Python objects
                col: list[Any] = []
                for t, rows in parts:
                    if k in t.props:
                        values = t.props[k]
                        col.extend([values[r] for r in rows.tolist()])
                    else:
                        col.extend([None] * len(rows))
                sources[k] = _const(_pack(col))
        links: list[Blobs] = []
        ids: list[Blobs] = []
        for (t, rows), w in zip(parts, whole):
            if w:  # as it is: a cold reader joins a bulk load's segments without a per-row step
                links.append(t.links)
                ids.append(t.id_list.blobs)
                continue
            pick = rows.tolist()
            links.append(Blobs.of(t.links.take(pick)))
            ids.append(Blobs.of(t.id_list.blobs.take(pick)))
        colls = Coded.concat([(t.coll_list, None if w else rows) for (t, rows), w in zip(parts, whole)])
        lkeys = Coded.concat([(t.log_keys, None if w else rows) for (t, rows), w in zip(parts, whole)])

        def stack(attr: str, width: int, dtype: Any) -> np.ndarray:
            arrays = [getattr(t, attr) if w else getattr(t, attr)[rows] for (t, rows), w in zip(parts, whole)]
            return np.concatenate(arrays) if arrays else np.empty((0, width) if width else 0, dtype=dtype)
        raw = Bodies.concat([(t.raw, rows, w) for (t, rows), w in zip(parts, whole)])
        geoms = Bodies.concat([(t.geoms, rows, w) for (t, rows), w in zip(parts, whole) if t.geoms is not None]) \
            if all(t.geoms is not None for t, _ in parts) else None
        hashes = np.concatenate([t.id_hashes if w else t.id_hashes[rows] for (t, rows), w in zip(parts, whole)]) \
            if parts else np.zeros(0, dtype=np.int64)
        table = cls(raw=raw, links=Blobs.joined(links), ids=Strings(Blobs.joined(ids)), colls=colls, hashes=hashes,
                    version=stack("version", 0, np.int64), log_keys=lkeys, box=stack("box", 4, np.float64),
                    times=stack("times", 3, np.float64), props=Columns(sources),
                    has_geom=stack("has_geom", 0, bool), geoms=geoms)
        assert table.n == n
        return table

    # -- persistence ------------------------------------------------------------------------
    # A segment object: MAGIC, a little-endian u32 header length, the JSON header (section directory),
    # then the sections. The "core" sections come first, so one ranged GET of ``core`` bytes loads
    # everything but the property columns and the item bodies, which are read on first use.
    def to_bytes(self, extra: dict[str, Any], *, ordered: bool = True,
                 dictionaries: dict[str, Codec] | None = None) -> tuple[bytes, int]:
        """(the table and ``extra``, a JSON-able dict, as a segment object; the length of its core). Rows are
        written in the default search order (newest first), so a first page reads few body chunks;
        ``ordered=False``: as they are (a concatenation of segments, each in that order: nothing is
        decoded or moved, and their item bodies keep their compression). ``dictionaries``: see
        ``Bodies.stored_reusing``."""
        if ordered and self.n >= ORDERED_ROWS:  # a small segment fits in a few body chunks: not worth a pass
            order = self.default_order()
            if not np.array_equal(order, np.arange(self.n)):
                return Table.concat([(self, order)]).to_bytes(extra, dictionaries=dictionaries)
        out = _Sections()
        out.array("version", self.version)
        out.array("box", self.box)
        out.array("times", self.times)
        out.array("has_geom", self.has_geom)
        out.array("ids_offsets", self.id_list.blobs.offsets)
        out.add("ids", zcompress(self.id_list.blobs.data[0:len(self.id_list.blobs.data)]), "zstd")
        out.array("id_hashes", self.id_hashes)
        for name, coded in (("colls", self.coll_list), ("log_keys", self.log_keys)):
            out.array(name + "_codes", coded.codes.astype(np.int32))
            out.json(name, coded.names)
        out.array("links_offsets", self.links.offsets)
        out.add("links", zcompress(self.links.data[0:len(self.links.data)]), "zstd")
        # Item bodies and geometries: one or more (frames, codec) parts; their dictionaries in the core.
        columns = {"bodies": self.raw, "geoms": self.geoms if self.geoms is not None else self._geoms_from_raw()}
        stored = {name: bodies.stored() if dictionaries is None else bodies.stored_reusing(dictionaries, name)
                  for name, bodies in columns.items()}
        codecs = {name: [[len(blobs), _codec_kind(codec)] for blobs, codec in parts] for name, parts in stored.items()}
        frames: dict[str, list[bytes]] = {}
        for name, parts in stored.items():
            frames[name] = [blobs.data[int(blobs.offsets[0]):int(blobs.offsets[-1])] for blobs, _ in parts]
            starts = np.cumsum([0] + [len(f) for f in frames[name]])
            out.array(name + "_offsets", np.concatenate(
                [blobs.offsets[:-1] - blobs.offsets[0] + at for (blobs, _), at in zip(parts, starts)]
                + [np.array([starts[-1]], dtype=np.int64)]).astype(np.int64))
            out.add(name + "_dicts", b"".join(codec.dictionary or b"" for _, codec in parts), "dicts")
        out.json("extra", extra)
        core = out.at
        names = list(self.props)
        blocks = {}
        for i, name in enumerate(names):
            packed = self.props.packed(name)
            blocks[f"prop{i}"] = [len(b) for b in packed]
            out.add(f"prop{i}", b"".join(packed), "blocks")
        for name in ("geoms", "bodies"):
            out.pieces(name, frames[name], "raw")
        header = compact_json({"format": FORMAT, "n": self.n, "props": names, "core": core, "dir": out.dir,
                               "blocks": blocks, "codecs": codecs})
        lead = MAGIC + struct.pack("<I", len(header)) + header
        return b"".join([lead] + out.parts), len(lead) + core

    @classmethod
    def from_bytes(cls, body: bytes) -> tuple[Table, dict[str, Any]]:
        """A segment object read whole (this format or the version-1 .npz)."""
        if body[:len(MAGIC)] != MAGIC:
            return _from_npz(body)
        # Sections are views of the body, not copies (a merge reads segments whole). A view serves every
        # operation a section sees (slices, len, join, zstd and orjson input); what is decoded as text
        # (ids, links) is decompressed into bytes first.
        view = cast(bytes, memoryview(body))
        return cls.open(lambda start, length: view[start:start + length], view)

    @classmethod
    def open(cls, fetch: Fetch, head: bytes) -> tuple[Table, dict[str, Any]]:
        """A segment from its first bytes ``head`` (at least the header and core); the rest is read with
        ``fetch`` when first used."""
        if head[:len(MAGIC)] != MAGIC:
            raise ValueError("not a search index segment")
        (size,) = struct.unpack("<I", head[len(MAGIC):len(MAGIC) + 4])
        at = len(MAGIC) + 4 + size
        meta = json.loads(bytes(head[len(MAGIC) + 4:at]))
        if meta.get("format") not in (2, FORMAT):
            raise ValueError(f"unknown segment format {meta.get('format')!r}")
        sections: dict[str, list[Any]] = meta["dir"]

        def section(name: str) -> bytes:
            start, length, _ = sections[name]
            if at + start + length <= len(head):
                return head[at + start:at + start + length]
            return fetch(at + start, length)

        def array(name: str) -> np.ndarray:
            kind = sections[name][2]
            dtype, shape = kind.split(":")
            data = zdecompress(section(name))
            return np.frombuffer(data, dtype=np.dtype(dtype)).reshape([int(x) for x in shape.split(",")])

        def listed(name: str) -> Any:
            return json.loads(zdecompress(section(name)))

        def coded(name: str) -> Coded:
            return Coded(listed(name), array(name + "_codes"))

        def frames(name: str) -> bytes | Ranged:
            start, length, _ = sections[name]
            if at + start + length <= len(head):
                return head[at + start:at + start + length]
            return Ranged(fetch, at + start, length)

        def bodies(name: str, offsets: str, dicts: str, codecs: list[list[int]]) -> Bodies:
            """Rows in parts, each with its codec; the parts share the section's (lazily read) bytes."""
            data, bounds, dictionaries = frames(name), array(offsets), section(dicts)
            parts, row, at_dict = [], 0, 0
            for rows, kind in codecs:
                codec = RAW if kind < 0 else Codec(bytes(dictionaries[at_dict:at_dict + kind]))
                at_dict += max(kind, 0)
                parts.append((Blobs(data, bounds[row:row + rows + 1]), codec))
                row += rows
            return Bodies(parts or [(Blobs(b"", np.zeros(1, dtype=np.int64)), RAW)])

        if meta["format"] == 2:  # one part each, its dictionary in a section of its own
            n = meta["n"]
            raw = bodies("bodies", "body_offsets", "dict", [[n, _kind_of(sections["dict"])]])
            geoms = bodies("geoms", "geom_offsets", "geom_dict", [[n, _kind_of(sections["geom_dict"])]])
        else:
            raw = bodies("bodies", "bodies_offsets", "bodies_dicts", meta["codecs"]["bodies"])
            geoms = bodies("geoms", "geoms_offsets", "geoms_dicts", meta["codecs"]["geoms"])
        props = Columns({name: _fetcher(fetch, at, sections[f"prop{i}"], meta["blocks"][f"prop{i}"])
                         for i, name in enumerate(meta["props"])})
        table = cls(raw=raw, links=Blobs(zdecompress(section("links")), array("links_offsets")),
                    ids=Strings(Blobs(zdecompress(section("ids")), array("ids_offsets"))), hashes=array("id_hashes"),
                    colls=coded("colls"), version=array("version"), log_keys=coded("log_keys"),
                    box=array("box"), times=array("times"), props=props, has_geom=array("has_geom"),
                    geoms=geoms)
        return table, listed("extra")

    # -- core filters ------------------------------------------------------------------------
    def id_mask(self, ids: Iterable[str]) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        for item_id in ids:
            mask[self._by_id.rows(item_id)] = True
        return mask

    @cached_property
    def owners(self) -> Owners:
        return Owners(list(self.values(PROJECT)), list(self.values(PROJECT_ID)), list(self.values(VISIBILITY)))

    def readable(self, scope: ReadScope) -> np.ndarray | None:
        """Rows ``scope`` may read (None: all of them, at no cost). Masks are kept for the last few
        scopes: a caller's scope is the same object's equal on every request until its cache expires."""
        if scope.everything:
            return None
        mask = self._readable.get(scope)
        if mask is None:
            if len(self._readable) >= _READABLE_CACHE:
                self._readable.clear()  # atomic under concurrent requests, unlike evicting one
            mask = self._readable[scope] = self.owners.readable(scope)
        return mask

    def collection_mask(self, collections: Iterable[str]) -> np.ndarray:
        names, codes = self.coll_codes
        wanted = np.isin(names, list(collections))  # over the few distinct names, then one lookup per row
        if wanted.sum() == 1:
            return codes == int(np.flatnonzero(wanted)[0])  # type: ignore[no-any-return]
        return wanted[codes] if len(names) else np.zeros(self.n, dtype=bool)  # type: ignore[no-any-return]

    # -- typed views of a queryable ---------------------------------------------------------
    def values(self, name: str) -> Sequence[Any]:
        """Raw values of a queryable per row (None where absent)."""
        if name == "id":
            return self.id_list
        if name == "collection":
            return self.coll_list
        prop = property_name(name)
        return self.props[prop] if prop in self.props else [None] * self.n

    def view(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) for kind "num", "str", "time" or "bool"; cached per table."""
        key = (name, kind)
        cached = self._views.get(key)
        if cached is None:
            cached = self._views[key] = self._build_view(name, kind)
            if self.n >= BIG:
                release_memory()
        return cached

    def _build_view(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind == "str" and name in ("id", "collection"):
            return (self.ids if name == "id" else self.colls), np.ones(self.n, dtype=bool)
        if kind == "time" and property_name(name) == "datetime":
            vals = self.times[:, 2]
            return vals, ~np.isnan(vals)
        parts = [_view_of(chunk, kind) for chunk in self._chunks(name)]
        if not parts:
            return _view_of([], kind)
        return np.concatenate([v for v, _ in parts]), np.concatenate([ok for _, ok in parts])

    def _chunks(self, name: str) -> Iterator[Sequence[Any]]:
        """The values of ``name`` a block at a time (see ``Columns``)."""
        prop = property_name(name)
        if name in ("id", "collection"):
            yield self.values(name)
        elif prop in self.props:
            yield from self.props.chunks(prop)
        else:
            for lo in range(0, self.n, BLOCK):
                yield [None] * min(BLOCK, self.n - lo)

    def rank(self, name: str, kind: str) -> np.ndarray:
        """A float per row ordering ``name`` within this table (nulls last, as ``inf``): the paging key."""
        return self._ranked(name, kind)[0]

    def _ranked(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(ranks, the sorted distinct strings a "str" rank indexes; empty for other kinds)."""
        key = (name, "rank:" + kind)
        cached = self._views.get(key)
        if cached is None:
            vals, ok = self.view(name, kind)
            uniq = np.zeros(0, dtype="U1")
            if kind == "str":
                uniq, vals = np.unique(vals, return_inverse=True)
            ranks = np.where(ok, vals.astype(np.float64), np.inf)
            cached = self._views[key] = (ranks, uniq)
        return cached

    def str_ranks(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(each row's rank among the sorted distinct values of the "str" view of ``name``, ``inf`` where
        not valid; those values): string comparisons as number comparisons (shared with sorting)."""
        return self._ranked(name, "str")

    def sort_order(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows in ascending ``rank`` order, their ranks): paging walks it instead of sorting matches."""
        key = (name, "order:" + kind)
        cached = self._views.get(key)
        if cached is None:
            ranks = self.rank(name, kind)
            order = np.argsort(ranks, kind="stable")
            cached = self._views[key] = (order, ranks[order])
        return cached

    def rank_span(self, name: str, kind: str, value: Any) -> tuple[int, int]:
        """[lo, hi): the positions in ``sort_order`` of rows whose ``name`` equals ``value`` (None: null);
        where such rows would be when there are none. A binary search, so a cursor costs O(log n)."""
        ranks = self.sort_order(name, kind)[1]
        if value is None:
            r = np.inf
        elif kind == "str":
            uniq = self._ranked(name, kind)[1]
            i = int(np.searchsorted(uniq, value))
            r = float(i) if i < len(uniq) and uniq[i] == value else i - 0.5  # absent: between its neighbours
        else:
            r = float(value)
        return int(np.searchsorted(ranks, r, side="left")), int(np.searchsorted(ranks, r, side="right"))

    def present(self, name: str) -> np.ndarray:
        """Rows where ``name`` has a non-null value."""
        key = (name, "present")
        cached = self._views.get(key)
        if cached is None:
            cached = self._views[key] = (self._present(name), np.zeros(0, dtype=bool))
        return cached[0]

    def _present(self, name: str) -> np.ndarray:
        if name in ("id", "collection"):
            return np.ones(self.n, dtype=bool)
        if name == "geometry":
            return self.has_geom
        parts = [np.array([v is not None for v in chunk], dtype=bool) for chunk in self._chunks(name)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def kind_of(self, name: str) -> str | None:
        """The view kind that covers every non-null value of ``name`` (None: mixed or empty)."""
        if name in ("id", "collection"):
            return "str"
        if property_name(name) == "datetime":
            return "time"
        if name not in self._kinds:
            self._kinds[name] = self._kind_of(name)
            if self.n >= BIG:
                release_memory()
        return self._kinds[name]

    def _kind_of(self, name: str) -> str | None:
        """As the views would say (a kind whose view is valid wherever a value is present), from one
        decoding of the column."""
        kinds = {"num", "bool", "time", "str"}
        seen = False
        for v in (v for chunk in self._chunks(name) for v in chunk):
            if v is None:
                continue
            seen = True
            t = type(v)
            if t is not str:
                kinds &= {"num"} if t in _NUMBER else {"bool"} if t is bool else set()
            else:
                kinds.discard("num")
                kinds.discard("bool")
                if "time" in kinds and try_instant(v) is None:
                    kinds.discard("time")
            if not kinds:
                return None
        if not seen:
            return None
        return next(k for k in ("num", "bool", "time", "str") if k in kinds)

    # -- geometry and text ---------------------------------------------------------------
    @cached_property
    def grid(self) -> BoxGrid:
        """The rows by where their bbox lies, built on the first bbox query (8 B per row)."""
        from .grid import BoxGrid
        grid = BoxGrid(self.box)
        if self.n >= BIG:
            release_memory()
        return grid

    def shapes_for(self, rows: np.ndarray) -> np.ndarray:
        """Shapely geometries of ``rows`` (None where absent or invalid), made on first use."""
        import shapely
        if self._shapes is None or self._shaped is None:
            self._shapes, self._shaped = np.full(self.n, None, dtype=object), np.zeros(self.n, dtype=bool)
        todo = rows[~self._shaped[rows] & self.has_geom[rows]]
        if self.geoms is not None and len(todo):
            boxes = todo[self.geoms.sizes(todo) == 0]  # the geometry is the bbox: no GeoJSON to parse
            b = self.box[boxes]
            self._shapes[boxes] = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
            todo = np.setdiff1d(todo, boxes)
            self.geoms.prefetch(todo)
        for row in todo.tolist():
            try:
                if self.geoms is not None:
                    self._shapes[row] = shapely.from_geojson(self.geoms[row])
                else:
                    self._shapes[row] = shapely.geometry.shape(orjson.loads(self.raw[row])["geometry"])
            except Exception:  # an invalid item geometry never matches
                self._shapes[row] = None
        self._shaped[rows] = True
        return self._shapes[rows]

    def default_order(self) -> np.ndarray:
        """Rows in the default search order: newest first (no time last), then collection, id."""
        return _default_order(self.times, self.coll_list, self.id_list)

    def _geoms_from_raw(self) -> Bodies:
        out = []
        for r in range(self.n):
            g = orjson.loads(self.raw[r]).get("geometry") if self.has_geom[r] else None
            out.append(b"" if not g or _is_box(g, self.box[r].tolist()) else compact_json(g))
        return Bodies.plain(out)

    def folded(self, name: str, mode: str, fold: Any) -> tuple[np.ndarray, np.ndarray]:
        """The string view of ``name`` case- and/or accent-folded (CASEI/ACCENTI)."""
        key = (name, "str:" + mode)
        cached = self._views.get(key)
        if cached is None:
            vals, ok = self.view(name, "str")
            folded = [fold(v, mode) for v in vals.tolist()]
            cached = self._views[key] = (np.array(folded, dtype=str) if folded else vals, ok)
        return cached

    def postings(self) -> Postings:
        """Word -> sorted rows whose title/description/keywords contain it."""
        if self._postings is None:
            self._postings = Postings.of([(f == "keywords", self.props.chunks(f))
                                          for f in TEXT_FIELDS + ("keywords",) if f in self.props])
            if self.n >= BIG:
                release_memory()
        return self._postings



MAGIC = b"STACSEG2"
# 2: one codec for all item bodies (and one for geometries); 3: several (rows, codec) parts each, so
# segments concatenated by a merge keep their compressed bodies as they are. Both are read.
FORMAT = 3


def _codec_kind(codec: Codec) -> int:
    """How a part's codec is recorded: -1 stored as is, else its dictionary's length (0: zstd alone)."""
    return -1 if codec.dictionary is None else len(codec.dictionary)


def _kind_of(entry: list[Any]) -> int:
    """A format-2 dictionary section's codec kind (see ``_codec_kind``)."""
    return -1 if entry[2] == "raw" else int(entry[1])


class _Sections:
    """Sections of a segment object, back to back, and their directory (offset, length, kind)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # or memoryviews of the segments a merge reads
        self.dir: dict[str, list[Any]] = {}
        self.at = 0

    def add(self, name: str, data: bytes, kind: str) -> None:
        self.pieces(name, [data], kind)

    def pieces(self, name: str, data: Sequence[bytes], kind: str) -> None:
        """A section written from pieces (not joined first: a merge's output holds its bytes once)."""
        size = sum(len(d) for d in data)
        self.dir[name] = [self.at, size, kind]
        self.parts.extend(data)
        self.at += size

    def array(self, name: str, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        self.add(name, zcompress(a.tobytes()), f"{a.dtype.str}:{','.join(map(str, a.shape))}")

    def json(self, name: str, doc: Any) -> None:
        self.add(name, zcompress(compact_json(doc)), "json")


def _fetcher(fetch: Fetch, at: int, entry: list[Any], sizes: list[int]) -> Source:
    """A column's section (past the core): read when first used, split into its blocks (the reader holds
    no bytes of the object for it until then)."""
    def load() -> list[bytes]:
        data = fetch(at + entry[0], entry[1]) if entry[1] else b""
        bounds = np.cumsum([0] + sizes).tolist()
        return [data[a:b] for a, b in zip(bounds, bounds[1:])]
    return load


def _from_npz(body: bytes) -> tuple[Table, dict[str, Any]]:
    """A version-1 segment (an uncompressed .npz written before the format above): still read, so an
    upgraded reader serves an index written by an older release until compaction or ``reindex``
    rewrites it."""
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        props = Columns({name: _const(_pack(json.loads(z[f"prop{i}"].tobytes())))
                         for i, name in enumerate(meta["props"])})
        table = Table(raw=Bodies([(Blobs(z["raw"].tobytes(), z["raw_offsets"]), RAW)]),
                      links=Blobs(z["links"].tobytes(), z["links_offsets"]), ids=meta["ids"],
                      colls=meta["colls"], version=z["version"], log_keys=meta["log_keys"], box=z["box"],
                      times=z["times"], props=props, has_geom=z["has_geom"])
    return table, meta["extra"]


class Postings:
    """Word -> rows without an object per word: per block of rows, sorted word hashes and offsets into
    one array of rows (a block at a time, so building it never holds more than a block's pairs). Two
    words with one 64-bit hash would share rows; phrases are checked against the text itself."""

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.blocks = blocks  # (sorted distinct hashes, offsets, rows) per block, rows ascending

    @classmethod
    def of(cls, columns: Sequence[tuple[bool, Iterable[Sequence[Any]]]]) -> Postings:
        """From the text columns (listed: keywords, an array of strings; else one string), read a block
        at a time together (a decoded column is ~10x its JSON; a table's columns share their blocking);
        the words of ``_text``."""
        blocks = []
        row = 0
        listed = [flag for flag, _ in columns]
        for chunks in zip(*(chunked for _, chunked in columns), strict=True):
            hs: list[int] = []
            rs: list[int] = []
            for values in zip(*chunks, strict=True):
                words: set[str] = set()
                for flag, value in zip(listed, values):
                    if flag:
                        value = " \n ".join(v for v in value if isinstance(v, str)) if isinstance(value, list) else None
                    if isinstance(value, str):
                        words.update(tokens(value))
                hs.extend(hash(w) for w in words)
                rs.extend([row] * len(words))
                row += 1
            h = np.array(hs, dtype=np.int64)
            order = np.argsort(h, kind="stable")  # rows stay ascending within a word
            h, r = h[order], np.array(rs, dtype=np.int32)[order]
            starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, dtype=np.intp)
            blocks.append((h[starts], np.append(starts, len(h)), r))
        return cls(blocks)

    def get(self, word: str) -> np.ndarray | None:
        h = hash(word)
        hits = []
        for hashes, offsets, rows in self.blocks:
            i = int(np.searchsorted(hashes, h))
            if i < len(hashes) and hashes[i] == h:
                hits.append(rows[offsets[i]:offsets[i + 1]])
        return np.concatenate(hits).astype(np.intp) if hits else None


class _Lookup:
    """Rows by id without a dict entry per row: sorted ``id_hash``es and a binary search (16 B/row)."""

    def __init__(self, hashes: np.ndarray, keys: Sequence[str]) -> None:
        self.order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[self.order]
        self.keys = keys

    def rows(self, key: str) -> list[int]:
        h = id_hash(key)
        lo = int(np.searchsorted(self.hashes, h, side="left"))
        hi = int(np.searchsorted(self.hashes, h, side="right"))
        return [r for r in self.order[lo:hi].tolist() if self.keys[r] == key]
