"""Who may speak on an MLLP port, and MLLP over TLS (issue 18 items 1 and 2).

`MllpGate` (given to `MLLPServer(gate=...)`) checks each connection's address (and, over TLS, the
client certificate) against the service's known HL7 systems (imaging_common.peers):
- an address no registered system connects from is **closed at once**, before any byte is read or
  written, and audited. Not answered AR: an AR is an HL7 conversation, telling a stranger what
  listens here and letting it keep a connection open to probe it; a closed connection is what an
  HL7 sender treats as a transport failure and alarms on, which is what should happen when a
  system is not (yet) registered;
- on an admitted connection, each message's MSH-3/MSH-4 must be one of the systems registered at
  that address (`MessageService` asks through `current_admission`): another sender name is
  answered **AR** with ERR 207 naming why (it is a known host speaking for someone else, or a
  configuration mistake its operators must be able to read), and audited; nothing is handled.
In "audit-only" both are let through and audited; in "off" nothing is checked.

TLS: `mllp_server_context(settings)` (IMAGING_MLLP_TLS_*) for listeners; `client_tls(settings, host,
port)` gives the context for an outbound destination listed in IMAGING_MLLP_CLIENT_TLS_DESTINATIONS.
"""

from __future__ import annotations

import logging
import ssl
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from imaging_common.peers import HL7_KINDS, OFF, Decision, PeerRegistry
from imaging_common.tls import client_context, server_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """An admitted connection: how the gate decided, for the messages that come on it."""

    gate: MllpGate
    decision: Decision

    async def refuse_sender(self, application: str, facility: str, control_id: str | None) -> str | None:
        """None when MSH-3/MSH-4 may speak on this connection, else why not (audited)."""
        return await self.gate.sender(self.decision, application, facility, control_id)


# The admission of the connection the message being handled came on (set by MLLPServer).
current_admission: ContextVar[Admission | None] = ContextVar("mllp_admission", default=None)


class MllpGate:
    def __init__(self, registry: PeerRegistry | None, *, mode: str, port: str,
                 kinds: tuple[str, ...] = HL7_KINDS) -> None:
        self.registry = registry
        self.mode = mode if registry is not None else OFF
        self.port = port
        self.kinds = kinds

    async def admit(self, host: str | None, fingerprint: str | None, *, tls: bool) -> Admission | None:
        """The connection's admission, or None: close it."""
        if self.registry is None or self.mode == OFF:
            return Admission(self, Decision(OFF, True, False, host=host, fingerprint=fingerprint))
        decision = self.registry.check_connection(host, fingerprint, mode=self.mode, kinds=self.kinds)
        if not decision.known:
            await self.registry.audit(decision, port=self.port, protocol="MLLP", who=f"mllp:{host}",
                                      detail={"tls": tls, "stage": "connection"})
        return Admission(self, decision) if decision.admitted else None

    async def sender(self, decision: Decision, application: str, facility: str, control_id: str | None) -> str | None:
        if self.registry is None or decision.mode == OFF:
            return None
        checked = self.registry.check_sender(decision, application, facility)
        if checked.known or decision is checked:
            return None
        await self.registry.audit(checked, port=self.port, protocol="HL7", who=f"hl7:{application}^{facility}",
                                  detail={"stage": "message", "control_id": control_id})
        return None if checked.admitted else checked.reason

    async def handshake_failed(self, host: str | None, error: BaseException) -> None:
        if self.registry is None:
            return
        decision = Decision(self.mode if self.mode != OFF else "enforce", False, False,
                            reason=f"TLS handshake failed: {error}", host=host)
        await self.registry.audit(decision, port=f"{self.port}-tls", protocol="MLLP TLS", who=f"tls:{host}")


def mllp_server_context(settings: Any) -> ssl.SSLContext:
    """The MLLP listeners' TLS context (IMAGING_MLLP_TLS_*; mutual TLS: the setting, else when a CA is given)."""
    require = settings.mllp_tls_require_client_cert
    if require is None:
        require = settings.mllp_tls_ca_file is not None
    return server_context(settings.mllp_tls_cert_file, settings.mllp_tls_key_file, ca_file=settings.mllp_tls_ca_file,
                          require_client_cert=require, what="MLLP TLS")


_client_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def client_tls(settings: Any, host: str, port: int) -> ssl.SSLContext | None:
    """The TLS context for an outbound MLLP destination, or None for plain TCP
    (IMAGING_MLLP_CLIENT_TLS_DESTINATIONS: "*" or host / host:port entries)."""
    wanted = [d.strip().lower() for d in (settings.mllp_client_tls_destinations or "").split(",") if d.strip()]
    target = (host or "").lower()
    if not ("*" in wanted or target in wanted or f"{target}:{port}" in wanted):
        return None
    key = (settings.mllp_client_tls_ca_file, settings.mllp_client_tls_cert_file, settings.mllp_client_tls_key_file)
    context = _client_contexts.get(key)
    if context is None:
        context = _client_contexts[key] = client_context(
            ca_file=settings.mllp_client_tls_ca_file, cert_file=settings.mllp_client_tls_cert_file,
            key_file=settings.mllp_client_tls_key_file, what="MLLP client TLS")
    return context
