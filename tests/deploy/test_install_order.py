"""A fresh install in the order Kubernetes starts it (issue 22, item 1), with real processes.

Kubernetes creates every object of a release at once: the migration Job and the services' pods start
while the in-cluster PostgreSQL and RabbitMQ are still starting. Here the database and the broker sit
behind TCP proxies (imaging_testing.proxy) that are opened late; the machine's own servers keep serving
every other test. A container that exits is started again, as the kubelet does (restartPolicy Always,
with a short back-off here).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest
from imaging_common.events.topology import ServiceQueues, delete_namespace, exchange_name
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPClient
from imaging_testing import free_port, helpers
from imaging_testing.helpers import database_url, execute
from imaging_testing.proxy import TcpProxy


class LateServer:
    """A TcpProxy to a real server, run on a loop of its own so the test can open it when it likes."""

    def __init__(self, url: str, default_port: int) -> None:
        parts = urlsplit(url)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self.url = parts._replace(netloc=f"{userinfo}127.0.0.1:{self.proxy.port}").geturl()

    def open(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


class Container:
    """One container under a kubelet-like supervisor: restarted whenever it exits (unless it is a Job
    that succeeded), output kept for the failure message."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, *, job: bool = False) -> None:
        self.name, self.args, self.env, self.cwd, self.job = name, args, env, cwd, job
        self.starts = 0
        self.exits: list[int] = []
        self.log: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._current: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.starts += 1
            self.process = subprocess.Popen([sys.executable, "-m", *self.args], cwd=self.cwd, env=self.env, text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._current = []
            assert self.process.stdout is not None
            for line in self.process.stdout:  # read as printed: the test looks at a running container's log
                self._current.append(line)
            self.process.wait()
            self.log.append("".join(self._current))
            self._current = []
            self.exits.append(self.process.returncode)
            if self.job and self.process.returncode == 0:
                return
            self._stop.wait(1.0)  # the kubelet's back-off, shortened

    @property
    def succeeded(self) -> bool:
        return self.job and self.exits[-1:] == [0]

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
        self._thread.join(30)

    def output(self) -> str:
        return f"--- {self.name}: starts {self.starts}, exits {self.exits}\n" + self.all_output()[-4000:]

    def all_output(self) -> str:
        """Every run's output, the running one's so far included."""
        return "".join(self.log) + "".join(self._current)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_until(condition, deadline: float, what: str, *containers: Container) -> None:  # type: ignore[no-untyped-def]
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} not reached\n" + "\n".join(c.output() for c in containers))


@pytest.fixture
def empty_database(test_env: dict[str, str]) -> Iterator[str]:
    with helpers.empty_database(test_env["DATABASE_URL"], "order") as name:
        yield name


def base_env(test_env: dict[str, str], data: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(data), "IMAGING_DATA_DIR": str(data),
            "IMAGING_NAMESPACE": test_env["IMAGING_NAMESPACE"] + "_order", "IMAGING_LOG_JSON": "false",
            "IMAGING_ENV": "development", "IMAGING_OUTBOX_POLL_INTERVAL": "0.5"}


