"""FilmStore on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Aliyun OSS...), IMAGING_PRINT_STORE=s3.

boto3 is blocking: every call runs in a worker thread (asyncio.to_thread); one client is shared,
which boto3 allows across threads. A film is one PUT of the whole object, so readers see the
old object or the new one, never a part (S3's own guarantee); the request carries Content-MD5,
so the server refuses (BadDigest) a body damaged on the way instead of storing it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from print_scp.domain.storage import ObjectNotFound, StoreMisconfigured
from print_scp.settings import Settings

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/")

    @classmethod
    async def open(cls, settings: Settings) -> S3Store:
        """The store the settings describe, once the bucket answered; else StoreMisconfigured."""
        if not settings.print_s3_bucket:
            raise StoreMisconfigured("IMAGING_PRINT_STORE=s3 needs IMAGING_PRINT_S3_BUCKET (the bucket's name)")
        if bool(settings.print_s3_access_key_id) != bool(settings.print_s3_secret_access_key):
            raise StoreMisconfigured("IMAGING_PRINT_S3_ACCESS_KEY_ID and IMAGING_PRINT_S3_SECRET_ACCESS_KEY "
                                     "go together: set both, or neither to use boto3's credential chain")
        # Creating a client reads botocore's service models from disk: keep it off the loop too.
        try:
            client = await asyncio.to_thread(_client, settings)
        except ValueError as exc:  # botocore's "Invalid endpoint: ..."
            raise StoreMisconfigured(f"IMAGING_PRINT_S3_ENDPOINT_URL={settings.print_s3_endpoint_url!r}: "
                                     f"{exc}") from None
        store = cls(client, settings.print_s3_bucket, settings.print_s3_prefix)
        try:
            await store.check(settings)
        except BaseException:
            store.close()
            raise
        return store

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def check(self, settings: Settings) -> None:
        """HEAD the bucket: reachable endpoint, existing bucket, credentials it accepts."""
        bucket, endpoint = self.bucket, settings.print_s3_endpoint_url or "AWS S3"
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=bucket)
        except NoCredentialsError:
            raise StoreMisconfigured(
                "S3 film store: no credentials; set IMAGING_PRINT_S3_ACCESS_KEY_ID and "
                "IMAGING_PRINT_S3_SECRET_ACCESS_KEY") from None
        except ClientError as exc:
            code, status = _code(exc), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _MISSING or status == 404:
                raise StoreMisconfigured(
                    f"IMAGING_PRINT_S3_BUCKET={bucket!r}: no such bucket at {endpoint} "
                    "(create it first; the service never creates buckets)") from None
            if status == 403:
                raise StoreMisconfigured(
                    f"S3 film store: access to bucket {bucket!r} at {endpoint} denied; check "
                    "IMAGING_PRINT_S3_ACCESS_KEY_ID / IMAGING_PRINT_S3_SECRET_ACCESS_KEY and the bucket policy"
                ) from None
            if status in (301, 307, 400):
                raise StoreMisconfigured(
                    f"S3 film store: bucket {bucket!r} refused the request ({code or status}); check "
                    f"IMAGING_PRINT_S3_REGION={settings.print_s3_region!r} and "
                    f"IMAGING_PRINT_S3_ADDRESSING_STYLE={settings.print_s3_addressing_style!r}") from None
            raise StoreMisconfigured(f"S3 film store: bucket {bucket!r} at {endpoint} answered {code or status}: "
                                     f"{exc}") from None
        except (BotoCoreError, ValueError) as exc:  # connection refused, DNS, timeout, TLS, bad URL
            hint = (" (with a named host and IMAGING_PRINT_S3_ADDRESSING_STYLE=auto the bucket is looked up as "
                    "<bucket>.<host>: set it to path for MinIO/Ceph)"
                    if settings.print_s3_endpoint_url and settings.print_s3_addressing_style == "auto" else "")
            raise StoreMisconfigured(
                f"IMAGING_PRINT_S3_ENDPOINT_URL={settings.print_s3_endpoint_url!r}: S3 endpoint unreachable "
                f"({type(exc).__name__}: {exc}){hint}") from None
        log.info("film store: s3 bucket %s at %s, prefix %r", bucket, endpoint, self.prefix)

    def _put(self, key: str, data: bytes, content_type: str, content_md5: str | None = None) -> None:
        content_md5 = content_md5 or base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        response = self.client.put_object(
            Bucket=self.bucket, Key=self.key(key), Body=data, ContentType=content_type, ContentMD5=content_md5)
        # S3 checks Content-MD5 itself (BadDigest); some compatible servers don't. The ETag of a
        # single PUT is the MD5 of what was stored, except under SSE-KMS / SSE-C where it is opaque.
        etag = str(response.get("ETag", "")).strip('"')
        opaque = str(response.get("ServerSideEncryption", "")).startswith("aws:kms") or \
            "SSECustomerAlgorithm" in response
        expected = base64.b64decode(content_md5).hex()
        if etag and not opaque and len(etag) == 32 and etag != expected:
            raise OSError(f"S3 object {key!r}: the server stored MD5 {etag}, we sent {expected}")

    def _get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        with response["Body"] as body:
            data: bytes = body.read()
        # A short read (connection cut mid-body) must not pass for a film.
        if len(data) != response.get("ContentLength", len(data)):
            raise OSError(f"S3 object {key!r}: read {len(data)} of {response['ContentLength']} bytes")
        return data

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, data, content_type)

    def put_parts_blocking(self, key: str, parts: Sequence[bytes | memoryview], content_type: str) -> None:
        self._put(key, b"".join(parts), content_type)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, key)

    async def delete(self, key: str) -> None:
        # S3 answers 204 for a key that is not there: deleting twice is fine, as for the directory store.
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.key(key))

    def _keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        skip = len(self.key(""))
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(prefix))
        return [o["Key"][skip:] for page in pages for o in page.get("Contents", []) if o["LastModified"] < before]

    async def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        return await asyncio.to_thread(self._keys_older_than, prefix, before)

    def close(self) -> None:
        self.client.close()


def _client(settings: Settings) -> Any:
    config = Config(
        region_name=settings.print_s3_region,
        connect_timeout=settings.print_s3_timeout,
        read_timeout=settings.print_s3_timeout,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": settings.print_s3_addressing_style},
        # Renderers and API reads share the pool; botocore's default of 10 would queue them.
        max_pool_connections=32,
        # boto3 >= 1.36 adds CRC32 trailers (aws-chunked) by default, which several S3-compatible
        # servers refuse; we send Content-MD5 ourselves, which all of them check.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    secret = settings.print_s3_secret_access_key
    session = boto3.session.Session()  # a session per client: boto3's default session is not thread-safe
    return session.client(
        "s3", endpoint_url=settings.print_s3_endpoint_url or None, config=config,
        aws_access_key_id=settings.print_s3_access_key_id or None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )
