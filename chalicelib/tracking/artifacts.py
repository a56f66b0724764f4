"""Proxied artifacts: the store side of MLflow's ``mlflow-artifacts:`` scheme.

An artifact path ``<experiment id>/<run id>/artifacts/<file>`` lives at store key
``mlflow-artifacts/<path>``. Method names follow MLflow's artifact handlers
(mlflow/server/handlers.py) so each REST route is one call. Bodies too big for a
proxied Lambda response (6 MB, base64-inflated) are handed out as presigned URLs:
S3's own, or the local store's ``/files/{token}`` stand-ins.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterable

from ..mlflowapi import validation as v
from ..mlflowapi.errors import MlflowError, invalid, not_found
from ..mlflowapi.validation import artifact_path
from ..store import CompletedPart, NotFound, ObjectInfo, ObjectStore, PreconditionFailed, join_key

ARTIFACTS_PREFIX = "mlflow-artifacts"
# Largest body proxied inline: 4 MiB is 5.6 MB once API Gateway base64-encodes it, under
# Lambda's 6 MB response limit. Bigger downloads are redirected to a presigned URL.
PROXY_LIMIT = 4 * 1024 * 1024
MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
PRESIGN_EXPIRES = 3600


def _file_name(local_file: str) -> str:
    # The client sends its own local path; only the file name matters (as in MLflow's repos).
    name = re.split(r"[/\\]", local_file.rstrip("/\\"))[-1] if local_file else ""
    return artifact_path(name)


@dataclass(frozen=True)
class FileInfo:
    path: str  # the entry's name within the listed directory
    is_dir: bool
    file_size: int | None = None

    def to_wire(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "is_dir": self.is_dir}
        if self.file_size is not None:
            out["file_size"] = self.file_size
        return out


@dataclass(frozen=True)
class Download:
    """A small artifact's bytes, or a presigned URL for one too big to proxy."""

    size: int
    body: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class PresignedDownload:
    url: str
    file_size: int
    headers: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, object]:
        return {"url": self.url, "headers": self.headers, "file_size": self.file_size}


@dataclass(frozen=True)
class UploadCredential:
    url: str
    part_number: int
    headers: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, object]:
        return {"url": self.url, "part_number": self.part_number, "headers": self.headers}


@dataclass(frozen=True)
class MultipartUpload:
    upload_id: str
    credentials: list[UploadCredential]

    def to_wire(self) -> dict[str, object]:
        return {"upload_id": self.upload_id, "credentials": [c.to_wire() for c in self.credentials]}


