"""SharingHub's README front matter -> typed metadata, plus a warning per field that could not be used.

The front matter is the YAML block between a first line ``---`` and the next line ``---`` (or
``...``) of the project's README. Fields (all optional)::

    title: Sentinel-2 tiles              # str
    description: ...                     # str (else the README's body, else the project's description)
    license: CC-BY-4.0                   # SPDX id; an expression (MIT OR Apache-2.0) gives "other" and a
                                         # link per id; unknown -> warning, "other"
    license-url: https://...             # a license link (also license_url)
    extent:
      spatial: [w, s, e, n]              # bbox (6 numbers: 3-D), or WKT, or a GeoJSON geometry
      temporal: [start, end]             # dates or date-times (UTC if no zone); either may be null
    providers: [{name, description, roles: [licensor|producer|processor|host], url}]
    keywords: [a, b]                     # plus the project's GitLab topics
    related: {dataset: <url>|[<url>]}    # SharingHub's form, or a list of urls / {href, title}
    links: [{href, rel, title, type}]    # relative hrefs point into the repository at the version
    assets: ["*.tif", {path|glob, key, href, type, title, description, roles, <prefix:field>}]
    preview: images/preview.png          # thumbnail asset + preview link
    eo: {cloud_cover: 10}                # extension blocks -> eo:cloud_cover, ... (also label, sci,
                                         # sar, sat, view, proj, raster, grid, mgrs, cube, pc)
    extensions: {foo: https://.../schema.json}   # declare more extension blocks
    eo:cloud_cover: 10                   # prefixed fields of a known extension, flat
    sharinghub: {x: 1}                   # -> sharinghub:x
    mlm: {...} / ml-model: {...}         # model projects (topic sharinghub:aimodel) only
    stacflow:
      publish_default_branch: true       # also publish the default branch as a development item

``parse`` never raises: invalid YAML, a bad bbox or WKT, an unknown license or a wrong type costs
that field only, with a warning naming it. YAML is read with the safe loader, the block is bounded
(``MAX_FRONT_MATTER``), and alias expansion and nesting are bounded (``MAX_NODES``, ``MAX_DEPTH``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from functools import lru_cache
from typing import Any, Callable, Mapping

Warn = Callable[[str, str], None]  # (field, message)

MAX_FRONT_MATTER = 256 * 1024  # bytes of YAML; a bigger block is not metadata anyone wrote by hand
MAX_NODES = 100_000  # values after alias expansion (a "billion laughs" stops here)
MAX_DEPTH = 64
MAX_BODY = 16 * 1024  # characters of README body kept as the item's description
PROVIDER_ROLES = frozenset({"licensor", "producer", "processor", "host"})
# Prefixes whose fields the builder owns: no front-matter block or declared extension may set them.
RESERVED_PREFIXES = frozenset({"stacflow", "file", "mlm", "ml-model", "sharinghub"})
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(?P<yaml>.*?)^(?:---|\.\.\.)[ \t]*\r?$\n?", re.S | re.M)
_OPENING = re.compile(r"\A\ufeff?---[ \t]*\r?\n")
_PREFIXED = re.compile(r"^(?P<prefix>[a-z][a-z0-9-]*):(?P<name>[A-Za-z0-9_.:-]+)$")
_MODEL_BLOCKS = ("mlm", "ml-model")
_KNOWN = frozenset({"title", "description", "license", "license-url", "license_url", "extent", "providers",
                    "keywords", "related", "links", "assets", "preview", "extensions", "sharinghub", "stacflow",
                    *_MODEL_BLOCKS})


@lru_cache(maxsize=1)
def known_extensions() -> dict[str, str]:
    """Front-matter block name -> extension schema URI, as pystac's extension modules define them."""
    import warnings
    with warnings.catch_warnings():  # pystac deprecates its *helpers* for label; the extension stands
        warnings.simplefilter("ignore", DeprecationWarning)
        from pystac.extensions import (datacube, eo, grid, label, mgrs, pointcloud, projection, raster, sar, sat,
                                       scientific, view)
    out = {m.PREFIX.rstrip(":"): m.SCHEMA_URI for m in (eo, label, scientific, sar, sat, view, projection, grid,
                                                         mgrs, datacube, pointcloud)}
    out["raster"] = raster.SCHEMA_URI
    return out


@dataclass(frozen=True)
class AssetRule:
    """One entry of ``assets``: a glob over the repository's DVC outputs and files, or a fixed href."""

    glob: str | None = None
    href: str | None = None
    key: str | None = None  # may use {path}
    type: str | None = None
    title: str | None = None  # may use {key} and {path}
    description: str | None = None
    roles: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # prefixed fields (e.g. mlm:artifact_type)


