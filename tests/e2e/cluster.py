"""The platform as separate processes, one per service (`python -m <package>`), as on Kubernetes.

Fault tests kill and restart one service while the others keep running; the day's-load bench reads
each process's CPU time and memory. The cluster has its own database, namespace and data folder, so
services started in-process by other tests of the same session never share its outbox or queues.

An HTTP client routes `/api/<prefix>/…` to the owning process (what the gateway does in production):
`httpx.AsyncClient(transport=cluster.transport(), base_url="http://platform")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from imaging_common.config import CommonSettings
from imaging_common.fhir.capability import installed_declarations
from imaging_testing import free_port
from imaging_testing.helpers import until_ready

from e2e.journey import Site, clinician_system, spy_on_bus

# service name -> (python package, HTTP prefix)
SERVICES: dict[str, tuple[str, str]] = {
    "registration": ("registration", "registration"),
    "scheduling": ("scheduling", "scheduling"),
    "queue-calling": ("queue_calling", "queue"),
    "worklist": ("worklist", "worklist"),
    "print-scp": ("print_scp", "print"),
    "reporting": ("reporting", "reporting"),
    "critical-values": ("critical_values", "critical-values"),
    "patient-portal": ("patient_portal", "patient"),
    "dashboard": ("dashboard", "dashboard"),
}
PREFIX_OWNER = {prefix: name for name, (_, prefix) in SERVICES.items()}
# FHIR resource type -> service name, for the platform's one base /fhir/R4 (the gateway's FHIR routes);
# /fhir/R4/metadata goes to the first service that serves FHIR, as the chart's fhirBaseService.
_BY_PACKAGE = {package: name for name, (package, _) in SERVICES.items()}
FHIR_OWNER = {r.type: _BY_PACKAGE[svc] for svc, resources in installed_declarations() for r in resources}
FHIR_BASE_OWNER = _BY_PACKAGE[installed_declarations()[0][0]]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class ServiceProcess:
    name: str
    package: str
    prefix: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)  # a replica's own listening ports

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the process so far (Linux /proc)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_bytes(self) -> int:
        assert self.proc is not None
        return int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1]) * PAGE


class PrefixRouter(httpx.AsyncBaseTransport):
    """Sends each request to the process that serves its `/api/<prefix>` or `/ui/<prefix>`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        if parts[1:3] == ["fhir", "R4"]:
            owner = FHIR_OWNER.get(parts[3] if len(parts) > 3 else "", FHIR_BASE_OWNER)
        else:
            owner = PREFIX_OWNER.get(parts[2] if len(parts) > 2 else "")
        if owner is None:
            return httpx.Response(404, json={"detail": f"no service serves {request.url.path}"})
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.cluster.services[owner].port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Cluster:
    env: dict[str, str]
    folder: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    direct_database_url: str = ""  # the cluster's database on the server itself (services may go through a proxy)

    @classmethod
    def prepare(cls, test_env: dict[str, str], folder: Path, extra_env: dict[str, str] | None = None, *,
                database_port: int | None = None) -> Cluster:
        """Ports, a key pair shared by all services, and a database and namespace of the cluster's own.

        `database_port`: the services reach PostgreSQL on 127.0.0.1 at this port (a TcpProxy a fault
        test cuts); creating, dropping and inspecting the database go to the server directly.
        """
        tag = uuid.uuid4().hex[:8]
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = folder / "jwt-private.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        db_url = urlunsplit(urlsplit(test_env["DATABASE_URL"])._replace(path=f"/imaging_cluster_{tag}"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_ADMIN_")}
        env.update({
            "DATABASE_URL": db_url,
            "IMAGING_NAMESPACE": f"{test_env['IMAGING_NAMESPACE']}-c{tag}",
            "IMAGING_DATA_DIR": str(folder / "data"),
            "IMAGING_JWT_PRIVATE_KEY_FILE": str(key_file),
            "IMAGING_LOG_JSON": "true",
            "IMAGING_PRINT_PORT": str(free_port()),
            "IMAGING_WORKLIST_PORT": str(free_port()),
            "IMAGING_MLLP_PORT": str(free_port()),
            "IMAGING_CRITICAL_MLLP_PORT": str(free_port()),
            "IMAGING_OUTBOX_POLL_INTERVAL": "0.5",
            "IMAGING_EVENT_RETRY_DELAY_MS": "1000",
            "IMAGING_AMQP_RECONNECT_INTERVAL": "0.5",
            # nine services (and replicas) as processes of their own, beside the rest of the suite: small pools
            # keep the whole run under PostgreSQL's 100 connections (the security sandboxes run on 2 as well)
            "IMAGING_DB_POOL_MAX": "2",
        })
        direct_url = db_url
        if database_port is not None:
            db_url = urlunsplit(urlsplit(db_url)._replace(netloc=_with_host_port(db_url, "127.0.0.1", database_port)))
            env["DATABASE_URL"] = db_url
        env.update(extra_env or {})
        cluster = cls(env, folder, direct_database_url=direct_url)
        for name, (package, prefix) in SERVICES.items():
            cluster.services[name] = ServiceProcess(name, package, prefix, free_port(), folder / f"{name}.log")
        return cluster

    @property
    def settings(self) -> CommonSettings:
        """Settings as the services see them (token issuing in tests uses the same key and namespace)."""
        return CommonSettings(_env_file=None, database_url=self.env["DATABASE_URL"],  # type: ignore[call-arg]
                              namespace=self.env["IMAGING_NAMESPACE"], data_dir=Path(self.env["IMAGING_DATA_DIR"]),
                              jwt_private_key_file=Path(self.env["IMAGING_JWT_PRIVATE_KEY_FILE"]))

    def port(self, what: str) -> int:
        return int(self.env[what])

    def transport(self) -> PrefixRouter:
        return PrefixRouter(self)

    def url(self, service: str) -> str:
        return self.services[service].url

    async def create_database(self) -> None:
        await self._on_server(f'CREATE DATABASE "{self.db_name}"')

    async def drop_database(self) -> None:
        await self._on_server(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    async def _on_server(self, sql: str) -> None:
        conn = await asyncpg.connect(urlunsplit(urlsplit(self.direct_database_url)._replace(path="/postgres")))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    @property
    def db_name(self) -> str:
        return urlsplit(self.env["DATABASE_URL"]).path.lstrip("/")

    def spawn(self, name: str) -> None:
        svc = self.services[name]
        assert svc.proc is None or svc.proc.poll() is not None, f"{name} is already running"
        env = dict(self.env, **svc.env, IMAGING_HTTP_PORT=str(svc.port), IMAGING_HTTP_HOST="127.0.0.1")
        svc.starts += 1
        with open(svc.log, "ab") as out:
            out.write(f"\n----- start {svc.starts} -----\n".encode())
            svc.proc = subprocess.Popen([sys.executable, "-m", svc.package], env=env, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, name: str, within: float = 90.0) -> None:
        svc = self.services[name]
        assert svc.proc is not None
        await until_ready(f"{svc.url}/api/{svc.prefix}/readyz", svc.proc, within=within,
                          output=lambda: self.tail(name))

    async def start(self, *names: str) -> None:
        """Start services (all when none named); migrations take turns under their advisory lock."""
        names = names or tuple(self.services)
        for name in names:
            self.spawn(name)
        await asyncio.gather(*(self.wait_ready(name) for name in names))

    def add_replica(self, name: str) -> str:
        """A second process of a service, consuming the same queue (as a second pod would); it gets DICOM
        and MLLP ports of its own. Returns its name, for start()/kill()."""
        base = self.services[name]
        replica = f"{name}#{sum(1 for n in self.services if n.split('#')[0] == name) + 1}"
        ports = ("IMAGING_PRINT_PORT", "IMAGING_WORKLIST_PORT", "IMAGING_MLLP_PORT", "IMAGING_CRITICAL_MLLP_PORT")
        self.services[replica] = ServiceProcess(replica, base.package, base.prefix, free_port(),
                                                self.folder / f"{replica}.log",
                                                env={p: str(free_port()) for p in ports})
        return replica

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hooks, no flushing — what a crashed pod or an OOM kill looks like."""
        svc = self.services[name]
        assert svc.proc is not None and svc.proc.poll() is None, f"{name} is not running"
        os.killpg(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait(10)

    async def restart(self, name: str) -> None:
        self.kill(name)
        await self.start(name)

    async def stop(self) -> None:
        for svc in self.services.values():
            if svc.proc is not None and svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGTERM)
        for svc in self.services.values():
            if svc.proc is not None:
                try:
                    await asyncio.to_thread(svc.proc.wait, 15)
                except subprocess.TimeoutExpired:
                    os.killpg(svc.proc.pid, signal.SIGKILL)

    def tail(self, name: str, chars: int = 4000) -> str:
        log = self.services[name].log
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"

    def usage(self) -> dict[str, dict[str, Any]]:
        return {name: {"cpu_s": svc.cpu_seconds(), "rss": svc.rss_bytes()} for name, svc in self.services.items()
                if svc.proc is not None and svc.proc.poll() is None}


def _with_host_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"


@contextlib.asynccontextmanager
async def running_cluster(test_env: dict[str, str], folder: Path, extra_env: dict[str, str] | None = None, *,
                          database_port: int | None = None) -> AsyncIterator[Cluster]:
    """All seven services started on a database of their own; stopped and the database dropped after."""
    cluster = Cluster.prepare(test_env, folder, extra_env, database_port=database_port)
    await cluster.create_database()
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
        await cluster.drop_database()


@contextlib.asynccontextmanager
async def cluster_site(test_env: dict[str, str], folder: Path, extra_env: dict[str, str] | None = None, *,
                       database_port: int | None = None) -> AsyncIterator[tuple[Cluster, Site]]:
    """A cluster with a clinician-system stub as reporting's receivers, a bus spy, and a routed API client."""
    tag = uuid.uuid4().hex[:6]
    async with clinician_system() as clinician:
        env = {
            "IMAGING_REPORTING_RECEIVERS": json.dumps(clinician.report_receivers(tag)),
            "IMAGING_REPORTING_DELIVERY_POLL": "0.2", "IMAGING_REPORTING_DELIVERY_RETRY_BASE": "0.1",
            "IMAGING_REPORTING_DELIVERY_RETRY_MAX": "0.5",
            "IMAGING_CRITICAL_POLL_SECONDS": "0.1", "IMAGING_CRITICAL_RETRY_SECONDS": "0.2",
            **(extra_env or {}),
        }
        async with running_cluster(test_env, folder, env, database_port=database_port) as cluster, \
                spy_on_bus(cluster.settings) as log, \
                httpx.AsyncClient(transport=cluster.transport(), base_url="http://platform", timeout=30) as api:
            site = Site(api=api, settings=cluster.settings, worklist_port=cluster.port("IMAGING_WORKLIST_PORT"),
                        print_port=cluster.port("IMAGING_PRINT_PORT"), clinician=clinician, log=log,
                        ui_url=lambda prefix: cluster.url(PREFIX_OWNER[prefix]))
            yield cluster, site
