"""Settings of the critical values service (environment variables, see CommonSettings).

Each value: its default, the variable that sets it, an example.
"""

from __future__ import annotations

import json
from typing import Literal

from imaging_common.config import CommonSettings
from pydantic import SecretStr, field_validator


class Settings(CommonSettings):
    # IMAGING_CRITICAL_MLLP_HOST / IMAGING_CRITICAL_MLLP_PORT: where clinician systems send HL7
    # application acknowledgements (ACK^R01 with MSA-2 = our MSH-10); port 0 picks a free port.
    critical_mllp_host: str = "0.0.0.0"
    critical_mllp_port: int = 2577
    # IMAGING_CRITICAL_MLLP_ENABLED: false when no clinician system answers over HL7, e.g. false.
    critical_mllp_enabled: bool = True
    # IMAGING_CRITICAL_MLLP_TLS_PORT: the same ACK port over MLLP/TLS (IMAGING_MLLP_TLS_CERT_FILE / _KEY_FILE,
    # mutual TLS with IMAGING_MLLP_TLS_CA_FILE [+ _REQUIRE_CLIENT_CERT]), e.g. 2578; unset: none.
    critical_mllp_tls_port: int | None = None
    # IMAGING_CRITICAL_MLLP_PEERS: enforce | audit-only | off for both ACK ports: a connection from an address
    # no clinician system is registered at (GET/PUT /api/critical-values/admin/peers, kind clinician-system,
    # MSH-3 = the receiver's ack_application or id) is closed; an ACK whose MSH-3/MSH-4 is not registered
    # at that address is answered AR; audited. Unset: IMAGING_PEERS_MODE.
    critical_mllp_peers: Literal["enforce", "audit-only", "off"] | None = None
    # IMAGING_CRITICAL_SENDING_APP / _FACILITY: MSH-3/MSH-4 of our messages, e.g. RIS / 影像中心.
    critical_sending_app: str = "IMAGING-CV"
    critical_sending_facility: str = "RIS"
    # IMAGING_CRITICAL_POLL_SECONDS: how often timers and due deliveries are polled (also woken
    # at once in this process when something is queued), e.g. 0.5.
    critical_poll_seconds: float = 0.5
    # IMAGING_CRITICAL_DELIVERY_WORKERS: messages sent in parallel by one replica, e.g. 3. Each holds
    # a pooled connection while it sends (the row lock is what stops replicas double-sending), so
    # the engine uses at most IMAGING_DB_POOL_MAX - 2, leaving connections to the API and timers.
    critical_delivery_workers: int = 3
    # IMAGING_CRITICAL_DELIVERY_TIMEOUT: seconds to wait for an HL7 ACK or FHIR answer, e.g. 5.
    critical_delivery_timeout: float = 5.0
    # IMAGING_CRITICAL_DELIVERY_MAX_ATTEMPTS: tries (with backoff) before a human is asked to phone;
    # delivery then goes on at IMAGING_CRITICAL_SLOW_RETRY_SECONDS.
    critical_delivery_max_attempts: int = 5
    # IMAGING_CRITICAL_RETRY_SECONDS: first retry delay, doubled each time up to 60 s, e.g. 2.
    critical_retry_seconds: float = 2.0
    # IMAGING_CRITICAL_SLOW_RETRY_SECONDS: once the attempts above are spent (and a phone task was
    # made), the message is still tried every this many seconds until the receiver accepts it or
    # the value is closed, e.g. 300.
    critical_slow_retry_seconds: float = 300.0
    # IMAGING_CRITICAL_DEFAULT_NOTIFY_MINUTES / _ACK_MINUTES / _CATEGORY: for a finding that
    # matches no dictionary item (a radiologist may still raise it).
    critical_default_notify_minutes: float = 10.0
    critical_default_ack_minutes: float = 15.0
    critical_default_category: int = 1
    # IMAGING_CRITICAL_FHIR_TOKENS: each clinician system's own bearer token for its FHIR endpoint, a JSON
    # object by receiver id, e.g. {"his-er": "…", "emr": "…"} (from a Secret); a receiver not named gets
    # none. (IMAGING_CRITICAL_FHIR_TOKEN, one token sent to every endpoint, is refused.)
    critical_fhir_tokens: SecretStr = SecretStr("{}")
    critical_fhir_token: str | None = None

    @field_validator("critical_fhir_token")
    @classmethod
    def _no_global_token(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("IMAGING_CRITICAL_FHIR_TOKEN (one token sent to every FHIR endpoint) is no longer "
                             "used: give each receiver its own in IMAGING_CRITICAL_FHIR_TOKENS, e.g. {\"his\": \"…\"}")
        return value

    @field_validator("critical_fhir_tokens")
    @classmethod
    def _tokens_are_a_map(cls, value: SecretStr) -> SecretStr:
        parsed = json.loads(value.get_secret_value() or "{}")
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError("IMAGING_CRITICAL_FHIR_TOKENS must be a JSON object of receiver id -> token")
        return value
    # IMAGING_CRITICAL_TIMEZONE: local time, e.g. Asia/Shanghai: statistics per day/week/month, and
    # the zone of a time a clinician system sends without an offset (HL7 EVN-6, FHIR dateTime).
    critical_timezone: str = "Asia/Shanghai"
    # IMAGING_CRITICAL_WINDOW_MINUTES: the completion window of 8.7.1 (2) (10 minutes).
    critical_window_minutes: float = 10.0
    # IMAGING_CRITICAL_CLOCK_SKEW_SECONDS: how far ahead of our clock a claimed time (HL7 EVN-6, FHIR
    # sent/lastModified, raised_at or called_at sent by a client) may be and still be believed as
    # evidence, e.g. 300. Records, deadlines and statistics always use the time we received it.
    critical_clock_skew_seconds: float = 300.0

    def peer_modes(self) -> dict[str, str]:
        return {"mllp": self.peer_mode(self.critical_mllp_peers)}


def fhir_tokens(settings: Settings) -> dict[str, str]:
    """Receiver id -> its own FHIR bearer token."""
    return {str(k): str(v) for k, v in json.loads(settings.critical_fhir_tokens.get_secret_value() or "{}").items()}
