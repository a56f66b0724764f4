"""S3 adapter. boto3 is imported on first use so that cold starts on the local store skip it.

Honours boto3's standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible servers.
Bucket notifications, not this class, announce changes in production; ``emit_events=True``
also dispatches them in-process (local runs against a server that sends none).
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any, Iterator, Sequence

from .base import (CREATED, DELETE, GET, HEAD, LIST, MULTIPART, PRESIGN, PUT, Change, CompletedPart, EventSource, NotFound, NotModified, ObjectInfo, ObjectReader, ObjectStore,
                   PreconditionFailed, RangeNotSatisfiable, StoredObject, check_key, check_range)

_client_lock = threading.Lock()
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(\d+)$")
# botocore operation -> request kind (base.KINDS); anything else counts under its operation name
_KIND = {"GetObject": GET, "PutObject": PUT, "ListObjectsV2": LIST, "HeadObject": HEAD, "DeleteObject": DELETE,
         "CreateMultipartUpload": MULTIPART, "UploadPart": MULTIPART, "CompleteMultipartUpload": MULTIPART,
         "AbortMultipartUpload": MULTIPART}


def _code(err: Exception) -> str:
    response = getattr(err, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(err: Exception) -> int:
    response = getattr(err, "response", {}) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str = "", *, emit_events: bool = False,
                 client: Any = None) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.emit_events = emit_events
        self._client = client
        if client is not None:
            client.meta.events.register("before-send.s3", self._count_request)

    @property
    def client(self) -> Any:
        if self._client is None:
            with _client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config
                    self._client = boto3.client(
                        "s3", config=Config(retries={"mode": "standard", "max_attempts": 5},
                                            max_pool_connections=50))
                    # every attempt, retries included: what S3 bills and throttles
                    self._client.meta.events.register("before-send.s3", self._count_request)
        return self._client

    def _count_request(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.meter.request(_KIND.get(operation, operation))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    @property
    def event_source(self) -> EventSource:
        return EventSource(self.bucket, self.prefix)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"

    def _notify(self, change: Change) -> None:
        if self.emit_events:
            super()._notify(change)

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject:
        from botocore.exceptions import ClientError
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self.client.get_object(**kwargs)
        except ClientError as err:
            if _status(err) == 304 or _code(err) in ("304", "NotModified"):
                raise NotModified(key) from None
            if _code(err) in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            raise
        body = resp["Body"].read()
        self.meter.moved(read=len(body))
        return StoredObject(key=key, body=body, etag=resp["ETag"], last_modified=resp["LastModified"].timestamp())

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        from botocore.exceptions import ClientError
        check_range(start, length)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if start < 0:
            kwargs["Range"] = f"bytes={start}"
        elif start or length is not None:
            kwargs["Range"] = f"bytes={start}-" + (str(start + length - 1) if length is not None else "")
        try:
            resp = self.client.get_object(**kwargs)
        except ClientError as err:
            if _code(err) in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            if _code(err) == "InvalidRange" or _status(err) == 416:
                size = (getattr(err, "response", {}) or {}).get("Error", {}).get("ActualObjectSize")
                raise RangeNotSatisfiable(key, int(size) if size is not None else self.head(key).size) from None
            raise
        count = int(resp["ContentLength"])
        self.meter.moved(read=count)
        match = _CONTENT_RANGE.match(resp.get("ContentRange") or "")
        first, size = (int(match.group(1)), int(match.group(2))) if match else (0, count)
        return ObjectReader(key, etag=resp["ETag"], size=size, last_modified=resp["LastModified"].timestamp(),
                            start=first, length=count, raw=resp["Body"])

    def head(self, key: str) -> ObjectInfo:
        from botocore.exceptions import ClientError
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as err:
            if _code(err) in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(key) from None
            raise
        return ObjectInfo(key=key, etag=resp["ETag"], size=resp["ContentLength"],
                          last_modified=resp["LastModified"].timestamp())

    def _put(self, key: str, body: bytes, *, if_none_match: bool, if_match: str | None,
             content_type: str | None) -> ObjectInfo:
        from botocore.exceptions import ClientError
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key), "Body": body}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        self.meter.moved(written=len(body))
        try:
            resp = self.client.put_object(**kwargs)
        except ClientError as err:
            # 409 ConditionalRequestConflict: a concurrent conditional write won the race.
            if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(err) in (409, 412):
                raise PreconditionFailed(key) from None
            if if_match is not None and _code(err) in ("NoSuchKey", "404"):
                raise PreconditionFailed(key) from None
            raise
        return ObjectInfo(key=key, etag=resp["ETag"], size=len(body), last_modified=time.time())

    def _delete(self, key: str, *, if_match: str | None) -> bool:
        from botocore.exceptions import ClientError
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            self.client.delete_object(**kwargs)
        except ClientError as err:
            if _code(err) in ("PreconditionFailed",) or _status(err) == 412:
                raise PreconditionFailed(key) from None
            if if_match is not None and _code(err) in ("NoSuchKey", "404"):
                raise PreconditionFailed(key) from None
            raise
        return True

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after:
            kwargs["StartAfter"] = self.prefix + start_after
        count = 0
        while True:
            if limit is not None:
                kwargs["MaxKeys"] = min(1000, limit - count)
            resp = self.client.list_objects_v2(**kwargs)
            for obj in resp.get("Contents", []):
                yield ObjectInfo(key=obj["Key"][len(self.prefix):], etag=obj["ETag"], size=obj["Size"],
                                 last_modified=obj["LastModified"].timestamp())
                count += 1
                if limit is not None and count >= limit:
                    return
            if not resp.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    def presign_get(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        self.meter.request(PRESIGN)
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=expires))

    def presign_put(self, key: str, *, expires: int = 3600, base_url: str | None = None) -> str:
        self.meter.request(PRESIGN)
        return str(self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=expires))

    def create_multipart(self, key: str) -> str:
        resp = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._k(key))
        return str(resp["UploadId"])

    def presign_part(self, key: str, upload_id: str, part_number: int, *, expires: int = 3600,
                     base_url: str | None = None) -> str:
        self.meter.request(PRESIGN)
        return str(self.client.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": self._k(key), "UploadId": upload_id,
                                   "PartNumber": int(part_number)}, ExpiresIn=expires))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[CompletedPart]) -> ObjectInfo:
        from botocore.exceptions import ClientError
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._k(key), UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.part_number, "ETag": p.etag}
                                           for p in sorted(parts, key=lambda p: p.part_number)]})
        except ClientError as err:
            if _code(err) in ("NoSuchUpload", "InvalidPart", "InvalidPartOrder"):
                raise NotFound(f"{_code(err)}: upload {upload_id} for {key}") from None
            raise
        info = self.head(key)
        self._notify(Change(CREATED, key, info.etag, info.size))
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._k(key), UploadId=upload_id)
        except ClientError as err:
            if _code(err) != "NoSuchUpload":
                raise

