"""STAC items of GitLab + DVC projects: one per version tag (and the opted-in default branch).

``build(snapshot, remote, settings)`` is a function of the snapshot, the README's front matter and
what the DVC remote holds (``.dir`` manifests and object presence, read through ``Remote``); it
never raises on project content: what is invalid is left out with a warning naming the project and
the field (logged, and kept in the item as ``stacflow:warnings``).

Choices documented here:
- Ids: ``<project slug>-<tag slug>`` for versions, ``<project slug>~dev`` for the development item
  (``~`` is never in a tag: git forbids it), slugs as ``stac.model_items.model_slug`` makes them
  (a path always has a ``/``, so the project slug always ends with 16 hex digits of its hash).
- Collections: ``dataset`` for the topic ``sharinghub:dataset``, ``ai-model`` for
  ``sharinghub:aimodel`` (a project with both gets both items); no topic, no item.
- Every DVC output is an asset (key: its path) whose href is its object in the S3 remote, DVC 3
  layout ``<remote>/files/md5/<2>/<30>``, with ``file:size``, ``file:checksum`` (multihash of the
  md5: ``d510`` + hex), a media type guessed from the name, role ``data`` and how to get it
  (``dvc get <repo> <path> --rev <tag>``). A directory gives one asset per file (its ``.dir``
  manifest read from the remote), or one manifest asset (role ``metadata``, ``application/json``,
  ``stacflow:nfiles``/``stacflow:total_size``) above ``max_files_per_directory`` files.
- Availability: ``stacflow:available`` on each DVC asset (``false`` until its object is in the
  remote with the expected size, and md5 when the ETag is one), and the item property
  ``stacflow:pending_assets`` (keys of the assets not yet available; empty when all are).
  ``availability`` flips them when the objects land. A directory whose manifest is not pushed yet
  is one pending manifest asset until it lands, then becomes its files (``availability``).
- Time: ``datetime`` is the tag's date (the commit's for the development item); ``extent.temporal``
  gives ``start_datetime``/``end_datetime`` (an open end is the version's date; ``datetime`` is then
  the start); ``[null, end]`` gives ``datetime = end``. Place: ``extent.spatial``, else null geometry.
- Versions: ``version`` (the tag), ``deprecated: false``, ``predecessor-version``/``successor-version``
  from the order of ``snapshot.tags``, ``latest-version`` to the newest tag's item. The development
  item is ``experimental``, version ``<branch>@<12 hex of the commit>``, with a ``latest-version`` link.
- Built with pystac (``Item``, ``Asset``, common metadata, the file, version and scientific extension
  helpers); front-matter extension blocks are copied as prefixed properties (pystac's extension
  classes model fixed field sets and would drop fields the README has), with their schema URIs.
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..stac import catalog, mlm
from ..stac.model_items import model_slug
from ..store import NotFound, ObjectInfo, ObjectStore, StoreError
from . import dvc, frontmatter
from .snapshot import AIMODEL_TOPIC, TOPIC_COLLECTIONS, BuildSettings, ProjectSnapshot, Remote

if TYPE_CHECKING:
    import pystac

log = logging.getLogger(__name__)

AVAILABLE = "stacflow:available"  # asset field
PENDING = "stacflow:pending_assets"  # item property
NFILES = "stacflow:nfiles"  # manifest asset fields
TOTAL_SIZE = "stacflow:total_size"
PROJECT = "stacflow:project"  # path_with_namespace (step 5's access control reads it with visibility)
PROJECT_ID = "stacflow:project_id"
VISIBILITY = "stacflow:visibility"
REF = "stacflow:ref"
COMMIT = "stacflow:commit"
WARNINGS = "stacflow:warnings"
LICENSE_EXPRESSION = "stacflow:license_expression"
MAX_WARNINGS, MAX_WARNING = 50, 500  # kept in the item: how many, how many characters each  # when STAC's one-id ``license`` must say "other"
MD5_MULTIHASH = "d510"  # multicodec md5 (0xd5) + digest length 16 (0x10)
PROJECT_SLUG_MAX = 100  # + 17 (hash) + 1 + 60 + 17 stays within item ids' 200 characters
TAG_SLUG_MAX = 60
MANIFEST_TYPE = "application/json"
GEOJSON = "application/geo+json"
HEAD_THREADS = 8  # concurrent HEADs / LISTs of one probe
# A folder of the remote (``files/md5/<2 hex>/``) is LISTed when at least this many of its keys are
# wanted, else its key is HEADed: for one key a HEAD is one request either way, with a smaller
# answer and S3's cheaper request class (a LIST costs 12.5x a HEAD); from two keys on, one LIST page
# answers them all (it reads only the objects between the first and the last wanted key: one page
# of 1,000 unless the remote holds several hundred thousand objects).
LIST_MIN_KEYS = 2
# One listing of files/md5/ replaces per-folder LISTs when at least this many folders are wanted and
# the remote holds at most this many objects per folder replaced (half a page: never more requests).
SWEEP_MIN_FOLDERS = 4
SWEEP_ITEMS_PER_FOLDER = 500
MAX_MANIFEST_BYTES = 256  # per file: a manifest entry is ~80 bytes; larger manifests are not read
_STRUCTURAL = {"self", "root", "parent", "collection", "latest-version", "predecessor-version", "successor-version"}
# File suffix -> mlm:artifact_type (model projects): the suffixes MLM's best practices name.
ARTIFACT_TYPES = {".onnx": "onnx", ".pt": "torch.save", ".pth": "torch.save", ".pt2": "torch.export.save",
                  ".safetensors": "safetensors", ".h5": "keras", ".keras": "keras", ".pkl": "pickle",
                  ".joblib": "joblib", ".tflite": "tflite", ".ckpt": "checkpoint"}
_EXTRA_TYPES = {".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
                ".geojson": "application/geo+json", ".parquet": "application/vnd.apache.parquet",
                ".geoparquet": "application/vnd.apache.parquet", ".nc": "application/netcdf",
                ".jp2": "image/jp2", ".zarr": "application/vnd+zarr", ".yaml": "application/yaml",
                ".yml": "application/yaml", ".md": "text/markdown", ".gpkg": "application/geopackage+sqlite3",
                ".npy": "application/octet-stream", ".onnx": "application/octet-stream; application=onnx"}


# -- ids ------------------------------------------------------------------------------------------
def project_slug(path: str) -> str:
    return model_slug(path, max_len=PROJECT_SLUG_MAX, empty="project")


def item_id(path: str, ref: str, *, is_tag: bool) -> str:
    """``<project slug>-<tag slug>``, or ``<project slug>~dev`` for the default branch."""
    if not is_tag:
        return f"{project_slug(path)}~dev"
    return f"{project_slug(path)}-{model_slug(ref, max_len=TAG_SLUG_MAX, empty='tag')}"


# -- records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a project's DVC assets point, and how to get them."""

    remote_url: str  # s3://bucket/prefix of the DVC remote
    repo: str  # http_url_to_repo
    rev: str  # the tag (or branch)

    def href(self, md5: str, *, isdir: bool = False, legacy: bool = False) -> str:
        return dvc.join_url(self.remote_url, dvc.object_key(md5, isdir=isdir, legacy=legacy))

    def how_to_get(self, path: str) -> str:
        return f"Get it with `dvc get {self.repo} {path} --rev {self.rev}`"


