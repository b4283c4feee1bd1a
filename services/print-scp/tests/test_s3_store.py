"""The S3-compatible film store (IMAGING_PRINT_STORE=s3) against a real S3 server over HTTP.

The peer is moto's S3 server (`moto[server]`) in its own process on 127.0.0.1: it speaks the S3
REST protocol, so boto3 signs, sends and parses exactly as it would with AWS, MinIO or OSS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import boto3
import pytest
from imaging_testing import TEST_DATABASE, TEST_NAMESPACE, asgi_client, eventually, free_port
from imaging_testing import print_kit as tk
from print_scp.adapters.s3_store import S3Store
from print_scp.app import create_app
from print_scp.domain.storage import FilmStore, ObjectNotFound, StoreMisconfigured
from print_scp.settings import Settings

from .conftest import PrintApp, print_once

KEY_ID, SECRET = "test-key-id", "test-secret"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a child process; fails (never skips) when it does not come up."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below; moto logs every request
    proc = subprocess.Popen([sys.executable, "-c", "from moto.server import main; main()",
                             "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto S3 server did not start on port {port} (exit {proc.poll()})", pytrace=False)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def admin_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"films-{uuid.uuid4().hex[:12]}"
    admin_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3_settings(endpoint: str, bucket: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "print_store": "s3", "print_s3_bucket": bucket, "print_s3_prefix": "/hospital-a/",
        "print_s3_endpoint_url": endpoint, "print_s3_region": "us-east-1",
        "print_s3_access_key_id": KEY_ID, "print_s3_secret_access_key": SECRET,
    }
    return Settings(**(values | overrides))


async def test_store_read_exists_delete_through_the_interface(test_env: Any, s3_endpoint: str, bucket: str) -> None:
    store: FilmStore = await S3Store.open(s3_settings(s3_endpoint, bucket))
    try:
        key = f"films/2026/11/23/{uuid.uuid4()}.png"
        assert not await store.exists(key)
        with pytest.raises(ObjectNotFound):
            await store.get(key)
        await store.put(key, b"\x89PNG first", "image/png")
        assert await store.exists(key) and await store.get(key) == b"\x89PNG first"
        big = os.urandom(9 * 1024 * 1024)  # a 2048x2048 16-bit film and then some: still one PUT
        await store.put(key, big, "image/png")
        assert await store.get(key) == big
        # Under the prefix (slashes trimmed), with its content type, as another S3 client sees it.
        head = admin_client(s3_endpoint).head_object(Bucket=bucket, Key=f"hospital-a/{key}")
        assert head["ContentType"] == "image/png" and head["ContentLength"] == len(big)
        await store.delete(key)
        assert not await store.exists(key)
        await store.delete(key)  # twice is fine, as in the directory store
        # Concurrent writers of different films do not block each other or the loop.
        keys = [f"spool/{uuid.uuid4()}.dcm" for _ in range(12)]
        await asyncio.gather(*(store.put(k, k.encode(), "application/dicom") for k in keys))
        assert await asyncio.gather(*(store.get(k) for k in keys)) == [k.encode() for k in keys]
    finally:
        assert isinstance(store, S3Store)
        store.close()


async def test_a_write_the_server_did_not_store_intact_is_an_error(test_env: Any, s3_endpoint: str,
                                                                   bucket: str) -> None:
    """The MD5 we send must be what the server stored (its ETag); otherwise the put fails loudly."""
    store = await S3Store.open(s3_settings(s3_endpoint, bucket, print_s3_prefix=""))
    try:
        wrong = base64.b64encode(b"\0" * 16).decode()
        # AWS answers BadDigest; a server that skips the check (moto does) is caught by the ETag.
        with pytest.raises(Exception, match="BadDigest|stored MD5"):
            await asyncio.to_thread(store._put, "films/x.dcm", b"film bytes", "application/dicom", wrong)
    finally:
        store.close()


async def test_misconfigured_store_names_the_setting(test_env: Any, s3_endpoint: str, bucket: str) -> None:
    cases = [
        ({"print_s3_bucket": None}, "IMAGING_PRINT_S3_BUCKET"),
        ({"print_s3_bucket": f"missing-{uuid.uuid4().hex[:8]}"}, "IMAGING_PRINT_S3_BUCKET="),
        ({"print_s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}, "IMAGING_PRINT_S3_ENDPOINT_URL="),
        ({"print_s3_endpoint_url": "not a url"}, "IMAGING_PRINT_S3_ENDPOINT_URL="),
        ({"print_s3_secret_access_key": None}, "IMAGING_PRINT_S3_SECRET_ACCESS_KEY"),
    ]
    for overrides, setting in cases:
        started = time.monotonic()
        with pytest.raises(StoreMisconfigured, match=setting):
            await S3Store.open(s3_settings(s3_endpoint, bucket, **overrides))
        assert time.monotonic() - started < 10, overrides  # a clear answer, not a hang
    with pytest.raises(ValueError, match="print_store"):
        Settings(print_store="s4")


@contextlib.asynccontextmanager
async def s3_print_app(settings: Settings) -> AsyncIterator[PrintApp]:
    app = create_app(settings)
    async with asgi_client(app) as client:
        ctx = app.state.ctx
        yield PrintApp(client, ctx.extras["print"], settings, ctx)


@pytest.fixture
async def isolated(test_env: Any) -> AsyncIterator[dict[str, str]]:
    """A database and namespace of their own: the session's directory-store print app must not pick
    up (and fail) films spooled in S3, nor this app the session's films."""
    suffix = uuid.uuid4().hex[:6]
    database = f"{TEST_DATABASE}_s3_{suffix}"
    url = test_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"
    yield {"database_url": url, "namespace": f"{TEST_NAMESPACE}-s3-{suffix}"}
    conn = await asyncpg.connect(test_env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
    with contextlib.suppress(Exception):
        from imaging_common.events.topology import delete_namespace

        await delete_namespace(test_env["AMQP_URL"], f"{TEST_NAMESPACE}-s3-{suffix}")


async def test_print_service_keeps_films_in_s3_and_serves_them(isolated: dict[str, str], s3_endpoint: str,
                                                               bucket: str) -> None:
    settings = s3_settings(s3_endpoint, bucket, print_port=free_port(), print_host="127.0.0.1",
                           print_store_dir="/nonexistent/never-used", **isolated)
    async with s3_print_app(settings) as app:
        assert isinstance(app.runtime.store, S3Store)
        study = await app.add_study()
        out = await asyncio.to_thread(print_once, app, [tk.to_item(tk.anatomy(128, 21))],
                                      study_uid=study["study_uid"])
        assert out["print"] == 0, out
        [film] = await app.wait_films("film_box_uid = $1", out["box_uid"])
        assert film["match_status"] == "matched" and film["patient_id"] == study["patient_id"]
        # The film, its preview and no leftover spool are in the bucket, under the prefix.
        s3 = admin_client(s3_endpoint)

        async def bucket_without_spool() -> set[str] | None:
            # the renderer removes the spool just after its transaction commits: the row shows first
            listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=bucket, Prefix="hospital-a/")
            keys = {o["Key"] for o in listed.get("Contents", [])}
            return None if [k for k in keys if k.startswith("hospital-a/spool/")] else keys

        keys = await eventually(bucket_without_spool, "no spool left in the bucket", within=15)
        assert {f"hospital-a/{film['png_key']}", f"hospital-a/{film['dicom_key']}"} <= keys
        stored_png = s3.get_object(Bucket=bucket, Key=f"hospital-a/{film['png_key']}")["Body"].read()
        r = await app.client.get(f"/api/print/films/{film['id']}/image.png", headers=app.token("radiologist"))
        assert r.status_code == 200 and r.content == stored_png and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        dcm = await app.client.get(f"/api/print/films/{film['id']}/film.dcm", headers=app.token("radiologist"))
        assert dcm.status_code == 200 and dcm.content[128:132] == b"DICM"
        # An object gone from the bucket is a clean 404 from the API, not a 500.
        s3.delete_object(Bucket=bucket, Key=f"hospital-a/{film['png_key']}")
        r = await app.client.get(f"/api/print/films/{film['id']}/image.png", headers=app.token("radiologist"))
        assert r.status_code == 404


async def test_print_service_refuses_to_start_on_a_missing_bucket(isolated: dict[str, str],
                                                                  s3_endpoint: str) -> None:
    settings = s3_settings(s3_endpoint, f"absent-{uuid.uuid4().hex[:8]}", print_port=free_port(),
                           print_host="127.0.0.1", **isolated)
    port = settings.print_port
    with pytest.raises(StoreMisconfigured, match="IMAGING_PRINT_S3_BUCKET='absent-"):
        async with s3_print_app(settings):
            pass
    with socket.socket() as s:  # nothing was left listening for prints it could not keep
        s.bind(("127.0.0.1", port))
