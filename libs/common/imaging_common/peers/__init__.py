"""Known peers of the protocol ports (issue 18 item 1): who may open a DICOM association or an MLLP
connection, and what happens to anyone else.

Where it lives: the service that owns a port holds its registry, table `known_peer` in its own
schema (`ServiceSpec.library_migrations={"peers": peers.MIGRATIONS}`), managed through
`/api/<prefix>/admin/peers` (`peers.api.peers_router()`, roles admin and it-ops, audited). A peer:
- a modality or printer SCU (`kind` modality / printer): its calling AE title, the addresses it
  connects from (IP addresses or CIDR networks), optionally the sha256 of the certificate it
  presents over TLS (then it must come over TLS, with that certificate);
- an HL7 system (`kind` his / clinician-system): its MSH-3 (and MSH-4, NULL = any), addresses,
  optionally a certificate fingerprint.

Checks (pure, on an in-memory snapshot refreshed every IMAGING_PEERS_REFRESH_SECONDS and at once
after a change through the API in this process; safe from pynetdicom's threads):
- `check_dicom(calling_ae, host, fingerprint)`: the AE title is registered, this address is one of
  its addresses, and its certificate matches when one is registered;
- `check_connection(host, fingerprint)`: some HL7 peer is registered at this address;
- `check_sender(decision, msh3, msh4)`: on such a connection, a message's MSH-3/MSH-4 is one of the
  systems registered at that address (so one system cannot speak for another).

Per port, `mode` (CommonSettings.peer_mode): "enforce" refuses an unknown peer, "audit-only" lets
it in, "off" checks nothing. Either of the first two audits it (`PeerRegistry.audit`, action
"connect", entity "peer", outcome failure when refused), at most once a minute per port, peer and
reason so that a flood of refused connections cannot flood the audit log (each one is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from imaging_common import audit

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
DICOM_KINDS = ("modality", "printer")
HL7_KINDS = ("his", "clinician-system")
KINDS = DICOM_KINDS + HL7_KINDS
ENFORCE, AUDIT_ONLY, OFF = "enforce", "audit-only", "off"
AUDIT_EVERY = 60.0  # seconds: one audit row per (port, peer, reason) at most this often

__all__ = [
    "AUDIT_ONLY", "DICOM_KINDS", "ENFORCE", "HL7_KINDS", "KINDS", "MIGRATIONS", "OFF", "Decision", "Peer",
    "PeerRegistry", "address_matches", "normalize_address", "registry_listener",
]


def normalize_address(value: str) -> str:
    """An IP address or CIDR network in canonical form; ValueError otherwise."""
    text = value.strip()
    if "/" in text:
        return str(ipaddress.ip_network(text, strict=False))
    return str(ipaddress.ip_address(text))


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return ip


def address_matches(addresses: Iterable[str], host: str | None) -> bool:
    ip = _ip(host)
    if ip is None:
        return False
    for allowed in addresses:
        try:
            if "/" in allowed:
                if ip in ipaddress.ip_network(allowed, strict=False):
                    return True
            elif ip == _ip(allowed):
                return True
        except ValueError:
            continue
    return False


@dataclass(frozen=True)
class Peer:
    peer_id: str
    kind: str
    name: str
    ae_title: str | None
    hl7_application: str | None
    hl7_facility: str | None
    addresses: tuple[str, ...]
    cert_sha256: str | None
    active: bool = True

    @classmethod
    def from_row(cls, row: Any) -> Peer:
        return cls(row["peer_id"], row["kind"], row["name"], row["ae_title"], row["hl7_application"],
                   row["hl7_facility"], tuple(row["addresses"]), row["cert_sha256"], row["active"])

    def public(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "kind": self.kind, "name": self.name, "ae_title": self.ae_title,
                "hl7_application": self.hl7_application, "hl7_facility": self.hl7_facility,
                "addresses": list(self.addresses), "cert_sha256": self.cert_sha256, "active": self.active}


@dataclass(frozen=True)
class Decision:
    """What a port does with a peer: `admitted` (go on) and, when it is not `known`, why not."""

    mode: str
    admitted: bool
    known: bool
    peers: tuple[Peer, ...] = ()  # the registered peers this one is (at least one when known)
    reason: str | None = None  # why it is not known, in words for logs, audit and refusals
    host: str | None = None
    fingerprint: str | None = None

    @property
    def peer_id(self) -> str | None:
        return self.peers[0].peer_id if self.peers else None


def _refused(mode: str, reason: str, host: str | None, fingerprint: str | None) -> Decision:
    """Not a known peer: refused when enforcing, let in (to be audited) otherwise."""
    return Decision(mode, mode != ENFORCE, False, reason=reason, host=host, fingerprint=fingerprint)


def _decide(mode: str, placed: list[Peer], host: str | None, fingerprint: str | None, *,
            unplaced: str, uncertified: str) -> Decision:
    """Known when a peer is registered at `host` (`placed`) and presented its registered certificate, if it
    has one; otherwise why not (`unplaced`, `uncertified`). Checking off: everyone in, no one known."""
    if mode == OFF:
        return Decision(mode, True, False, host=host, fingerprint=fingerprint)
    certified = [p for p in placed if p.cert_sha256 is None or p.cert_sha256 == fingerprint]
    if certified:
        return Decision(mode, True, True, tuple(certified), host=host, fingerprint=fingerprint)
    return _refused(mode, uncertified if placed else unplaced, host, fingerprint)


@dataclass
class PeerRegistry:
    """The known peers of one service (its `known_peer` table), as a snapshot checks read without I/O."""

    pool: asyncpg.Pool
    service: str
    refresh_seconds: float = 5.0
    peers: tuple[Peer, ...] = ()
    loop: asyncio.AbstractEventLoop | None = None
    _audited: dict[tuple[Any, ...], float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    # -- snapshot ------------------------------------------------------------------------------

    async def refresh(self) -> None:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM known_peer WHERE active ORDER BY peer_id")
        self.peers = tuple(Peer.from_row(r) for r in rows)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever(), name=f"peers-refresh-{self.service}")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # keep the last snapshot; the database may be back next time
                log.warning("known peers of %s not refreshed: %s", self.service, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        for task in list(self._pending):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)

    # -- checks --------------------------------------------------------------------------------

    def check_dicom(self, calling_ae: str, host: str | None, fingerprint: str | None = None, *,
                    mode: str) -> Decision:
        """May `calling_ae` open an association from `host` (presenting a certificate `fingerprint`)?"""
        ae = (calling_ae or "").strip()
        named = [p for p in self.peers if p.kind in DICOM_KINDS and p.ae_title == ae]
        if not named and mode != OFF:
            return _refused(mode, f"calling AE title {ae!r} is not a registered device", host, fingerprint)
        return _decide(
            mode, [p for p in named if address_matches(p.addresses, host)], host, fingerprint,
            unplaced=f"calling AE title {ae!r} is not registered at address {host}",
            uncertified=f"calling AE title {ae!r} must present its registered certificate"
            + (" (it connected without TLS or without a certificate)" if fingerprint is None else ""))

    def check_connection(self, host: str | None, fingerprint: str | None = None, *, mode: str,
                         kinds: tuple[str, ...] = HL7_KINDS) -> Decision:
        """May a connection from `host` reach an MLLP port (some system of `kinds` registered there)?"""
        return _decide(
            mode, [p for p in self.peers if p.kind in kinds and address_matches(p.addresses, host)], host, fingerprint,
            unplaced=f"address {host} is not a registered system's",
            uncertified=f"the systems registered at {host} must present their registered certificate")

    @staticmethod
    def check_sender(decision: Decision, application: str, facility: str) -> Decision:
        """On an admitted connection: is MSH-3/MSH-4 one of the systems registered at that address?"""
        if decision.mode == OFF or not decision.known:
            return decision  # off, or an unknown address already let in (and audited) in audit-only
        matching = tuple(p for p in decision.peers if p.hl7_application == application
                         and (p.hl7_facility is None or p.hl7_facility == facility))
        if matching:
            return Decision(decision.mode, True, True, matching, host=decision.host, fingerprint=decision.fingerprint)
        return Decision(decision.mode, decision.mode != ENFORCE, False, reason=(
            f"sender {application}^{facility} is not registered at address {decision.host} "
            f"(registered there: {', '.join(sorted({p.hl7_application or '' for p in decision.peers}))})"),
            host=decision.host, fingerprint=decision.fingerprint)

    # -- audit ---------------------------------------------------------------------------------

    def should_audit(self, decision: Decision, port: str, who: str) -> bool:
        if decision.known or decision.mode == OFF:
            return False
        key = (port, who, decision.host, decision.reason)
        now = time.monotonic()
        if now - self._audited.get(key, -AUDIT_EVERY) < AUDIT_EVERY:
            return False
        if len(self._audited) > 10000:
            self._audited.clear()
        self._audited[key] = now
        return True

    async def audit(self, decision: Decision, *, port: str, protocol: str, who: str,
                    detail: dict[str, Any] | None = None) -> None:
        """One audit row for an unknown peer (refused, or let in by audit-only); deduplicated."""
        refused = not decision.admitted
        log.warning("%s peer %s from %s on %s %s: %s", protocol, who, decision.host, port,
                    "refused" if refused else "let in (audit-only)", decision.reason)
        if not self.should_audit(decision, port, who):
            return
        try:
            async with self.pool.acquire() as conn:
                await audit.record(conn, actor=who, action="connect", entity="peer", entity_id=port,
                                   source_ip=decision.host, outcome="failure" if refused else "success",
                                   detail={"protocol": protocol, "port": port, "mode": decision.mode,
                                           "refused": refused, "reason": decision.reason,
                                           **({"certificate_sha256": decision.fingerprint}
                                              if decision.fingerprint else {}), **(detail or {})})
        except Exception:  # the audit trail must not take the listener down; the log line stays
            log.exception("audit of an unknown %s peer failed", protocol)

    def audit_soon(self, decision: Decision, **kwargs: Any) -> None:
        """`audit` from another thread (pynetdicom's): scheduled on the registry's loop, not waited for."""
        if self.loop is None or decision.known or decision.mode == OFF:
            return
        future = asyncio.run_coroutine_threadsafe(self.audit(decision, **kwargs), self.loop)
        future.add_done_callback(lambda f: f.exception())  # retrieved: audit() logs its own failures


@contextlib.asynccontextmanager
async def registry_listener(ctx: Any) -> AsyncIterator[PeerRegistry]:
    """ServiceSpec listener (put it before the ports that use it): `ctx.extras["peers"]`."""
    registry = PeerRegistry(ctx.pool, ctx.spec.name, refresh_seconds=ctx.settings.peers_refresh_seconds)
    await registry.start()
    ctx.extras["peers"] = registry
    try:
        yield registry
    finally:
        ctx.extras.pop("peers", None)
        await registry.stop()