@dataclass(frozen=True)
class Related:
    href: str
    title: str | None = None
    collection: str | None = None


@dataclass
class FrontMatter:
    title: str | None = None
    description: str | None = None
    body: str = ""  # the README without its front matter
    license: str | None = None  # one SPDX id (normalized) or "other"
    license_expression: str | None = None  # an SPDX expression of several ids (license is then "other")
    license_ids: list[str] = field(default_factory=list)  # the SPDX ids named (each gets a license link)
    license_url: str | None = None
    geometry: dict[str, Any] | None = None
    bbox: list[float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    providers: list[dict[str, Any]] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    assets: list[AssetRule] = field(default_factory=list)
    preview: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # extension fields, prefixed
    extensions: set[str] = field(default_factory=set)  # schema URIs of the blocks used
    model: dict[str, Any] = field(default_factory=dict)  # merged mlm: / ml-model: blocks, prefixed
    publish_default_branch: bool = False


# -- YAML ----------------------------------------------------------------------------------------
def load_yaml(text: bytes | str) -> Any:
    """YAML (safe loader) as plain JSON values, except dates and date-times, kept for ``extent.temporal``
    (``plain_json`` turns them into text). ValueError on invalid YAML or over the bounds."""
    import yaml
    # libyaml's safe loader: ~10x faster (a project may have thousands of .dvc files), and it stops at
    # 1,000 levels of nesting itself; the pure-Python one raises RecursionError there.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except RecursionError:
        raise ValueError("nested deeper than Python can parse") from None
    except yaml.YAMLError as err:
        raise ValueError(" ".join(str(err).split())[:300]) from None
    budget = [MAX_NODES]
    return _plain(raw, 0, budget, keep_dates=True)


def _plain(value: Any, depth: int, budget: list[int], *, keep_dates: bool = False) -> Any:
    """``value`` with JSON types only (counting every node, aliases each time they appear)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_NODES} values (aliases expanded)")
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1, budget, keep_dates=keep_dates) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_plain(v, depth + 1, budget, keep_dates=keep_dates) for v in items]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date)):
        return value if keep_dates else value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def split(readme: str) -> tuple[str | None, str, str | None]:
    """(front matter YAML or None, body, problem): a README without front matter is all body."""
    if not _OPENING.match(readme):
        return None, readme, None
    m = _FRONT.match(readme[:MAX_FRONT_MATTER + 64])
    if m and len(m["yaml"]) <= MAX_FRONT_MATTER:
        return m["yaml"], readme[m.end():], None
    if len(readme) > MAX_FRONT_MATTER:
        return None, readme, f"no closing '---' within the first {MAX_FRONT_MATTER} characters"
    return None, readme, "no closing '---' line"


def wants_default_branch(readme: bytes | None) -> bool:
    """Whether the README opts in to publishing the default branch (``stacflow.publish_default_branch``)."""
    return parse(readme, lambda _f, _m: None).publish_default_branch


# -- fields --------------------------------------------------------------------------------------
def parse(readme: bytes | None, warn: Warn) -> FrontMatter:
    fm = FrontMatter()
    if readme is None:
        return fm
    text = readme.decode("utf-8", errors="replace")
    yaml_text, body, problem = split(text)
    fm.body = body.strip()
    if problem:
        warn("front matter", f"{problem}: front matter ignored")
    if yaml_text is None:
        return fm
    try:
        doc = load_yaml(yaml_text)
    except ValueError as err:
        warn("front matter", f"invalid YAML, front matter ignored: {err}")
        return fm
    if doc is None:
        return fm
    if not isinstance(doc, dict):
        warn("front matter", f"is a {type(doc).__name__}, not a mapping: ignored")
        return fm
    _Reader(fm, warn).read(doc)
    return fm


class _Reader:
    def __init__(self, fm: FrontMatter, warn: Warn) -> None:
        self.fm, self.warn = fm, warn

    def read(self, doc: dict[str, Any]) -> None:
        fm = self.fm
        fm.title = self._text(doc, "title")
        fm.description = self._text(doc, "description")
        self._license(doc)
        extent = doc.get("extent")
        if isinstance(extent, dict):
            if extent.get("spatial") is not None:
                self._spatial(extent["spatial"])
            if extent.get("temporal") is not None:
                self._temporal(extent["temporal"])
            for key in sorted(set(extent) - {"spatial", "temporal"}):
                self.warn(f"extent.{key}", "unknown field: ignored")
        elif extent is not None:
            self.warn("extent", f"must be a mapping with spatial/temporal, not {_kind(extent)}: ignored")
        self._providers(doc.get("providers"))
        self._keywords(doc.get("keywords"))
        self._related(doc.get("related"))
        self._links(doc.get("links"))
        self._assets(doc.get("assets"))
        fm.preview = self._text(doc, "preview")
        self._extensions(doc)
        self._stacflow(doc.get("stacflow"))
        for key in doc:
            if key not in _KNOWN and key not in known_extensions() and not _PREFIXED.match(key) \
                    and key not in (doc.get("extensions") or {}):
                self.warn(key, "unknown field: ignored")

    # scalars -----------------------------------------------------------------------------------
    def _text(self, doc: dict[str, Any], key: str) -> str | None:
        value = doc.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.warn(key, f"must be a non-empty string, not {_kind(value)}: ignored")
        return None

    def _license(self, doc: dict[str, Any]) -> None:
        value = doc.get("license")
        url = doc.get("license-url", doc.get("license_url"))
        if isinstance(url, str) and _is_url(url):
            self.fm.license_url = url
        elif url is not None:
            self.warn("license-url", f"must be an http(s) URL, not {url!r}: ignored")
        if value is None:
            return
        if not isinstance(value, str) or not value.strip():
            self.warn("license", f"must be an SPDX license id or expression, not {_kind(value)}: 'other' used")
            self.fm.license = "other"
            return
        if value.strip().lower() == "other":
            self.fm.license = "other"
            return
        from license_expression import get_spdx_licensing
        try:
            info = get_spdx_licensing().validate(value.strip())
        except Exception as err:  # the parser raises its own types on odd tokens
            info, reason = None, str(err)
        else:
            reason = "; ".join(info.errors)
        if info is None or info.errors or not info.normalized_expression:
            self.warn("license", f"{value!r} is not an SPDX license id or expression ({reason}): 'other' used")
            self.fm.license = "other"
        elif " " in info.normalized_expression:  # STAC's schema takes one id: an expression is "other" + links
            self.fm.license, self.fm.license_expression = "other", info.normalized_expression
            licensing = get_spdx_licensing()
            self.fm.license_ids = list(dict.fromkeys(licensing.license_keys(licensing.parse(
                info.normalized_expression))))
        else:
            self.fm.license = info.normalized_expression
            self.fm.license_ids = [info.normalized_expression]

    # extent --------------------------------------------------------------------------------------
    def _spatial(self, value: Any) -> None:
        import shapely
        from shapely.geometry import box, shape
        geom = None
        try:
            if isinstance(value, list) and len(value) in (4, 6) and all(_number(v) for v in value):
                bbox = [float(v) for v in (value if len(value) == 4 else [value[0], value[1], value[3], value[4]])]
                w, s, e, n = bbox
                if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
                    raise ValueError(f"bbox {value} is not [west, south, east, north] in degrees")
                if w > e:  # crosses the antimeridian: two boxes, the bbox as given
                    geom = shapely.MultiPolygon([box(w, s, 180, n), box(-180, s, e, n)])
                    self.fm.geometry, self.fm.bbox = json.loads(shapely.to_geojson(geom)), bbox
                    return
                geom = box(w, s, e, n)
            elif isinstance(value, str):
                numbers = value.split(",")
                if len(numbers) == 4:
                    self._spatial([float(v) for v in numbers])
                    return
                geom = shapely.from_wkt(value.strip())
            elif isinstance(value, dict):
                geom = shape(value)
            else:
                raise ValueError(f"must be a bbox [w, s, e, n], WKT or a GeoJSON geometry, not {_kind(value)}")
            if geom is None or geom.is_empty:
                raise ValueError("the geometry is empty")
            w, s, e, n = geom.bounds
            if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
                raise ValueError(f"coordinates {list(geom.bounds)} are outside longitude/latitude degrees")
            if not geom.is_valid:
                raise ValueError(f"the geometry is not valid ({shapely.is_valid_reason(geom)})")
        except Exception as err:  # shapely raises GEOSException, ValueError, TypeError... on bad input
            self.warn("extent.spatial", f"{' '.join(str(err).split())[:300]}: no geometry")
            return
        geom = shapely.orient_polygons(geom)  # RFC 7946: exterior rings counter-clockwise
        self.fm.geometry, self.fm.bbox = json.loads(shapely.to_geojson(geom)), [float(v) for v in geom.bounds]

    def _temporal(self, value: Any) -> None:
        if not isinstance(value, list) or len(value) != 2:
            self.warn("extent.temporal", f"must be [start, end] (either may be null), not {_kind(value)}: ignored")
            return
        start, end = (_instant(v, end=i == 1) for i, v in enumerate(value))
        for name, raw, parsed in (("start", value[0], start), ("end", value[1], end)):
            if raw is not None and parsed is None:
                self.warn(f"extent.temporal.{name}", f"{raw!r} is not a date or date-time: ignored")
        if start and end and start > end:
            self.warn("extent.temporal", f"start {value[0]} is after end {value[1]}: ignored")
            return
        self.fm.start, self.fm.end = start, end

    # lists ---------------------------------------------------------------------------------------
    def _list(self, key: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.warn(key, f"must be a list, not {_kind(value)}: ignored")
            return []
        return value

    def _providers(self, value: Any) -> None:
        for i, p in enumerate(self._list("providers", value)):
            where = f"providers[{i}]"
            if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"].strip():
                self.warn(where, "must be a mapping with a name: ignored")
                continue
            provider: dict[str, Any] = {"name": p["name"].strip()}
            if isinstance(p.get("description"), str):
                provider["description"] = p["description"]
            roles = p.get("roles") or []
            roles = [roles] if isinstance(roles, str) else roles
            good = [r for r in roles if isinstance(r, str) and r in PROVIDER_ROLES] if isinstance(roles, list) else []
            if not isinstance(roles, list) or len(good) != len(roles):
                self.warn(f"{where}.roles", f"roles must be among {sorted(PROVIDER_ROLES)}: others dropped")
            if good:
                provider["roles"] = list(dict.fromkeys(good))
            if p.get("url") is not None:
                if isinstance(p["url"], str) and _is_url(p["url"]):
                    provider["url"] = p["url"]
                else:
                    self.warn(f"{where}.url", f"{p['url']!r} is not an http(s) URL: dropped")
            self.fm.providers.append(provider)

    def _keywords(self, value: Any) -> None:
        items = [value] if isinstance(value, str) else self._list("keywords", value)
        for i, k in enumerate(items):
            if isinstance(k, (str, int, float)) and not isinstance(k, bool) and str(k).strip():
                self.fm.keywords.append(str(k).strip())
            else:
                self.warn(f"keywords[{i}]", f"must be a string, not {_kind(k)}: ignored")

    def _related(self, value: Any) -> None:
        if isinstance(value, dict):  # SharingHub: {collection id: url or [urls]}
            for cid, urls in value.items():
                for i, url in enumerate(urls if isinstance(urls, list) else [urls]):
                    if isinstance(url, str) and _is_url(url):
                        self.fm.related.append(Related(url, collection=cid))
                    else:
                        self.warn(f"related.{cid}[{i}]", f"{url!r} is not an http(s) URL: ignored")
            return
        for i, entry in enumerate(self._list("related", value)):
            href = entry.get("href") if isinstance(entry, dict) else entry
            title = entry.get("title") if isinstance(entry, dict) else None
            if isinstance(href, str) and _is_url(href):
                self.fm.related.append(Related(href, title if isinstance(title, str) else None))
            else:
                self.warn(f"related[{i}]", f"{str(entry)[:200]!r} is not a URL or {{href, title}}: ignored")

    def _links(self, value: Any) -> None:
        for i, link in enumerate(self._list("links", value)):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str) or not link["href"].strip():
                self.warn(f"links[{i}]", "must be a mapping with an href: ignored")
                continue
            out = {"rel": "related", "href": link["href"].strip()}
            for key in ("rel", "title", "type"):
                if isinstance(link.get(key), str) and link[key].strip():
                    out[key] = link[key].strip()
                elif link.get(key) is not None:
                    self.warn(f"links[{i}].{key}", f"must be a string, not {_kind(link[key])}: dropped")
            self.fm.links.append(out)

    def _assets(self, value: Any) -> None:
        for i, rule in enumerate(self._list("assets", value)):
            where = f"assets[{i}]"
            if isinstance(rule, str) and rule.strip():
                self.fm.assets.append(AssetRule(glob=rule.strip()))
                continue
            if not isinstance(rule, dict):
                self.warn(where, f"must be a glob or a mapping, not {_kind(rule)}: ignored")
                continue
            glob = rule.get("glob", rule.get("path"))
            strings = {}
            for key in ("href", "key", "type", "title", "description"):
                if isinstance(rule.get(key), str) and rule[key].strip():
                    strings[key] = rule[key].strip()
                elif rule.get(key) is not None:
                    self.warn(f"{where}.{key}", f"must be a string, not {_kind(rule[key])}: dropped")
            if not (isinstance(glob, str) and glob.strip()) and "href" not in strings:
                self.warn(where, "needs a path/glob or an href: ignored")
                continue
            if "href" in strings and not (isinstance(glob, str) and glob.strip()) and "key" not in strings:
                self.warn(where, "an asset with an href needs a key: ignored")
                continue
            roles = rule.get("roles")
            roles = [roles] if isinstance(roles, str) else roles
            if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
                self.warn(f"{where}.roles", "must be a list of strings: dropped")
                roles = None
            extra = {}
            for k, v in rule.items():
                if _PREFIXED.match(k) and k.split(":")[0] in ("stacflow", "file"):  # the builder's
                    self.warn(f"{where}.{k}", "is set by stacflow: ignored")
                elif _PREFIXED.match(k):
                    extra[k] = plain_json(v)
            self.fm.assets.append(AssetRule(glob=glob.strip() if isinstance(glob, str) and glob.strip() else None,
                                            roles=tuple(roles) if roles is not None else None, extra=extra,
                                            **strings))

    # extension blocks ----------------------------------------------------------------------------
    def _extensions(self, doc: dict[str, Any]) -> None:
        schemas = dict(known_extensions())
        declared = doc.get("extensions")
        if isinstance(declared, dict):
            for prefix, uri in declared.items():
                if prefix in RESERVED_PREFIXES or prefix in schemas:
                    self.warn(f"extensions.{prefix}", "is a prefix stacflow already knows: ignored")
                elif isinstance(uri, str) and _is_url(uri) and re.fullmatch(r"[a-z][a-z0-9-]*", prefix):
                    schemas[prefix] = uri
                else:
                    self.warn(f"extensions.{prefix}", "must map a lower-case prefix to a schema URL: ignored")
        elif declared is not None:
            self.warn("extensions", f"must be a mapping prefix -> schema URL, not {_kind(declared)}: ignored")
        if isinstance(doc.get("sharinghub"), dict):
            for name, value in doc["sharinghub"].items():
                self.fm.properties[f"sharinghub:{name}"] = plain_json(value)
        elif doc.get("sharinghub") is not None:
            self.warn("sharinghub", f"must be a mapping, not {_kind(doc['sharinghub'])}: ignored")
        for block in _MODEL_BLOCKS:
            if isinstance(doc.get(block), dict):
                for name, value in doc[block].items():
                    self.fm.model[f"{block}:{name}"] = plain_json(value)
            elif doc.get(block) is not None:
                self.warn(block, f"must be a mapping, not {_kind(doc[block])}: ignored")
        for key, value in doc.items():
            if key in schemas and key not in _KNOWN:
                if not isinstance(value, dict):
                    self.warn(key, f"an extension block must be a mapping, not {_kind(value)}: ignored")
                    continue
                for name, v in value.items():
                    self._extension_field(f"{key}:{name}", v, schemas[key])
            elif (m := _PREFIXED.match(key)) is not None:
                if m["prefix"] in _MODEL_BLOCKS:
                    self.fm.model[key] = plain_json(value)
                elif m["prefix"] in schemas:
                    self._extension_field(key, value, schemas[m["prefix"]])
                elif m["prefix"] == "sharinghub":
                    self.fm.properties[key] = plain_json(value)
                else:
                    self.warn(key, f"unknown extension prefix {m['prefix']!r} (declare it under 'extensions'): "
                                   "ignored")

    def _extension_field(self, name: str, value: Any, schema: str) -> None:
        self.fm.properties[name] = plain_json(value)
        self.fm.extensions.add(schema)

    def _stacflow(self, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.warn("stacflow", f"must be a mapping, not {_kind(value)}: ignored")
            return
        flag = value.get("publish_default_branch")
        if isinstance(flag, bool):
            self.fm.publish_default_branch = flag
        elif flag is not None:
            self.warn("stacflow.publish_default_branch", f"must be true or false, not {flag!r}: false used")
        for key in sorted(set(value) - {"publish_default_branch"}):
            self.warn(f"stacflow.{key}", "unknown field: ignored")


# -- helpers ---------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_url(text: str) -> bool:
    return bool(re.match(r"^https?://[^\s/]+", text))


def plain_json(value: Any) -> Any:
    """A parsed YAML value with JSON types only (dates as ISO text)."""
    return _plain(value, 0, [MAX_NODES])


def _instant(value: Any, *, end: bool) -> datetime | None:
    """A date (the start of the day, or the last microsecond of an end day) or date-time, in UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else \
                datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min, tzinfo=timezone.utc)
    return None