@dataclass(frozen=True)
class Directory:
    """What turning a pending manifest asset into file assets needs once the manifest lands."""

    path: str
    source: Source
    max_files: int
    legacy: bool


@dataclass(frozen=True)
class Reference:
    """An item holds an asset whose href is the object ``url`` (md5 ``md5``): the availability index."""

    md5: str
    item_key: str
    url: str
    directory: Directory | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Reference":
        d = doc.get("directory")
        directory = Directory(d["path"], Source(**d["source"]), int(d["max_files"]), bool(d["legacy"])) if d else None
        return cls(str(doc["md5"]), str(doc["item_key"]), str(doc["url"]), directory)


@dataclass
class Build:
    items: list[dict[str, Any]] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Warnings:
    """Collects ``(field, message)`` warnings of one project, logging each once."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.messages: list[str] = []

    def __call__(self, field_name: str, message: str) -> None:
        text = f"{field_name[:200]}: {message}"[:MAX_WARNING]
        if text not in self.messages:
            log.warning("project %s: %s", self.project, text, extra={"project": self.project, "field": field_name[:200]})
            if len(self.messages) < MAX_WARNINGS:  # the item keeps the first ones; the log has them all
                self.messages.append(text)


# -- assets ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _mime() -> mimetypes.MimeTypes:
    types = mimetypes.MimeTypes()
    for suffix, media_type in _EXTRA_TYPES.items():
        types.add_type(media_type, suffix)
    return types


def media_type(path: str) -> str:
    suffix = PurePosixPath(path.lower()).suffix
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, encoding = _mime().guess_type(path.lower(), strict=False)
    if encoding == "gzip":
        return "application/gzip"
    return guessed or "application/octet-stream"


def checksum(md5: str) -> str:
    return MD5_MULTIHASH + md5


def _asset(href: str, *, title: str, description: str | None, media: str | None, roles: list[str],
           size: int | None = None, digest: str | None = None, available: bool | None = None,
           extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    import pystac
    from pystac.extensions.file import FileExtension
    fields = dict(extra or {})
    if available is not None:
        fields[AVAILABLE] = available
    asset = pystac.Asset(href, title=title, description=description, media_type=media, roles=roles,
                         extra_fields=fields)
    file_ext = FileExtension.ext(asset)
    if size is not None:
        file_ext.size = size
    if digest is not None:
        file_ext.checksum = checksum(digest)
    return asset.to_dict()


def present(info: ObjectInfo | None, *, md5: str, size: int | None, legacy: bool) -> tuple[bool, str | None]:
    """Whether ``info`` (the object, None if absent) is the expected one: (available, problem if not)."""
    if info is None:
        return False, None
    if size is not None and info.size != size:
        return False, f"is {info.size} bytes in the remote, {size} expected"
    etag = info.etag.strip('"')
    if not legacy and dvc.MD5.fullmatch(etag) and etag != md5:  # single-part uploads: the ETag is the md5
        return False, f"has md5 {etag} in the remote, {md5} expected"
    return True, None


def file_asset(source: Source, path: str, md5: str, *, size: int | None, legacy: bool,
               info: ObjectInfo | None, warn: frontmatter.Warn) -> dict[str, Any]:
    available, problem = present(info, md5=md5, size=size, legacy=legacy)
    if problem:
        warn(path, f"object {problem}: not available")
    if size is None and available and info is not None:  # a directory's files: the manifest has no sizes
        size = info.size
    return _asset(source.href(md5, legacy=legacy), title=path, description=source.how_to_get(path),
                  media=media_type(path), roles=["data"], size=size, digest=None if legacy else md5,
                  available=available)


def manifest_asset(source: Source, out: dvc.Output, info: ObjectInfo | None, warn: frontmatter.Warn) -> dict[str, Any]:
    available, problem = present(info, md5=out.md5, size=None, legacy=out.legacy)
    if problem:
        warn(out.path, f"manifest {problem}: not available")
    files = f"{out.nfiles} files" if out.nfiles is not None else "files"
    extra = {k: v for k, v in ((NFILES, out.nfiles), (TOTAL_SIZE, out.size)) if v is not None}
    return _asset(source.href(out.md5, isdir=True, legacy=out.legacy), title=f"{out.path}/ (manifest of {files})",
                  description=f"DVC directory manifest: a JSON list of {{md5, relpath}}; each file is at "
                              f"files/md5/<first 2 hex of md5>/<other 30> in the same remote. "
                              + source.how_to_get(out.path),
                  media=MANIFEST_TYPE, roles=["metadata"], size=info.size if available and info else None,
                  digest=None if out.legacy else out.md5, available=available, extra=extra)


Known = Mapping[str, ObjectInfo]  # key in a remote -> its object, already verified (no HEAD needed)


def probe(store: ObjectStore | None, keys: Iterable[str], known: Known | None = None) -> dict[str, ObjectInfo | None]:
    """Each key's object but the ``known`` ones: its info, or None when absent or unreadable.

    Keys are grouped by their folder (DVC 3: ``files/md5/<2 hex>/``, at most 256 of them): a folder
    with at least ``LIST_MIN_KEYS`` wanted keys is read with one LIST (its pages, started just before
    its first wanted key and stopped after its last), a folder with fewer is HEADed key by key, in
    parallel. So 1,000 files cost at most 256 LISTs (plus a HEAD per folder holding a single one),
    not 1,000 HEADs. A LIST answers the same size and ETag as a HEAD. A LIST that fails (a remote
    whose credentials may GET but not list, a network error) falls back to HEADs for the rest of
    the call, and a key whose HEAD fails is absent (with a warning), as before.
    """
    wanted = list(dict.fromkeys(keys))
    known = known or {}
    found: dict[str, ObjectInfo | None] = {k: known[k] for k in wanted if k in known}
    wanted = [k for k in wanted if k not in found]
    if store is None or not wanted:
        return {**found, **{k: None for k in wanted}}
    folders: dict[str, list[str]] = {}
    for key in wanted:
        folders.setdefault(key.rsplit("/", 1)[0] + "/" if "/" in key else "", []).append(key)
    tasks: list[tuple[str, list[str]]] = []  # (folder to LIST, its keys); folder "" = HEAD the one key
    for folder, group in folders.items():
        if folder and len(group) >= LIST_MIN_KEYS:
            tasks.append((folder, sorted(group)))
        else:
            tasks.extend(("", [key]) for key in group)
    cannot_list = threading.Event()
    try:
        swept = _sweep(store, [(folder, sorted(group)) for folder, group in folders.items() if folder])
    except Exception:
        cannot_list.set()
        log.warning("cannot list %s: HEADs instead", store.uri, exc_info=True)
        swept = None
    if swept is not None:
        found.update(swept)
        tasks = [(folder, group) for folder, group in tasks if group[0] not in swept]
        if not tasks:
            return found

    def head(key: str) -> ObjectInfo | None:
        try:
            return store.head(key)
        except (NotFound, StoreError):
            return None
        except Exception:  # a remote we cannot read (credentials, network) is the same as absent
            log.warning("cannot read %s in %s", key, store.uri, exc_info=True)
            return None

    def listed(folder: str, group: list[str]) -> dict[str, ObjectInfo | None]:
        out: dict[str, ObjectInfo | None] = dict.fromkeys(group)
        if not cannot_list.is_set():
            try:
                # start_after: a prefix of the first key sorts just before it; stop past the last one
                for info in store.list(folder, start_after=group[0][:-1]):
                    if info.key > group[-1]:
                        break
                    if info.key in out:
                        out[info.key] = info
                return out
            except Exception:
                if not cannot_list.is_set():
                    cannot_list.set()
                    log.warning("cannot list %s in %s: HEADs instead", folder, store.uri, exc_info=True)
        return {key: head(key) for key in group}

    def run(task: tuple[str, list[str]]) -> dict[str, ObjectInfo | None]:
        folder, group = task
        return listed(folder, group) if folder else {group[0]: head(group[0])}

    if len(tasks) == 1:
        return {**found, **run(tasks[0])}
    with ThreadPoolExecutor(max_workers=min(HEAD_THREADS, len(tasks))) as pool:
        for result in pool.map(run, tasks):
            found.update(result)
    return found


def _sweep(store: ObjectStore, tasks: list[tuple[str, list[str]]]) -> dict[str, ObjectInfo | None] | None:
    """The folders' keys from ONE listing of their common parent (``files/md5/``), when that costs
    fewer requests than a LIST or HEAD per folder: it reads at most ``SWEEP_ITEMS_PER_FOLDER`` objects per folder
    it replaces (a page holds 1,000), and gives up (None) on a remote too large for that, so it never
    costs more than the per-folder LISTs would; None also when the folders have no common parent.
    A listing that fails raises (the caller HEADs instead)."""
    parents = {folder.rstrip("/").rsplit("/", 1)[0] + "/" for folder, _ in tasks if "/" in folder.rstrip("/")}
    if len(tasks) < SWEEP_MIN_FOLDERS or len(parents) != 1:
        return None
    wanted = sorted(key for _, group in tasks for key in group)
    out: dict[str, ObjectInfo | None] = dict.fromkeys(wanted)
    budget = SWEEP_ITEMS_PER_FOLDER * len(tasks)
    for read, info in enumerate(store.list(parents.pop(), start_after=wanted[0][:-1])):
        if info.key > wanted[-1]:
            return out
        if read >= budget:
            return None
        if info.key in out:
            out[info.key] = info
    return out


def known_objects(previous: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, ObjectInfo]]:
    """Remote url -> key -> object, for the assets ``previous`` items already found available with a size:
    DVC objects are content-addressed (a key never holds other bytes), so a rebuild need not HEAD them."""
    out: dict[str, dict[str, ObjectInfo]] = {}
    for item in previous:
        for asset in (item.get("assets") or {}).values():
            if not isinstance(asset, dict) or asset.get(AVAILABLE) is not True:
                continue
            size, parts = asset.get("file:size"), dvc.split_url(str(asset.get("href", "")))
            if parts is not None and isinstance(size, int) and not isinstance(size, bool):
                out.setdefault(parts[0], {})[parts[1]] = ObjectInfo(parts[1], "", size, 0.0)
    return out


def read_manifest(store: ObjectStore | None, out_md5: str, *, legacy: bool, where: str, max_files: int,
                  warn: frontmatter.Warn) -> tuple[list[dvc.Entry] | None, ObjectInfo | None]:
    """(entries, manifest object): entries None when the manifest is absent or has over ``max_files`` files."""
    if store is None:
        return None, None
    key = dvc.object_key(out_md5, isdir=True, legacy=legacy)
    try:
        info = store.head(key)
        if info.size > MAX_MANIFEST_BYTES * max_files + 1024:
            return None, info
        obj = store.get(key)
    except NotFound:
        return None, None
    except Exception:  # unreadable remote: treated as not pushed yet
        log.warning("cannot read the manifest %s in %s", key, store.uri, exc_info=True)
        return None, None
    info = ObjectInfo(key, obj.etag, len(obj.body), obj.last_modified)
    return dvc.manifest(obj.body, where, warn, max_entries=max_files), info


def directory_assets(source: Source, directory: str, entries: list[dvc.Entry], store: ObjectStore | None, *,
                     legacy: bool, warn: frontmatter.Warn, known: Known | None = None) -> dict[str, dict[str, Any]]:
    """One asset per file of a directory (keyed by repository path), availability from the remote."""
    infos = probe(store, (dvc.object_key(e.md5, legacy=legacy) for e in entries), known)
    out = {}
    for e in entries:
        path = f"{directory}/{e.relpath}"
        out[path] = file_asset(source, path, e.md5, size=None, legacy=legacy,
                               info=infos[dvc.object_key(e.md5, legacy=legacy)], warn=warn)
    return out


def pending_keys(assets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted(k for k, a in assets.items() if a.get(AVAILABLE) is False)


# -- the build -------------------------------------------------------------------------------
def build_items(snapshot: ProjectSnapshot, remote: Remote, settings: BuildSettings = BuildSettings()) -> list[dict[str, Any]]:
    """The items of ``snapshot`` (the contract's entry point; ``build`` also gives the references)."""
    return build(snapshot, remote, settings).items


def build(snapshot: ProjectSnapshot, remote: Remote, settings: BuildSettings = BuildSettings(),
          previous: Iterable[Mapping[str, Any]] = ()) -> Build:
    """The items of ``snapshot`` and the references of their pending assets. ``previous``: the items as
    stored now (any version of the project): objects they found available are not HEADed again."""
    collections = [cid for topic, cid in TOPIC_COLLECTIONS.items() if topic in snapshot.topics]
    warn = Warnings(snapshot.path)
    fm = frontmatter.parse(readme(snapshot.files), warn)
    result = Build()
    if not collections or (not snapshot.is_tag and not fm.publish_default_branch):
        return result
    iid = item_id(snapshot.path, snapshot.ref, is_tag=snapshot.is_tag)
    assets, directories = _dvc_assets(snapshot, remote, settings, warn, known_objects(previous))
    for cid in collections:
        item_assets = {k: dict(a) for k, a in assets.items()}
        _rule_assets(snapshot, fm, item_assets, warn)
        item = _item(snapshot, fm, iid, cid, item_assets, settings, warn)
        key = catalog.stored_item_key(item)  # a non-public project's items stay out of the static catalog
        result.items.append(item)
        for asset in item_assets.values():  # only pending assets: the index serves their arrival
            ref = reference_of(asset, key, directories)
            if ref:
                result.references.append(ref)
    for item in result.items:  # warnings of every collection's item are known only now
        if warn.messages:
            item["properties"][WARNINGS] = list(warn.messages)
    result.warnings = list(warn.messages)
    return result


def readme(files: Mapping[str, bytes]) -> bytes | None:
    names = sorted(n for n in files if n.lower() == "readme.md")
    return files[names[0]] if names else None


def reference_of(asset: Mapping[str, Any], item_key: str,
                 directories: Mapping[str, Directory] | None = None) -> Reference | None:
    """The index reference of a pending DVC asset of an item (None: available, or not a DVC object)."""
    if asset.get(AVAILABLE) is not False:
        return None
    parsed = dvc.parse_object_key(asset["href"].split("://", 1)[-1].split("/", 1)[-1])
    if parsed is None:
        return None
    return Reference(parsed[1], item_key, asset["href"], (directories or {}).get(asset["href"]))


def _dvc_assets(snapshot: ProjectSnapshot, remote: Remote, settings: BuildSettings, warn: frontmatter.Warn,
                known: Mapping[str, Known]) -> tuple[dict[str, dict[str, Any]], dict[str, Directory]]:
    """Assets of every DVC output, and the pending directories (manifest href -> Directory)."""
    outs = dvc.outputs(snapshot.files, warn)
    if not outs:
        return {}, {}
    config = dvc.remote_config(snapshot.files.get(".dvc/config"), warn)
    assets: dict[str, dict[str, Any]] = {}
    pending_dirs: dict[str, Directory] = {}
    budget = settings.max_assets
    stores: dict[str, ObjectStore | None] = {}
    single: list[tuple[dvc.Output, Source, ObjectStore | None]] = []  # file outputs
    for out in outs:
        url = config.url_for(out.remote)
        if url is None:
            warn(out.path, f"no DVC remote{' ' + repr(out.remote) if out.remote else ''} in .dvc/config: no asset")
            continue
        if "://" not in url:
            warn(out.path, f"DVC remote {url!r} is not a URL (a local path?): no asset")
            continue
        if url not in stores:
            stores[url] = remote.store_for(url)
            if stores[url] is None:
                warn(".dvc/config", f"remote {url} is not one of the configured DVC remotes: its assets stay "
                                    "unavailable")
        store = stores[url]
        source = Source(url.rstrip("/"), snapshot.http_url_to_repo, snapshot.ref)
        if budget <= 0:
            warn(out.path, f"more than {settings.max_assets} assets: left out")
            continue
        if not out.isdir:  # HEADed together below, in parallel
            single.append((out, source, store))
            budget -= 1
            continue
        max_files = min(settings.max_files_per_directory, budget)
        big = out.nfiles is not None and out.nfiles > max_files
        entries, info = (None, None) if big else read_manifest(
            store, out.md5, legacy=out.legacy, where=f"{out.path} ({out.source})", max_files=max_files, warn=warn)
        if entries is not None:
            files = directory_assets(source, out.path, entries, store, legacy=out.legacy, warn=warn,
                                     known=known.get(source.remote_url))
            assets.update(files)
            budget -= len(files)
            continue
        if big or info is not None:  # too many files (or a malformed manifest): the manifest is the asset
            info = info or probe(store, [out.key], known.get(source.remote_url))[out.key]
            assets[out.path] = manifest_asset(source, out, info, warn)
        else:  # not pushed yet: a pending manifest asset that becomes its files when it lands
            asset = manifest_asset(source, out, None, warn)
            pending_dirs[asset["href"]] = Directory(out.path, source, max_files, out.legacy)
            assets[out.path] = asset
        budget -= 1
    for url, store in stores.items():
        mine = [(out, source) for out, source, st in single if source.remote_url == url.rstrip("/")]
        infos = probe(store, (out.key for out, _ in mine), known.get(url.rstrip("/")))
        for out, source in mine:
            assets[out.path] = file_asset(source, out.path, out.md5, size=out.size, legacy=out.legacy,
                                          info=infos[out.key], warn=warn)
    return assets, pending_dirs


def _rule_assets(snapshot: ProjectSnapshot, fm: frontmatter.FrontMatter, assets: dict[str, dict[str, Any]],
                 warn: frontmatter.Warn) -> None:
    """Apply the front matter's ``assets`` rules: retitle/re-key DVC assets, add repository files and hrefs."""
    tracked = set(assets)
    for i, rule in enumerate(fm.assets):
        where = f"assets[{i}]"
        if rule.glob is None:  # a fixed href under its key
            assert rule.href is not None and rule.key is not None
            assets[rule.key] = _asset(_resolve(snapshot, rule.href, raw=True), title=_fill(rule.title, rule.key, ""),
                                      description=rule.description,
                                      media=rule.type or media_type(rule.href.split("?")[0]),
                                      roles=list(rule.roles or ["data"]), extra=rule.extra)
            continue
        matched = False
        for path in sorted(tracked):
            if path in assets and _matches(path, rule.glob):
                matched = True
                asset = assets.pop(path)
                _customize(asset, rule, path)
                assets[_fill(rule.key, path, path) if rule.key else path] = asset
        for path in sorted(set(snapshot.tree) - tracked):
            if _matches(path, rule.glob):
                matched = True
                key = _fill(rule.key, path, path) if rule.key else path
                href = _resolve(snapshot, _fill(rule.href, key, path), raw=True) if rule.href else _raw_url(snapshot, path)
                asset = _asset(href, title=path, description=None, media=media_type(path), roles=["data"])
                _customize(asset, rule, path)
                assets[key] = asset
        if not matched:
            warn(where, f"{rule.glob!r} matches no DVC output or repository file")


def _matches(path: str, pattern: str) -> bool:
    try:
        return PurePosixPath(path).match(pattern)
    except ValueError:  # an empty or malformed pattern
        return False


def _fill(template: str | None, key: str, path: str) -> str:
    return (template or key).replace("{path}", path).replace("{key}", key)


def _customize(asset: dict[str, Any], rule: frontmatter.AssetRule, path: str) -> None:
    if rule.title:
        asset["title"] = _fill(rule.title, _fill(rule.key, path, path) if rule.key else path, path)
    if rule.description:
        asset["description"] = rule.description
    if rule.type:
        asset["type"] = rule.type
    if rule.roles is not None:
        asset["roles"] = list(rule.roles)
    asset.update(rule.extra)


def _raw_url(snapshot: ProjectSnapshot, path: str) -> str:
    from urllib.parse import quote
    return f"{snapshot.web_url.rstrip('/')}/-/raw/{quote(snapshot.ref, safe='')}/{quote(path)}"


def _resolve(snapshot: ProjectSnapshot, href: str, *, raw: bool = False) -> str:
    """An absolute href as is; a repository path -> the file at this version on GitLab (its page, or
    its bytes when ``raw``: assets and previews)."""
    if "://" in href or href.startswith("mailto:"):
        return href
    path = dvc.inside("", href.removeprefix("./"))
    if not path:
        return snapshot.web_url.rstrip("/")
    return _raw_url(snapshot, path) if raw else _raw_url(snapshot, path).replace("/-/raw/", "/-/blob/", 1)


# -- the item --------------------------------------------------------------------------------
def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if not dt.microsecond else \
        dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _version_date(snapshot: ProjectSnapshot) -> datetime:
    own = next((t.created_at for t in snapshot.tags if t.name == snapshot.ref), None) if snapshot.is_tag else None
    return _parse_time(own or snapshot.committed_at) or _parse_time(snapshot.committed_at) or datetime(
        1970, 1, 1, tzinfo=timezone.utc)


def _item_href(settings: BuildSettings, cid: str, iid: str) -> str:
    if settings.base_url:
        return f"{settings.base_url.rstrip('/')}/stac/collections/{cid}/items/{iid}"
    return f"./{iid}.json"


def _interval(fm: frontmatter.FrontMatter, when: datetime,
              warn: frontmatter.Warn) -> tuple[datetime, datetime | None, datetime | None]:
    """(datetime, start, end) from ``extent.temporal`` and the version's date ``when``: a range when both
    ends are known (an open end is ``when``), ``datetime`` its start; ``[null, end]``: ``datetime = end``."""
    start, end = fm.start, fm.end
    if start and not end:
        if when < start:
            warn("extent.temporal", f"open end, but the start {_iso(start)} is after this version's date: ignored")
            return when, None, None
        end = when
    if start and end:
        return start, start, end
    return end or when, None, None


def _item(snapshot: ProjectSnapshot, fm: frontmatter.FrontMatter, iid: str, cid: str,
          assets: dict[str, dict[str, Any]], settings: BuildSettings, warn: frontmatter.Warn) -> dict[str, Any]:
    import pystac

    dt, start, end = _interval(fm, _version_date(snapshot), warn)
    title = fm.title or snapshot.name
    props: dict[str, Any] = {
        "title": f"{title} ({snapshot.ref})" if snapshot.is_tag else f"{title} ({snapshot.ref}, development)",
        "description": fm.description or fm.body[:frontmatter.MAX_BODY] or snapshot.description
        or f"{title}, version {snapshot.ref}",
        PROJECT: snapshot.path, PROJECT_ID: snapshot.id, VISIBILITY: snapshot.visibility,
        REF: snapshot.ref, COMMIT: snapshot.commit,
    }
    item = pystac.Item(iid, fm.geometry, fm.bbox, dt, props, start_datetime=start, end_datetime=end, collection=cid)
    common = item.common_metadata
    if fm.license:
        common.license = fm.license
    if fm.license_expression:
        item.properties[LICENSE_EXPRESSION] = fm.license_expression
    providers = [pystac.Provider.from_dict(p) for p in fm.providers]
    if not any("host" in (p.roles or []) for p in providers):
        providers.append(pystac.Provider("GitLab", roles=[pystac.ProviderRole.HOST], url=snapshot.web_url))
    common.providers = providers
    keywords = [*fm.keywords, *(t for t in snapshot.topics if not t.startswith("sharinghub:"))]
    if keywords:
        item.properties["keywords"] = list(dict.fromkeys(keywords))
    for name, value in fm.properties.items():
        item.properties[name] = value
    item.stac_extensions.extend(sorted(fm.extensions))
    if cid == TOPIC_COLLECTIONS[AIMODEL_TOPIC]:
        _model_fields(item, fm, title, assets, warn)

    for key in sorted(assets):
        item.add_asset(key, pystac.Asset.from_dict(assets[key]))
    item.properties[PENDING] = pending_keys(assets)
    if fm.preview:
        href = _resolve(snapshot, fm.preview, raw=True)
        item.add_asset("preview", pystac.Asset(href, title="Preview", media_type=media_type(fm.preview),
                                               roles=["thumbnail"]))
        item.add_link(pystac.Link("preview", href, media_type=media_type(fm.preview)))

    _links(item, snapshot, fm, cid, settings, warn)
    _doi(item, warn)

    doc = item.to_dict(include_self_link=False, transform_hrefs=False)
    doc["links"] = catalog.item_links(iid) + doc["links"]
    if fm.geometry is not None:
        doc["bbox"] = fm.bbox
    return doc


def _links(item: "pystac.Item", snapshot: ProjectSnapshot, fm: frontmatter.FrontMatter, cid: str,
           settings: BuildSettings, warn: frontmatter.Warn) -> None:
    """Version fields and links, the project, the license, ``related`` and the front matter's links."""
    import pystac
    from pystac.extensions.version import VersionExtension, VersionRelType

    version = VersionExtension.ext(item, add_if_missing=True)
    names = [t.name for t in snapshot.tags]
    newest = names[-1] if names else None
    if snapshot.is_tag:
        version.version, version.deprecated = snapshot.ref, False
        if snapshot.ref in names:
            i = names.index(snapshot.ref)
            if i > 0:
                item.add_link(_version_link(VersionRelType.PREDECESSOR, settings, cid, snapshot.path, names[i - 1]))
            if i + 1 < len(names):
                item.add_link(_version_link(VersionRelType.SUCCESSOR, settings, cid, snapshot.path, names[i + 1]))
    else:
        version.version, version.deprecated, version.experimental = f"{snapshot.ref}@{snapshot.commit[:12]}", False, True
    if newest is not None:
        item.add_link(_version_link(VersionRelType.LATEST, settings, cid, snapshot.path, newest))
    item.add_link(pystac.Link("via", snapshot.web_url, media_type="text/html", title=f"GitLab project {snapshot.path}"))
    if fm.license_url:
        item.add_link(pystac.Link("license", fm.license_url, title="License"))
    else:
        for spdx in fm.license_ids:
            item.add_link(pystac.Link("license", f"https://spdx.org/licenses/{spdx}.html", media_type="text/html",
                                      title=spdx))
    for rel in fm.related:
        title = rel.title or (f"{rel.collection}: {rel.href.split('://', 1)[-1].split('/', 1)[-1]}"
                              if rel.collection else rel.href)
        item.add_link(pystac.Link("derived_from", rel.href, media_type=GEOJSON if rel.href.endswith(".json")
                                  else "text/html", title=title))
    for i, link in enumerate(fm.links):
        if link["rel"] in _STRUCTURAL:
            warn(f"links[{i}]", f"rel {link['rel']!r} is set by stacflow: ignored")
            continue
        item.add_link(pystac.Link(link["rel"], _resolve(snapshot, link["href"]), media_type=link.get("type"),
                                  title=link.get("title")))


def _version_link(rel: str, settings: BuildSettings, cid: str, path: str, tag: str) -> "pystac.Link":
    import pystac
    return pystac.Link(rel, _item_href(settings, cid, item_id(path, tag, is_tag=True)), media_type=GEOJSON,
                       title=f"Version {tag}")


def _doi(item: "pystac.Item", warn: frontmatter.Warn) -> None:
    """``sci:doi`` through pystac's scientific extension, which adds the ``cite-as`` link."""
    doi = item.properties.get("sci:doi")
    if doi is None:
        return
    from pystac.extensions.scientific import ScientificExtension
    if not isinstance(doi, str) or not doi.startswith("10."):
        warn("sci.doi", f"{doi!r} is not a DOI (10.<registrant>/<suffix>): ignored")
        del item.properties["sci:doi"]
        if not any(k.startswith("sci:") for k in item.properties):  # the schema requires a sci: field
            ScientificExtension.remove_from(item)
        return
    del item.properties["sci:doi"]  # the setter adds the link only when the value changes
    ScientificExtension.ext(item, add_if_missing=True).doi = doi


# -- model projects --------------------------------------------------------------------------
_PREDICTION_TASKS = {"object-detection": "object-detection", "detection": "detection",
                     "classification": "classification", "segmentation": "segmentation",
                     "semantic-segmentation": "semantic-segmentation", "regression": "regression"}


def _model_fields(item: "pystac.Item", fm: frontmatter.FrontMatter, title: str,
                  assets: dict[str, dict[str, Any]], warn: frontmatter.Warn) -> None:
    """MLM fields from the README's ``mlm:`` (and deprecated ``ml-model:``) blocks; model files as
    ``mlm:model`` assets. Without a model file the MLM schema is not declared (it requires one)."""
    block = dict(fm.model)
    props = item.properties
    legacy_task = block.pop("ml-model:prediction_type", None)
    legacy_arch = block.pop("ml-model:architecture", None)
    for key in [k for k in block if k.startswith("ml-model:")]:
        props[key] = frontmatter.plain_json(block.pop(key))
    name = block.pop(mlm.NAME, None)
    props[mlm.NAME] = mlm.model_name(name if isinstance(name, str) and name.strip() else title)
    arch = block.pop(mlm.ARCHITECTURE, None) or legacy_arch
    if arch is not None and not isinstance(arch, str):
        warn(mlm.ARCHITECTURE, f"must be a string, not {type(arch).__name__}: 'unknown' used")
        arch = None
    props[mlm.ARCHITECTURE] = arch or "unknown"
    tasks = block.pop(mlm.TASKS, None)
    tasks = [tasks] if isinstance(tasks, str) else tasks if isinstance(tasks, list) else []
    if isinstance(legacy_task, str) and legacy_task in _PREDICTION_TASKS:
        tasks.append(_PREDICTION_TASKS[legacy_task])
    good = [t for t in tasks if isinstance(t, str) and t in mlm.TASK_VALUES]
    if len(good) != len(tasks):
        warn(mlm.TASKS, f"tasks must be among {sorted(mlm.TASK_VALUES)}: others dropped")
    props[mlm.TASKS] = sorted(set(good))
    for side in (mlm.INPUT, mlm.OUTPUT):
        value = block.pop(side, None)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            warn(side, "must be a list of mappings: [] used")
            value = None
        props[side] = frontmatter.plain_json(value or [])
    for key, value in block.items():
        if key.startswith("mlm:"):
            props[key] = frontmatter.plain_json(value)
    models = 0
    for key, asset in assets.items():
        suffix = PurePosixPath(key.lower()).suffix
        roles = asset.get("roles") or []
        if mlm.MODEL_ROLE in roles or (suffix in ARTIFACT_TYPES and "metadata" not in roles):
            asset["roles"] = list(dict.fromkeys([mlm.MODEL_ROLE, *roles]))
            asset.setdefault(mlm.ARTIFACT_TYPE, ARTIFACT_TYPES.get(suffix, "other"))
            models += 1
    if models:
        item.stac_extensions.append(mlm.SCHEMA_URI)
    else:
        warn("assets", "no model file (.onnx, .pt, ... or an asset with role mlm:model): MLM not declared")
