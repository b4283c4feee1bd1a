"""Tools of the fault tests: a proxy that cuts mid-transfer, the broker stopped and started, and a
count of everything one patient's journey left behind (to tell "nothing lost, nothing done twice").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from imaging_testing.proxy import TcpProxy

from e2e.journey import Journey

# ---- a connection cut in the middle --------------------------------------------------------------


class CuttingProxy(TcpProxy):
    """A TcpProxy that cuts every connection once armed limits are reached, then accepts again.

    `to_server` counts bytes sent by the client (a cut lands inside a large N-SET), `to_client_reads`
    counts reads from the server (the second read after A-ASSOCIATE-AC is the first C-FIND response).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.to_server: int | None = None
        self.to_client_reads: int | None = None
        self.moved = {"to_server": 0, "to_client": 0}
        self.reads = {"to_server": 0, "to_client": 0}
        self.tripped = asyncio.Event()
        self._cutter: asyncio.Task[None] | None = None

    def arm(self, *, to_server: int | None = None, to_client_reads: int | None = None) -> None:
        self.to_server, self.to_client_reads = to_server, to_client_reads
        self.moved = {"to_server": 0, "to_client": 0}
        self.reads = {"to_server": 0, "to_client": 0}
        self.tripped = asyncio.Event()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:  # type: ignore[override]
        peer = writer.get_extra_info("peername")
        direction = "to_server" if peer and peer[1] == self.target_port else "to_client"
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                self.moved[direction] += len(data)
                self.reads[direction] += 1
                if not self.tripped.is_set() and self._over_limit():
                    self.tripped.set()  # this chunk is never forwarded
                    self._cutter = asyncio.create_task(self._cut_then_listen())
                    return
                writer.write(data)
                await writer.drain()

    def _over_limit(self) -> bool:
        return ((self.to_server is not None and self.moved["to_server"] >= self.to_server)
                or (self.to_client_reads is not None and self.reads["to_client"] >= self.to_client_reads))

    async def _cut_then_listen(self) -> None:
        self.to_server = self.to_client_reads = None  # once: the retry goes through
        await self.cut()
        await self.restore()


# ---- the broker --------------------------------------------------------------------------------


async def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    proc = await asyncio.create_subprocess_exec("rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode(errors='replace')}"


@contextlib.asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """RabbitMQ's application stopped for the block; always started again (the rest of `make test` needs it)."""
    await rabbitmqctl("stop_app")
    try:
        yield
    finally:
        await rabbitmqctl("start_app")
        await rabbitmqctl("await_startup")


# ---- what a journey left behind ----------------------------------------------------------------


@dataclass
class Effects:
    """Counts of one patient's effects: rows per table, distinct events per type, messages at the HIS."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # facts that are not counts (e.g. duplicates seen)

    def differences(self, reference: Effects, *, may_differ: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        keys = sorted(set(self.counts) | set(reference.counts))
        return [f"{k}: {self.counts.get(k, 0)} (fault-free journey: {reference.counts.get(k, 0)})" for k in keys
                if k not in may_differ and self.counts.get(k, 0) != reference.counts.get(k, 0)]


async def _tables_with(conn: asyncpg.Connection, column: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = $1 "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2", column)
    return [(r["table_schema"], r["table_name"]) for r in rows]


async def effects_of(j: Journey, database_url: str) -> Effects:
    """Everything the platform recorded about this patient, straight from each service's schema."""
    fx = Effects()
    conn = await asyncpg.connect(database_url)
    try:
        for column, value in (("accession_number", j.accession), ("report_id", j.report_id),
                              ("critical_id", j.critical_id)):
            if not value:
                continue
            for schema, table in await _tables_with(conn, column):
                n = await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" = $1', value)
                fx.counts[f"row {schema}.{table} ({column})"] = n
        # Every event the services put in their outboxes about this patient (a second order.created
        # with a new id would be work done twice even if a consumer's inbox hid it).
        keys = [k for k in j.keys() if k]
        for schema in {s for s, table in await _tables_with(conn, "envelope") if table == "outbox"}:
            rows = await conn.fetch(f'SELECT type, count(DISTINCT event_id) AS n FROM "{schema}".outbox '
                                    "WHERE envelope::text LIKE ANY($1::text[]) GROUP BY type",
                                    [f"%{k}%" for k in keys])
            for r in rows:
                fx.counts[f"outbox {schema} {r['type']}"] = r["n"]
    finally:
        await conn.close()
    for event_type, n in j.event_counts().items():
        fx.counts[f"bus {event_type}"] = n
    orus = j.report_orus()
    fx.counts["HIS report ORU control ids"] = len({m.control_id for m in orus})
    fx.counts["HIS critical ORU control ids"] = len({m.control_id for m in j.critical_orus()})
    fx.counts["EMR report bundles (distinct)"] = len({_without_id(b) for b in j.report_bundles()})
    fx.counts["EMR communications (distinct)"] = len({_without_id(c) for c in j.communications()})
    resent = len(orus) - len({m.control_id for m in orus})
    if resent:
        fx.notes.append(f"{resent} report ORU re-sent with the same MSH-10")
    return fx


def _without_id(resource: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in resource.items() if k != "id"}, sort_keys=True, ensure_ascii=False)


# ---- what was checked --------------------------------------------------------------------------


@dataclass
class Checks:
    """The per-fault table printed at the end (and carried in assertion messages)."""

    fault: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, expected, seen)
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str, expected: object, seen: object) -> None:
        self.rows.append((what, str(expected), str(seen)))

    def check(self, what: str, expected: object, seen: object) -> None:
        self.note(what, expected, seen)
        assert seen == expected, f"{what}: expected {expected}, saw {seen}\n{self.table()}"

    def table(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [10])
        lines = [f"== fault: {self.fault} ({time.monotonic() - self.started:.1f} s)"]
        lines += [f"   {what:<{width}}  expected {exp:<12} seen {seen}" for what, exp, seen in self.rows]
        return "\n".join(lines)
