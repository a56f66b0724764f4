"""DVC 3 metadata: ``.dvc`` files, ``dvc.lock`` outs, ``.dvc/config`` remotes and ``.dir`` manifests.

Everything here reads text a project committed, so nothing trusts it: a malformed file, output or
manifest entry is skipped with a warning, and a path that leaves the repository (absolute, ``..``
past the root, a URL) is ignored with a warning. Nothing raises on bad input.

Layout of a DVC 3 remote: ``<remote>/files/md5/<first 2 hex>/<other 30 hex>``, a directory's
manifest at the same place with a ``.dir`` suffix (a JSON list of ``{"md5", "relpath"}``; its
content's md5 is the directory's hash). Outputs without ``hash: md5`` were written by DVC 2: their
objects live at ``<remote>/<2>/<30>`` and their md5 of text files is not the md5 of the bytes, so
they get no checksum.
"""
from __future__ import annotations

import configparser
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..bounds import InputBoundError, check_depth
from .frontmatter import Warn, load_yaml

MD5 = re.compile(r"[0-9a-f]{32}")
DIR_SUFFIX = ".dir"
LAYOUT = "files/md5/"  # DVC 3 (``hash: md5``); DVC 2 objects sit at the remote's root
MAX_METADATA_BYTES = 1 << 20  # a .dvc file or dvc.lock larger than this is not metadata anyone wrote
# An object key in a DVC remote: (prefix/)(files/md5/)ab/cdef…(.dir)
_OBJECT_KEY = re.compile(r"^(?P<prefix>.*?)(?P<layout>files/md5/)?(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{30})"
                         r"(?P<dir>\.dir)?$")
