"""A columnar, immutable view of a set of STAC items: what a search evaluates against.

Core columns (id, collection, bbox, time interval) are numpy arrays built once (and persisted
with each index segment, so a reader loads them without parsing items); typed
views of any property (number, string, time, boolean), the shapely geometries and the
free-text postings are derived on first use and cached, so a query pays only for the
columns it touches.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson

from ..auth.access import ReadScope
from .access import PROJECT, PROJECT_ID, VISIBILITY, Owners, is_public
from .catalog import STRUCTURAL_RELS
from .datetimes import try_instant
from .hrefs import route_downloads

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
    """Byte strings stored back to back (one buffer + offsets): cheap to persist and to load."""

    def __init__(self, data: bytes, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets  # int64, len n + 1

    @classmethod
    def of(cls, parts: Sequence[bytes]) -> Blobs:
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return cls(b"".join(parts), offsets)

    @cached_property
    def bounds(self) -> list[int]:
        """``offsets`` as Python ints: row ``r`` is ``data[bounds[r]:bounds[r + 1]]``."""
        return self.offsets.tolist()  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> bytes:
        return self.data[self.bounds[row]:self.bounds[row + 1]]

    def take(self, rows: Sequence[int]) -> list[bytes]:
        data, off = self.data, self.bounds
        return [data[off[r]:off[r + 1]] for r in rows]


class Columns(Mapping[str, list[Any]]):
    """Property columns kept as JSON until first used: a cold reader parses only what queries touch."""

    def __init__(self, encoded: dict[str, bytes]) -> None:
        self._encoded = encoded
        self._decoded: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        col = self._decoded.get(name)
        if col is None:
            col = self._decoded[name] = json.loads(self._encoded[name])
        return col

    def encoded(self, name: str) -> bytes | None:
        """The column as its JSON array text (None: no such column)."""
        return self._encoded.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)


def _whole_columns(parts: Sequence[tuple[Any, np.ndarray]], keys: set[str]) -> Columns | None:
    """When every part is taken whole, in order, and still holds its columns as JSON (segments that
    share no item: a bulk load's), their columns joined as JSON text, so merging parses no property;
    else None."""
    for t, rows in parts:
        if not isinstance(t.props, Columns) or len(rows) != t.n or not np.array_equal(rows, np.arange(t.n)):
            return None
    joined = {}
    for k in keys:
        pieces = []
        for t, _ in parts:
            if t.n:
                enc = t.props.encoded(k)
                pieces.append(enc.strip()[1:-1] if enc is not None else b",".join([b"null"] * t.n))
        joined[k] = b"[" + b",".join(pieces) + b"]"
    return Columns(joined)


def split_links(item: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the item's JSON without links, its non-structural links as a JSON array).

    The API writes its own structural links in front of the kept ones, so responses are
    spliced from these bytes instead of parsing and re-serialising each item. A non-public item's
    assets already point at the download route (``hrefs.route_downloads``).
    """
    core = {k: v for k, v in item.items() if k != "links"}
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
    """Items in rows. Build with ``from_records``, ``concat`` or ``from_bytes``; never mutated afterwards."""

    def __init__(self, *, raw: Blobs, links: Blobs, ids: list[str], colls: list[str], version: np.ndarray,
                 log_keys: list[str], box: np.ndarray, times: np.ndarray, props: Mapping[str, list[Any]],
                 has_geom: np.ndarray) -> None:
        self.n = len(ids)
        self.raw = raw  # item JSON without links (see split_links)
        self.links = links  # the item's own (non-structural) links, a JSON array each
        self.id_list = ids
        self.coll_list = colls
        self.version = version
        self.log_keys = log_keys
        self.box = box  # (n, 4): minx, miny, maxx, maxy (minx > maxx crosses the antimeridian)
        self.times = times  # (n, 3): start, end, sort instant (epoch seconds)
        self.props = props
        self.has_geom = has_geom  # the geometry itself is parsed from ``raw`` when a query needs it
        self._views: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._shapes = np.full(self.n, None, dtype=object)
        self._shaped = np.zeros(self.n, dtype=bool)
        self._kinds: dict[str, str | None] = {}
        self._by_id: dict[str, list[int]] | None = None
        self._coll_codes: tuple[np.ndarray, np.ndarray] | None = None
        self._postings: dict[str, np.ndarray] | None = None
        self._readable: dict[ReadScope, np.ndarray] = {}

    # Derived lazily: a cold reader answers its first search without building what it does not use.
    @cached_property
    def index(self) -> dict[tuple[str, str], int]:
        return {key: row for row, key in enumerate(zip(self.coll_list, self.id_list))}

    @cached_property
    def ids(self) -> np.ndarray:
        return np.array(self.id_list, dtype=str) if self.n else np.zeros(0, dtype="U1")

    @cached_property
    def colls(self) -> np.ndarray:
        return np.array(self.coll_list, dtype=str) if self.n else np.zeros(0, dtype="U1")

    @cached_property
    def texts(self) -> list[str]:
        cols = [self.props.get(f) or [None] * self.n for f in TEXT_FIELDS + ("keywords",)]
        return [_text(values) for values in zip(*cols)] if cols else []

    def item(self, row: int) -> dict[str, Any]:
        """The stored item of ``row`` with its own links."""
        item = json.loads(self.raw[row])
        item["links"] = json.loads(self.links[row])
        return item  # type: ignore[no-any-return]

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Sequence[Record]) -> Table:
        live = [r for r in records if r.item is not None]
        n = len(live)
        props: dict[str, list[Any]] = {}
        box = np.empty((n, 4), dtype=np.float64)
        times = np.empty((n, 3), dtype=np.float64)
        has_geom = np.zeros(n, dtype=bool)
        raw, links = [], []
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
            box[row] = _bbox(item)
            times[row] = _interval(p)
            has_geom[row] = bool(item.get("geometry"))
            core, own = split_links(item)
            raw.append(core)
            links.append(own)
        return cls(raw=Blobs.of(raw), links=Blobs.of(links), ids=[r.id for r in live],
                   colls=[r.collection for r in live], version=np.array([r.version for r in live], dtype=np.int64),
                   log_keys=[r.log_key for r in live], box=box, times=times, props=props, has_geom=has_geom)

    @classmethod
    def concat(cls, parts: Iterable[tuple[Table, np.ndarray]]) -> Table:
        """Rows ``rows`` of each table, in order (folding new items into the base, merging segments)."""
        parts = [(t, np.asarray(rows, dtype=np.intp)) for t, rows in parts]
        if len(parts) == 1 and len(parts[0][1]) == parts[0][0].n and \
                np.array_equal(parts[0][1], np.arange(parts[0][0].n)):
            return parts[0][0]
        n = sum(len(rows) for _, rows in parts)
        keys = {k for t, _ in parts for k in t.props}
        whole = _whole_columns(parts, keys)
        props: dict[str, list[Any]] = {k: [] for k in keys} if whole is None else {}
        raw: list[bytes] = []
        links: list[bytes] = []
        ids: list[str] = []
        colls: list[str] = []
        lkeys: list[str] = []
        for t, rows in parts:
            pick = rows.tolist()
            for k in props:
                col = t.props.get(k)
                props[k].extend([col[r] for r in pick] if col is not None else [None] * len(pick))
            raw.extend(t.raw.take(pick))
            links.extend(t.links.take(pick))
            ids.extend(t.id_list[r] for r in pick)
            colls.extend(t.coll_list[r] for r in pick)
            lkeys.extend(t.log_keys[r] for r in pick)

        def stack(attr: str, width: int, dtype: Any) -> np.ndarray:
            arrays = [getattr(t, attr)[rows] for t, rows in parts]
            return np.concatenate(arrays) if arrays else np.empty((0, width) if width else 0, dtype=dtype)
        table = cls(raw=Blobs.of(raw), links=Blobs.of(links), ids=ids, colls=colls,
                    version=stack("version", 0, np.int64), log_keys=lkeys, box=stack("box", 4, np.float64),
                    times=stack("times", 3, np.float64), props=props if whole is None else whole,
                    has_geom=stack("has_geom", 0, bool))
        assert table.n == n
        return table

    # -- persistence: numpy columns + one JSON document, so loading parses no item ------------
    def to_bytes(self, extra: dict[str, Any]) -> bytes:
        """The table (and ``extra``, a JSON-able dict) as one uncompressed .npz."""
        names = sorted(self.props)
        meta = _dumps({"ids": self.id_list, "colls": self.coll_list, "log_keys": self.log_keys, "props": names,
                       "extra": extra})
        columns: dict[str, Any] = {f"prop{i}": np.frombuffer(_dumps(self.props[name]), dtype=np.uint8)
                                   for i, name in enumerate(names)}
        buf = io.BytesIO()
        np.savez(buf, version=self.version, box=self.box, times=self.times, has_geom=self.has_geom,
                 raw=np.frombuffer(self.raw.data, dtype=np.uint8), raw_offsets=self.raw.offsets,
                 links=np.frombuffer(self.links.data, dtype=np.uint8), links_offsets=self.links.offsets,
                 meta=np.frombuffer(meta, dtype=np.uint8), **columns)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, body: bytes) -> tuple[Table, dict[str, Any]]:
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            props = Columns({name: z[f"prop{i}"].tobytes() for i, name in enumerate(meta["props"])})
            table = cls(raw=Blobs(z["raw"].tobytes(), z["raw_offsets"]),
                        links=Blobs(z["links"].tobytes(), z["links_offsets"]), ids=meta["ids"], colls=meta["colls"],
                        version=z["version"], log_keys=meta["log_keys"], box=z["box"], times=z["times"],
                        props=props, has_geom=z["has_geom"])
        return table, meta["extra"]

    # -- core filters ------------------------------------------------------------------------
    def id_mask(self, ids: Iterable[str]) -> np.ndarray:
        if self._by_id is None:
            by_id: dict[str, list[int]] = {}
            for row, item_id in enumerate(self.id_list):
                by_id.setdefault(item_id, []).append(row)
            self._by_id = by_id
        mask = np.zeros(self.n, dtype=bool)
        for item_id in ids:
            mask[self._by_id.get(item_id, [])] = True
        return mask

    @cached_property
    def owners(self) -> Owners:
        return Owners(self.values(PROJECT), self.values(PROJECT_ID), self.values(VISIBILITY))

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
        if self._coll_codes is None:
            self._coll_codes = np.unique(self.colls, return_inverse=True)
        names, codes = self._coll_codes
        wanted = np.flatnonzero(np.isin(names, list(collections)))
        return np.isin(codes, wanted)

    # -- typed views of a queryable ---------------------------------------------------------
    def values(self, name: str) -> list[Any]:
        """Raw values of a queryable per row (None where absent)."""
        if name == "id":
            return self.id_list
        if name == "collection":
            return self.coll_list
        return self.props.get(property_name(name)) or [None] * self.n

    def view(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) for kind "num", "str", "time" or "bool"; cached per table."""
        key = (name, kind)
        cached = self._views.get(key)
        if cached is None:
            cached = self._views[key] = self._build_view(name, kind)
        return cached

    def _build_view(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind == "str" and name in ("id", "collection"):
            return (self.ids if name == "id" else self.colls), np.ones(self.n, dtype=bool)
        if kind == "time" and property_name(name) == "datetime":
            vals = self.times[:, 2]
            return vals, ~np.isnan(vals)
        raw = self.values(name)
        if kind == "num":
            nums = [v if type(v) in _NUMBER else _NAN for v in raw]
            vals = np.array(nums, dtype=np.float64) if nums else np.zeros(0)
            ok = np.array([type(v) in _NUMBER for v in raw], dtype=bool)
            return vals, ok
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
        col = self.props.get(property_name(name))
        if col is None:
            return np.zeros(self.n, dtype=bool)
        return np.array([v is not None for v in col], dtype=bool)

    def kind_of(self, name: str) -> str | None:
        """The view kind that covers every non-null value of ``name`` (None: mixed or empty)."""
        if name in ("id", "collection"):
            return "str"
        if property_name(name) == "datetime":
            return "time"
        if name not in self._kinds:
            self._kinds[name] = self._kind_of(name)
        return self._kinds[name]

    def _kind_of(self, name: str) -> str | None:
        present = self.present(name)
        count = int(present.sum())
        if count == 0:
            return None
        for kind in ("num", "bool", "time", "str"):
            if int(self.view(name, kind)[1].sum()) == count:
                return kind
        return None

    # -- geometry and text ---------------------------------------------------------------
    def shapes_for(self, rows: np.ndarray) -> np.ndarray:
        """Shapely geometries of ``rows`` (None where absent or invalid), parsed on first use."""
        import shapely
        todo = rows[~self._shaped[rows] & self.has_geom[rows]]
        for row in todo.tolist():
            try:
                self._shapes[row] = shapely.geometry.shape(json.loads(self.raw[row])["geometry"])
            except Exception:  # an invalid item geometry never matches
                self._shapes[row] = None
        self._shaped[todo] = True
        return self._shapes[rows]

    def folded(self, name: str, mode: str, fold: Any) -> tuple[np.ndarray, np.ndarray]:
        """The string view of ``name`` case- and/or accent-folded (CASEI/ACCENTI)."""
        key = (name, "str:" + mode)
        cached = self._views.get(key)
        if cached is None:
            vals, ok = self.view(name, "str")
            folded = [fold(v, mode) for v in vals.tolist()]
            cached = self._views[key] = (np.array(folded, dtype=str) if folded else vals, ok)
        return cached

    def postings(self) -> dict[str, np.ndarray]:
        """Word -> sorted rows whose title/description/keywords contain it."""
        if self._postings is None:
            acc: dict[str, list[int]] = {}
            for row, text in enumerate(self.texts):
                for word in set(text.split()):
                    acc.setdefault(word, []).append(row)
            self._postings = {w: np.array(rows, dtype=np.intp) for w, rows in acc.items()}
        return self._postings