class ArtifactService:
    """MLflow's proxied artifact repository over the object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(path: str) -> str:
        return join_key(ARTIFACTS_PREFIX, path)

    @staticmethod
    def capabilities() -> dict[str, bool]:
        """What ``/api/3.0/mlflow/server-info`` advertises: both adapters presign."""
        return {"multipart_uploads_enabled": True, "multipart_downloads_enabled": True}

    @staticmethod
    def proxied_path(artifact_uri: str, relative: str = "") -> str:
        """The proxied path of ``relative`` under a run's or logged model's root (``mlflow-artifacts:/<path>``,
        with or without an authority), as MLflow's ``_get_proxied_run_artifact_destination_path``."""
        scheme, sep, rest = artifact_uri.partition(":")
        if not sep or scheme != "mlflow-artifacts":
            raise invalid(f"Artifacts at {artifact_uri!r} are not served through this service")
        root = rest[2:].partition("/")[2] if rest.startswith("//") else rest.lstrip("/")
        relative = artifact_path(relative, allow_root=True)
        return artifact_path(posixpath.join(root, relative) if relative else root, allow_root=True)

    # -- single objects ------------------------------------------------------------------
    def upload_artifact(self, path: str, body: bytes) -> None:
        self.store.put(self.key(artifact_path(path)), body)

    def download_artifact(self, path: str, *, base_url: str | None = None) -> Download:
        key = self.key(artifact_path(path))
        try:
            reader = self.store.open(key)
        except NotFound:
            raise _no_artifact(path) from None
        with reader:  # one request; the size decides before any byte is read
            if reader.size > PROXY_LIMIT:
                return Download(size=reader.size, url=self.store.presign_get(key, expires=PRESIGN_EXPIRES,
                                                                            base_url=base_url))
            return Download(size=reader.size, body=reader.read())

    def get_presigned_download_url(self, path: str, *, base_url: str | None = None) -> PresignedDownload:
        key = self.key(artifact_path(path))
        info = self._head(key, path)
        return PresignedDownload(url=self.store.presign_get(key, expires=PRESIGN_EXPIRES, base_url=base_url),
                                 file_size=info.size)

    def _head(self, key: str, path: str) -> ObjectInfo:
        try:
            return self.store.head(key)
        except NotFound:
            raise _no_artifact(path) from None

    # -- directories -----------------------------------------------------------------------
    def list_artifacts(self, path: str = "") -> list[FileInfo]:
        """Direct children of directory ``path`` (a file or a missing path lists as empty)."""
        path = artifact_path(path, allow_root=True)
        prefix = self.key(path) + "/" if path else ARTIFACTS_PREFIX + "/"
        entries: dict[str, FileInfo] = {}
        for info in self.store.list(prefix):
            name, sep, _ = info.key[len(prefix):].partition("/")
            if sep:
                entries.setdefault(name, FileInfo(name, True))
            else:
                entries[name] = FileInfo(name, False, info.size)
        return [entries[name] for name in sorted(entries)]

    def list_under(self, artifact_uri: str, relative: str = "") -> list[FileInfo]:
        """MLflow's ``artifacts/list`` for a run or model version: entries of directory ``relative``
        under ``artifact_uri``, each named by its path from that root."""
        relative = artifact_path(relative, allow_root=True)
        return [FileInfo(posixpath.join(relative, f.path) if relative else f.path, f.is_dir, f.file_size)
                for f in self.list_artifacts(self.proxied_path(artifact_uri, relative))]

    def delete_artifact(self, path: str) -> int:
        """Delete the file ``path`` or everything under directory ``path``; returns the count."""
        key = self.key(artifact_path(path))
        doomed = [info.key for info in self.store.list(key + "/")]
        if self.store.exists(key):
            doomed.append(key)
        for k in doomed:
            self.store.delete(k)
        return len(doomed)

    # -- multipart uploads straight to storage -------------------------------------------------
    def _target(self, directory: str, local_file: str) -> str:
        directory = artifact_path(directory, allow_root=True)
        return self.key(posixpath.join(directory, _file_name(local_file)) if directory else _file_name(local_file))

    def create_multipart_upload(self, directory: str, local_file: str, num_parts: int, *,
                                base_url: str | None = None) -> MultipartUpload:
        if not 1 <= num_parts <= MAX_PARTS:
            raise invalid(f"num_parts must be between 1 and {MAX_PARTS}, got {num_parts}")
        key = self._target(directory, local_file)
        upload_id = self.store.create_multipart(key)
        return MultipartUpload(upload_id, [
            UploadCredential(self.store.presign_part(key, upload_id, n, expires=PRESIGN_EXPIRES,
                                                     base_url=base_url), n)
            for n in range(1, num_parts + 1)])

    def complete_multipart_upload(self, directory: str, local_file: str, upload_id: str,
                                  parts: Iterable[CompletedPart]) -> None:
        key = self._target(directory, local_file)
        parts = list(parts)
        if not parts:
            raise invalid("parts must not be empty")
        try:
            self.store.complete_multipart(key, v.upload_id(upload_id), parts)
        except NotFound as err:
            raise not_found(f"Multipart upload {upload_id!r} for {local_file!r}: {err}") from None
        except PreconditionFailed as err:
            raise invalid(str(err)) from None

    def abort_multipart_upload(self, directory: str, local_file: str, upload_id: str) -> None:
        self.store.abort_multipart(self._target(directory, local_file), v.upload_id(upload_id))


def _no_artifact(path: str) -> MlflowError:
    return not_found(f"Artifact {path!r} does not exist")