_REMOTE_SECTION = re.compile(r"""^'?\s*remote\s+"(?P<name>[^"]+)"\s*'?$""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class Output:
    """One DVC-tracked output of the repository (a file, or a directory with its manifest)."""

    path: str  # relative to the repository root, normalized, never leaving it
    md5: str  # 32 hex digits (without ".dir")
    size: int | None  # bytes (a directory: all its files)
    nfiles: int | None  # a directory's file count
    isdir: bool
    legacy: bool  # DVC 2 hash: objects outside files/md5/, md5 not always of the bytes
    remote: str | None  # the out's own ``remote:`` name, else None (the default remote)
    source: str  # the .dvc file or dvc.lock it comes from

    @property
    def key(self) -> str:
        """The object's key in its remote."""
        return object_key(self.md5, isdir=self.isdir, legacy=self.legacy)


@dataclass(frozen=True)
class Entry:
    """One file of a directory manifest."""

    relpath: str  # relative to the directory, normalized, never leaving it
    md5: str


@dataclass(frozen=True)
class RemoteConfig:
    default: str | None  # ``core.remote``
    urls: Mapping[str, str]  # remote name -> url

    def url_for(self, name: str | None) -> str | None:
        """The url of remote ``name`` (an out's own ``remote:``), else of the default one; None if unknown."""
        name = name or self.default
        return self.urls.get(name) if name else None


def object_key(md5: str, *, isdir: bool = False, legacy: bool = False) -> str:
    return f"{'' if legacy else LAYOUT}{md5[:2]}/{md5[2:]}{DIR_SUFFIX if isdir else ''}"


def parse_object_key(key: str) -> tuple[str, str, bool, bool] | None:
    """(prefix, md5, isdir, legacy) of an object key in a DVC remote (e.g. from an S3 event), or None."""
    m = _OBJECT_KEY.match(key)
    if not m:
        return None
    return m["prefix"], m["a"] + m["b"], bool(m["dir"]), not m["layout"]


def split_url(url: str) -> tuple[str, str, str, bool, bool] | None:
    """(remote url, key in the remote, md5, isdir, legacy) of an object URL in a DVC remote, or None."""
    scheme, sep, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    parsed = parse_object_key(key) if sep and bucket else None
    if parsed is None:
        return None
    prefix, md5, isdir, legacy = parsed
    return f"{scheme}://{bucket}/{prefix}".rstrip("/"), key[len(prefix):], md5, isdir, legacy


def join_url(remote_url: str, key: str) -> str:
    return remote_url.rstrip("/") + "/" + key


def inside(base: str, path: Any) -> str | None:
    """``path`` (relative to ``base``) as a normalized path relative to the root, or None if it is not
    a plain relative path that stays inside (absolute, ``..`` past the root, a URL, control characters)."""
    if not isinstance(path, str) or not path or path.startswith("/") or _CONTROL.search(path) or "://" in path:
        return None
    joined = posixpath.normpath(posixpath.join(base, path))
    if joined in (".", "..") or joined.startswith("../") or joined.startswith("/"):
        return None
    return joined


# -- .dvc files and dvc.lock -------------------------------------------------------------------
def outputs(files: Mapping[str, bytes], warn: Warn) -> list[Output]:
    """Every output of every ``*.dvc`` file and ``dvc.lock`` in ``files``, first occurrence of a path wins."""
    found: dict[str, Output] = {}
    for name in sorted(files):
        base = posixpath.basename(name)
        if name.startswith(".dvc/") or not (base.endswith(".dvc") or base == "dvc.lock"):
            continue
        doc = _load_yaml(name, files[name], warn)
        if doc is None:
            continue
        for out in (_lock_outs(name, doc, warn) if base == "dvc.lock" else _dvc_file_outs(name, doc, warn)):
            if out.path in found:
                if found[out.path].md5 != out.md5:
                    warn(name, f"output {out.path!r} is also tracked by {found[out.path].source}; keeping that one")
                continue
            found[out.path] = out
    return [found[p] for p in sorted(found)]


def _load_yaml(name: str, body: bytes, warn: Warn) -> Any:
    if len(body) > MAX_METADATA_BYTES:
        warn(name, f"{len(body)} bytes, over the limit of {MAX_METADATA_BYTES}: ignored")
        return None
    try:
        return load_yaml(body)
    except ValueError as err:
        warn(name, f"not valid YAML: {err}")
        return None


def _dvc_file_outs(name: str, doc: Any, warn: Warn) -> Iterator[Output]:
    if not isinstance(doc, dict) or not isinstance(doc.get("outs"), list):
        warn(name, "no 'outs' list: ignored")
        return
    wdir = doc.get("wdir", ".")
    base = inside(posixpath.dirname(name), posixpath.join(wdir, "x")) if isinstance(wdir, str) else None
    base = posixpath.dirname(base) if base else None  # the folder outputs are relative to ("" = the root)
    if base is None:
        warn(name, f"wdir {wdir!r} leaves the repository: ignored")
        return
    for i, out in enumerate(doc["outs"]):
        if isinstance(out, dict) and (out.get("cache") is False or out.get("push") is False):
            warn(f"{name}: outs[{i}]", "not pushed to the remote (cache or push is false): no asset")
            continue
        parsed = _output(name, base, out, i, warn)
        if parsed:
            yield parsed


def _lock_outs(name: str, doc: Any, warn: Warn) -> Iterator[Output]:
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        warn(name, "no 'stages' mapping: ignored")
        return
    base = posixpath.dirname(name)  # dvc.yaml's ``wdir`` is not in the lock: paths are taken from its folder
    for stage, spec in stages.items():
        outs = spec.get("outs", []) if isinstance(spec, dict) else None
        if not isinstance(outs, list):
            warn(f"{name}: {stage}", "'outs' is not a list: ignored")
            continue
        for i, out in enumerate(outs):
            parsed = _output(f"{name}: {stage}", base, out, i, warn)
            if parsed:
                yield parsed


def _output(source: str, base: str, out: Any, index: int, warn: Warn) -> Output | None:
    where = f"{source}: outs[{index}]"
    if not isinstance(out, dict):
        warn(where, "not a mapping: ignored")
        return None
    path = inside(base, out.get("path"))
    if path is None:
        warn(where, f"path {out.get('path')!r} leaves the repository or is not a relative path: ignored")
        return None
    md5 = out.get("md5")
    if not isinstance(md5, str):
        warn(where, f"{path}: no md5 (not committed with `dvc commit`?): ignored")
        return None
    isdir = md5.endswith(DIR_SUFFIX)
    digest = md5[:-len(DIR_SUFFIX)] if isdir else md5
    if not MD5.fullmatch(digest):
        warn(where, f"{path}: md5 {md5!r} is not 32 hex digits: ignored")
        return None
    size, nfiles = out.get("size"), out.get("nfiles")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        warn(where, f"{path}: size {size!r} is not a byte count: left out")
        size = None
    if nfiles is not None and (not isinstance(nfiles, int) or isinstance(nfiles, bool) or nfiles < 0):
        warn(where, f"{path}: nfiles {nfiles!r} is not a count: left out")
        nfiles = None
    remote = out.get("remote")
    return Output(path=path, md5=digest, size=size, nfiles=nfiles if isdir else None, isdir=isdir,
                  legacy=out.get("hash") != "md5", remote=remote if isinstance(remote, str) else None,
                  source=source.split(":")[0])


# -- .dvc/config ----------------------------------------------------------------------------------
def remote_config(body: bytes | None, warn: Warn) -> RemoteConfig:
    """The remotes of ``.dvc/config`` (configobj syntax; ``['remote "name"']`` sections)."""
    if not body:
        return RemoteConfig(None, {})
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(body.decode("utf-8", errors="replace"))
    except configparser.Error as err:
        warn(".dvc/config", f"not readable: {str(err).splitlines()[0]}")
        return RemoteConfig(None, {})
    urls = {}
    for section in parser.sections():
        m = _REMOTE_SECTION.match(section)
        if m and parser.has_option(section, "url"):
            urls[m["name"]] = _unquote(parser.get(section, "url"))
    default = _unquote(parser.get("core", "remote")) if parser.has_option("core", "remote") else None
    return RemoteConfig(default, urls)


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


# -- .dir manifests -------------------------------------------------------------------------------
def manifest(body: bytes, where: str, warn: Warn, *, max_entries: int) -> list[Entry] | None:
    """The files of a ``.dir`` manifest (sorted by path), or None if it is malformed or has more than
    ``max_entries`` entries."""
    try:
        doc = json.loads(body)
        check_depth(doc, what=where, max_depth=3)
    except (ValueError, InputBoundError, RecursionError) as err:
        warn(where, f"manifest is not JSON: {err}")
        return None
    if not isinstance(doc, list):
        warn(where, "manifest is not a list")
        return None
    if len(doc) > max_entries:
        return None
    entries: dict[str, Entry] = {}
    for item in doc:
        relpath = inside("", item.get("relpath")) if isinstance(item, dict) else None
        md5 = item.get("md5") if isinstance(item, dict) else None
        if relpath is None or not isinstance(md5, str) or not MD5.fullmatch(md5):
            warn(where, f"manifest entry {str(item)[:200]!r} has no valid relpath/md5 or leaves the directory: ignored")
            continue
        entries.setdefault(relpath, Entry(relpath, md5))
    return [entries[p] for p in sorted(entries)]