def test_migrate_needs_postgresql_only_and_waits_for_it(
    test_env: dict[str, str], empty_database: str, tmp_path: Path
) -> None:
    """`allinone migrate` with RabbitMQ and Redis nowhere, and PostgreSQL opened 4 s after it started:
    it waits, then applies every migration. With no database at all it gives up at its deadline."""
    database = LateServer(database_url(test_env["DATABASE_URL"], empty_database), 5432)
    nowhere = free_port()
    env = {**base_env(test_env, tmp_path), "DATABASE_URL": database.url,
           "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{nowhere}/", "REDIS_URL": f"redis://127.0.0.1:{nowhere}/0"}
    try:
        started = time.monotonic()
        gives_up = subprocess.run([sys.executable, "-m", "imaging_common.allinone", "migrate"],
                                  env={**env, "IMAGING_MIGRATE_WAIT_SECONDS": "3"}, capture_output=True, text=True,
                                  timeout=60, check=False)
        assert gives_up.returncode == 2, gives_up.stdout + gives_up.stderr
        assert "cannot migrate: postgresql" in gives_up.stderr
        assert 3 <= time.monotonic() - started < 20

        job = subprocess.Popen([sys.executable, "-m", "imaging_common.allinone", "migrate"],
                               env={**env, "IMAGING_MIGRATE_WAIT_SECONDS": "120"}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(4)
        assert job.poll() is None, job.communicate()[0]
        database.open()
        out, _ = job.communicate(timeout=240)
        assert job.returncode == 0, out
        assert "waiting for the database" in out
        assert re.search(r"migrations applied: [1-9]", out), out
        assert "rabbitmq" not in out.lower() and "redis" not in out.lower(), out
    finally:
        database.close()


def test_ddl_role_migrates_and_the_services_role_gets_dml_only(
    test_env: dict[str, str], empty_database: str, tmp_path: Path
) -> None:
    """The chart's migrations.database: the Job migrates as a DDL role and grants the services' role;
    a service then starts as that role (its own start-time migration finds nothing to do) and is
    ready, and that role cannot create or drop anything."""
    suffix = uuid.uuid4().hex[:8]
    ddl, app = f"imaging_ddl_{suffix}", f"imaging_app_{suffix}"
    admin_url = database_url(test_env["DATABASE_URL"], empty_database)

    def login(role: str) -> str:
        parts = urlsplit(admin_url)
        return parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}").geturl()

    asyncio.run(execute(admin_url, f"CREATE ROLE {ddl} LOGIN", f"CREATE ROLE {app} LOGIN",
                        f'GRANT CREATE, CONNECT ON DATABASE "{empty_database}" TO {ddl}',
                        f'REVOKE CREATE ON DATABASE "{empty_database}" FROM PUBLIC',
                        "REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    service: subprocess.Popen[str] | None = None
    try:
        env = {**base_env(test_env, tmp_path), "AMQP_URL": test_env["AMQP_URL"], "REDIS_URL": test_env["REDIS_URL"]}
        migrate = subprocess.run(
            [sys.executable, "-m", "imaging_common.allinone", "migrate"],
            env={**env, "DATABASE_URL": login(ddl), "IMAGING_APP_DB_ROLE": app,
                 # the audit schema's owner is an administrator's business (README, Audit)
                 "IMAGING_AUDIT_OWNER_DATABASE_URL": admin_url},
            capture_output=True, text=True, timeout=300, check=False)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr

        port = free_port()
        service = subprocess.Popen(
            [sys.executable, "-m", "worklist"], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**env, "DATABASE_URL": login(app), "IMAGING_HTTP_PORT": str(port),
                 "IMAGING_WORKLIST_PORT": str(free_port())})
        deadline = time.monotonic() + 120
        while http_status(f"http://127.0.0.1:{port}/api/worklist/readyz") != 200:
            assert service.poll() is None and time.monotonic() < deadline, service.communicate(timeout=30)[0]
            time.sleep(0.5)

        async def as_app() -> None:
            conn = await asyncpg.connect(login(app))
            try:
                await conn.fetch("SELECT * FROM worklist.outbox LIMIT 1")  # DML: yes
                for ddl_statement in ("CREATE TABLE worklist.x (a int)", "DROP TABLE worklist.outbox",
                                      "TRUNCATE worklist.outbox", "CREATE SCHEMA y"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(ddl_statement)
            finally:
                await conn.close()

        asyncio.run(as_app())
    finally:
        if service is not None and service.poll() is None:
            service.terminate()
            service.communicate(timeout=30)
        asyncio.run(execute(admin_url, f"DROP OWNED BY {app}", f"DROP OWNED BY {ddl} CASCADE"))
        asyncio.run(execute(admin_url, f"DROP ROLE {app}", f"DROP ROLE {ddl}"))


ADT = ("MSH|^~\\&|HIS|HOSP|RIS|IMG|20240601083000||ADT^A04^ADT_A01|{id}|P|2.5||||||UNICODE UTF-8\r"
       "EVN|A04|20240601083000\r"
       "PID|1||{pid}^^^HIS^PI||张^三||19800101|M\r"
       "PV1|1|O\r")


def test_processes_started_in_kubernetes_order_converge(
    test_env: dict[str, str], empty_database: str, tmp_path: Path
) -> None:
    """All at once, as `helm install` creates them: the migration Job and registration's container start
    with neither PostgreSQL, RabbitMQ nor Redis there. The Job waits; registration exits naming
    PostgreSQL (readiness and migrations need it) and is restarted. PostgreSQL appears: the Job migrates,
    registration starts without the broker and Redis and stays up: ready but degraded, the HIS feed
    accepted over MLLP, its events kept in the outbox, logins answered 503. RabbitMQ appears: the bus
    connects by itself (a log line per attempt before), declares the queues, its consumer is bound and
    the outbox drains, the events published while the broker was absent arriving. Redis appears:
    ready, logins checked again. Never another restart after PostgreSQL came."""
    database = LateServer(database_url(test_env["DATABASE_URL"], empty_database), 5432)
    broker = LateServer(test_env["AMQP_URL"], 5672)
    cache = LateServer(test_env["REDIS_URL"], 6379)
    env = {**base_env(test_env, tmp_path), "DATABASE_URL": database.url, "AMQP_URL": broker.url,
           "REDIS_URL": cache.url, "IMAGING_AMQP_RECONNECT_INTERVAL": "0.5"}
    namespace = env["IMAGING_NAMESPACE"]
    http, mllp = free_port(), free_port()
    containers: list[Container] = []
    # What reaches the exchange, seen from the real broker (not through the proxy registration uses).
    watcher = asyncio.run(ExchangeWatcher.open(test_env["AMQP_URL"], namespace))
    try:
        job = Container("migrate", ["imaging_common.allinone", "migrate"],
                        {**env, "IMAGING_MIGRATE_WAIT_SECONDS": "300"}, tmp_path, job=True)
        registration = Container("registration", ["registration"],
                                 {**env, "IMAGING_HTTP_PORT": str(http), "IMAGING_MLLP_PORT": str(mllp)}, tmp_path)
        containers = [job, registration]
        base = f"http://127.0.0.1:{http}/api/registration"
        wait_until(lambda: registration.starts >= 2, time.monotonic() + 90, "registration restarted", registration)
        assert job.exits == [], job.output()  # waiting, not failing
        assert http_status(f"{base}/readyz") is None, registration.output()
        assert "cannot start: postgresql" in "".join(registration.log)

        database.open()
        wait_until(lambda: job.succeeded, time.monotonic() + 240, "migration Job completed", job)
        assert re.search(r"migrations applied: [1-9]", job.log[-1]), job.output()
        wait_until(lambda: http_status(f"{base}/readyz") == 200, time.monotonic() + 120,
                   "registration ready without the broker and Redis", registration)
        restarts = registration.starts
        ready = http_json(f"{base}/readyz")
        assert ready["status"] == "degraded" and sorted(ready["degraded"]) == ["rabbitmq", "redis"], ready

        # The HIS feed is accepted; its events wait in the outbox.
        events = [his_sends(mllp) for _ in range(2)]
        assert events == ["AA", "AA"]
        total, waiting = asyncio.run(outbox(test_env["DATABASE_URL"], empty_database))
        assert total >= 2 and waiting == total, (total, waiting)
        # Logins need Redis (throttling, sessions): a clear 503 problem, not a 500 or a hang.
        status, problem = http_post(f"{base}/auth/login", {"username": "nobody", "password": "x" * 12,
                                                           "totp": "000000"})
        assert status == 503 and "Redis" in problem.get("detail", ""), (status, problem)

        time.sleep(2)  # the bus keeps trying: one line per attempt, the container never restarted
        assert registration.starts == restarts, registration.output()
        attempts = re.findall(r"RabbitMQ at 127\.0\.0\.1:\d+ not reachable \(attempt (\d+)", registration.all_output())
        assert len(attempts) >= 3 and attempts == sorted(attempts, key=int), registration.output()

        broker.open()
        wait_until(lambda: asyncio.run(outbox(test_env["DATABASE_URL"], empty_database))[1] == 0,
                   time.monotonic() + 90, "the outbox drained once the broker came", registration)
        published = asyncio.run(outbox_ids(test_env["DATABASE_URL"], empty_database))
        arrived = asyncio.run(watcher.received(len(published), within=30))
        assert set(published) <= set(arrived), (published, arrived)
        consumers = asyncio.run(consumer_count(test_env["AMQP_URL"], ServiceQueues(namespace, "registration").main))
        assert consumers == 1, "registration's consumer is bound to its quorum queue"
        assert "event bus registration connected to RabbitMQ" in registration.all_output()
        assert http_json(f"{base}/readyz")["degraded"] == ["redis"]

        cache.open()
        wait_until(lambda: http_json(f"{base}/readyz").get("status") == "ready", time.monotonic() + 30,
                   "registration ready with everything", registration)
        status, problem = http_post(f"{base}/auth/login", {"username": "nobody", "password": "x" * 12,
                                                           "totp": "000000"})
        assert status == 401, (status, problem)  # checked again: an unknown account
        assert registration.starts == restarts, registration.output()
    finally:
        for container in containers:
            container.stop()
        asyncio.run(watcher.close())
        database.close()
        broker.close()
        cache.close()
        asyncio.run(delete_namespace(test_env["AMQP_URL"], namespace))


def his_sends(port: int) -> str:
    async def send() -> str:
        message = ADT.format(id=uuid.uuid4().hex[:12], pid=f"P{uuid.uuid4().hex[:8]}").encode()
        async with MLLPClient("127.0.0.1", port, timeout=20) as client:
            ack = Message.parse((await client.send(message)).decode())
        return str(ack.field("MSA", 1))

    return asyncio.run(send())


async def outbox(url: str, database: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url(url, database))
    try:
        row = await conn.fetchrow("SELECT count(*) AS total, count(*) FILTER (WHERE published_at IS NULL) "
                                  "AS waiting FROM registration.outbox")
        return int(row["total"]), int(row["waiting"])
    finally:
        await conn.close()


async def outbox_ids(url: str, database: str) -> list[str]:
    conn = await asyncpg.connect(database_url(url, database))
    try:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM registration.outbox ORDER BY seq")]
    finally:
        await conn.close()


async def consumer_count(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    finally:
        await connection.close()


def http_json(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        return json.loads(error.read())  # type: ignore[no-any-return]


def http_post(url: str, body: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class ExchangeWatcher:
    """A queue of the test's own bound to every routing key of the namespace's exchange, on the real broker.

    Each call opens its own connection: the test runs each step in a loop of its own (asyncio.run)."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url, self.namespace = amqp_url, namespace
        self.queue = f"{namespace}.test-watcher"

    @classmethod
    async def open(cls, amqp_url: str, namespace: str) -> ExchangeWatcher:
        watcher = cls(amqp_url, namespace)
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(exchange_name(namespace), aio_pika.ExchangeType.TOPIC,
                                                      durable=True)
            queue = await channel.declare_queue(watcher.queue, durable=False, auto_delete=False)
            await queue.bind(exchange, routing_key="#")
        finally:
            await connection.close()
        return watcher

    async def received(self, count: int, within: float) -> list[str]:
        ids: list[str] = []
        deadline = time.monotonic() + within
        connection = await aio_pika.connect(self.amqp_url)
        try:
            queue = await (await connection.channel()).declare_queue(self.queue, passive=True)
            while len(ids) < count and time.monotonic() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.2)
                else:
                    ids.append(str(message.message_id))
        finally:
            await connection.close()
        return ids

    async def close(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        try:
            await (await connection.channel()).queue_delete(self.queue)
        finally:
            await connection.close()
