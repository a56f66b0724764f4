"""``stacflow publish-ui``: upload built web UIs (``build/ui/<name>/``) into the store's ``ui/<name>/``.

Files already there with the same content (ETag = MD5, as single-part S3 uploads and the local
store give) are skipped; ``index.html`` goes last, so a page never names a chunk that is not
uploaded yet. Old hashed files stay (an open tab may still load them) unless ``prune``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..store import NotFound, ObjectStore
from .static import INDEX, STORE_PREFIX, media_type


@dataclass
class PublishReport:
    site: str
    uploaded: int = 0
    unchanged: int = 0
    pruned: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def publish_site(store: ObjectStore, name: str, directory: Path, *, prune: bool = False) -> PublishReport:
    if not (directory / INDEX).is_file():
        raise FileNotFoundError(f"{directory / INDEX} not found: build the UI first (make setup)")
    prefix = f"{STORE_PREFIX}/{name}/"
    files = sorted((p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (p.name == INDEX and p.parent == directory, str(p)))
    report = PublishReport(name)
    for path in files:
        relative = path.relative_to(directory).as_posix()
        body = path.read_bytes()
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        try:
            if store.head(prefix + relative).etag == etag:
                report.unchanged += 1
                continue
        except NotFound:
            pass
        # notify=False: UI files are nothing the event functions handle.
        store.put(prefix + relative, body, content_type=media_type(relative), notify=False)
        report.uploaded += 1
        report.bytes += len(body)
    if prune:
        wanted = {prefix + p.relative_to(directory).as_posix() for p in files}
        for info in list(store.list(prefix)):
            if info.key not in wanted:
                store.delete(info.key)
                report.pruned += 1
    return report
