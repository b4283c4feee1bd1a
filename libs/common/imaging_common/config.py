"""Settings shared by every service, read only from environment variables.

Each value carries its default (one that works on a developer machine where PostgreSQL,
RabbitMQ and Redis listen on localhost) and the variable that sets it. A service subclasses
`CommonSettings` with its own values (AE titles, ports) in its `settings.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGING_", extra="ignore")

    # "production" refuses development conveniences (generated keys, placeholder secrets).
    env: Literal["development", "production"] = "development"

    # DATABASE_URL, e.g. postgresql://imaging:secret@db.hospital.local:5432/imaging
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/imaging",
        validation_alias=AliasChoices("DATABASE_URL", "IMAGING_DATABASE_URL"),
    )
    # AMQP_URL, e.g. amqp://imaging:secret@mq.hospital.local:5672/imaging
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=AliasChoices("AMQP_URL", "IMAGING_AMQP_URL"),
    )
    # REDIS_URL, e.g. redis://cache.hospital.local:6379/0
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "IMAGING_REDIS_URL"),
    )
    # IMAGING_DATA_DIR: films, generated dev keys; e.g. /var/lib/imaging
    data_dir: Path = Path("var")

    # IMAGING_NAMESPACE prefixes the RabbitMQ exchange/queues and Redis keys, so two
    # installations (or two test runs) can share one broker and cache without crosstalk.
    namespace: str = "imaging"

    # IMAGING_HTTP_HOST / IMAGING_HTTP_PORT: where the HTTP API and pages listen.
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    # IMAGING_HTTP_KEEP_ALIVE: seconds an idle HTTP connection stays open. A gateway or load balancer
    # reuses idle upstream connections until its own idle timeout (commonly 60 s); if we close first,
    # a request it sends at that moment meets a reset (502 at the gateway, a lost answer for a POST).
    http_keep_alive: int = 75

    # IMAGING_DB_POOL_MAX: connections per service pool (seven pools in the all-in-one run).
    db_pool_max: int = 5

    # IMAGING_LOG_LEVEL, IMAGING_LOG_JSON: structured JSON logs by default.
    log_level: str = "INFO"
    log_json: bool = True

    # IMAGING_MAX_BODY_BYTES: a request body larger than this is refused with 413 before it is read
    # (8 MiB holds a 5,000-step worklist import; nothing the pages send comes near it).
    max_body_bytes: int = 8 << 20

    # Seconds a dependency check may take before readiness calls it down.
    readiness_timeout: float = 2.0

    # --- Event bus (imaging_common.events) ---
    # IMAGING_EVENT_MAX_RETRIES: a failing handler is retried this many times, then dead-lettered.
    event_max_retries: int = 5
    # IMAGING_EVENT_RETRY_DELAY_MS: how long a failed message waits in <ns>.<service>.retry (5 s).
    event_retry_delay_ms: int = 5000
    # IMAGING_EVENT_PREFETCH: messages the broker may push ahead to one consumer.
    event_prefetch: int = 32
    # IMAGING_OUTBOX_POLL_INTERVAL: seconds between outbox polls when no NOTIFY arrives (safety net).
    outbox_poll_interval: float = 2.0
    # IMAGING_OUTBOX_BATCH_SIZE: rows the relay publishes per transaction.
    outbox_batch_size: int = 100
    # IMAGING_OUTBOX_RETENTION_HOURS: published outbox rows are deleted after this (7 days).
    outbox_retention_hours: int = 168
    # IMAGING_INBOX_RETENTION_DAYS: applied event ids kept to recognise redeliveries (30 days).
    inbox_retention_days: int = 30
    # IMAGING_AMQP_RECONNECT_INTERVAL: seconds between reconnection attempts to RabbitMQ once connected;
    # before the first connection the attempts start this far apart and double up to 30 s.
    amqp_reconnect_interval: float = 2.0
    # IMAGING_EVENT_QUEUE_TYPE: "quorum" (replicated queues <ns>.<service>.quorum[.retry|.dlq]; RabbitMQ
    # 3.10+) or "classic" (<ns>.<service>[.retry|.dlq], e.g. a single-node development broker). Queues
    # of the other type left by an earlier version are moved into these, message by message, then
    # deleted once empty and unused (imaging_common.events.queue_migration).
    event_queue_type: Literal["quorum", "classic"] = "quorum"

    # IMAGING_STARTUP_WAIT_SECONDS: how long a service starting without PostgreSQL waits for it before
    # exiting (0: one attempt). RabbitMQ and Redis are never waited for: the service starts degraded
    # and connects to them when they answer.
    startup_wait_seconds: float = 0.0

    # --- Staff authentication (imaging_common.auth; smart-imaging standard 10.2.3) ---
    # IMAGING_JWT_PRIVATE_KEY_FILE: PEM RSA private key that signs access tokens (registration),
    # e.g. /run/secrets/jwt-private.pem. In development a key is generated once under
    # $IMAGING_DATA_DIR/keys/ when unset; production refuses to start without it.
    jwt_private_key_file: Path | None = None
    # IMAGING_JWT_PUBLIC_KEY_FILE: PEM public key a verifying service trusts instead of the private key.
    jwt_public_key_file: Path | None = None
    # IMAGING_JWKS_URL: distributed deployments verify against registration's JWKS,
    # e.g. http://registration:8080/api/registration/auth/jwks
    jwks_url: str | None = None
    # IMAGING_JWT_ISSUER / IMAGING_JWT_AUDIENCE: `iss` and `aud` of the platform's own tokens.
    jwt_issuer: str = "imaging-platform"
    jwt_audience: str = "imaging-platform"
    # IMAGING_ACCESS_TOKEN_TTL_SECONDS: short-lived access tokens (10 min).
    access_token_ttl_seconds: int = 600
    # IMAGING_REFRESH_TOKEN_TTL_SECONDS: absolute lifetime of a login session (12 h, one shift).
    refresh_token_ttl_seconds: int = 43200
    # IMAGING_SESSION_IDLE_SECONDS: a session unused this long is closed (30 min).
    session_idle_seconds: int = 1800
    # Login throttling (imaging_common.auth.throttle; never a hard lock anyone can renew):
    # IMAGING_LOGIN_MAX_FAILURES: failed logins for one name from one address before that pair is
    # paused, and consecutive failures on a name (any address) before its attempts are slowed (5).
    login_max_failures: int = 5
    # IMAGING_LOGIN_PAUSE_SECONDS: first pause of a (name, address) pair (60), doubling at each
    # further pause up to IMAGING_LOGIN_LOCK_SECONDS (900), which is also how long failures are remembered.
    login_pause_seconds: int = 60
    login_lock_seconds: int = 900
    # IMAGING_LOGIN_MAX_DELAY_SECONDS: longest hold-back of an attempt on a name with many failures
    # (1 s doubling per failure beyond IMAGING_LOGIN_MAX_FAILURES), e.g. 10.
    login_max_delay_seconds: float = 10.0
    # IMAGING_LOGIN_ADDRESS_MAX_FAILURES / IMAGING_LOGIN_ADDRESS_WINDOW_SECONDS: failed logins from one
    # client address, over all names, before it is refused until the window ends (30 per 900 s).
    login_address_max_failures: int = 30
    login_address_window_seconds: int = 900
    # Optional trusted hospital OIDC issuer: IMAGING_OIDC_ISSUER (its `iss`), IMAGING_OIDC_JWKS_URL,
    # IMAGING_OIDC_AUDIENCE (the platform's client id at the IdP; every token must name it in `aud`;
    # required in production, IMAGING_JWT_AUDIENCE in development), IMAGING_OIDC_ROLES_CLAIM (dotted
    # path, e.g. realm_access.roles), IMAGING_OIDC_USERNAME_CLAIM, IMAGING_OIDC_ROLE_MAP
    # ("HIS_RAD=radiologist,HIS_REG=clerk"; only mapped IdP roles grant anything: an IdP role named
    # "admin" grants nothing unless the map says admin=admin), IMAGING_OIDC_ALGORITHMS (asymmetric only).
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str | None = None
    oidc_roles_claim: str = "roles"
    oidc_username_claim: str = "preferred_username"
    oidc_role_map: str = ""
    oidc_algorithms: str = "RS256"
    # IMAGING_JWKS_CACHE_SECONDS: how long a fetched JWKS is trusted before it is fetched again.
    jwks_cache_seconds: int = 300
    # IMAGING_OUTBOUND_ALLOW: where receivers and webhooks may point (imaging_common.outbound): host
    # names, .domains and networks, e.g. "his.hospital.local,.emr.hospital.local,10.20.0.0/16".
    # Non-public addresses (loopback, private, link-local, cloud metadata...) are refused unless a listed
    # network holds them; checked when configured and again, resolved, at every call. Unset: loopback and
    # private networks in development, nothing in production.
    outbound_allow: str | None = None

    # First admin, created by registration on an empty staff table: IMAGING_ADMIN_USER,
    # IMAGING_ADMIN_PASSWORD, IMAGING_ADMIN_TOTP_SECRET (base32), or the same read from a mounted
    # Secret: IMAGING_ADMIN_PASSWORD_FILE, IMAGING_ADMIN_TOTP_SECRET_FILE (e.g. /run/secrets/admin-password).
    # Development: what is unset is generated and printed once. Production: both must come from
    # there (registration refuses to start otherwise) and nothing secret is ever printed or logged.
    admin_user: str | None = None
    admin_password: str | None = None
    admin_totp_secret: str | None = None
    admin_password_file: Path | None = None
    admin_totp_secret_file: Path | None = None

    # --- Known peers on the protocol ports (imaging_common.peers; issue 18 item 1) ---
    # IMAGING_PEERS_MODE: what a DICOM or MLLP port does with a peer missing from its service's
    # registry (GET/PUT /api/<service>/admin/peers): "enforce" refuses it (A-ASSOCIATE-RJ 1/1/3,
    # MLLP connection closed), "audit-only" lets it in, "off" checks nothing; refusals and unknown
    # peers are audited in both first modes. Unset: enforce in production, audit-only in development.
    # Each port can differ: IMAGING_WORKLIST_PEERS, IMAGING_MLLP_PEERS, IMAGING_CRITICAL_MLLP_PEERS.
    peers_mode: Literal["enforce", "audit-only", "off"] | None = None
    # IMAGING_PEERS_REFRESH_SECONDS: how soon a registry change made by another replica applies, e.g. 5.
    peers_refresh_seconds: float = 5.0

    # --- DICOM TLS (PS3.15 B.9 BCP 195; imaging_common.tls), for worklist and print listeners ---
    # IMAGING_DICOM_TLS_CERT_FILE / _KEY_FILE: PEM certificate chain and key of our TLS ports, e.g.
    # /run/secrets/imaging/dicom-tls/tls.crt. IMAGING_DICOM_TLS_CA_FILE: the CA client (modality)
    # certificates must chain to. IMAGING_DICOM_TLS_REQUIRE_CLIENT_CERT: mutual TLS (true/false);
    # unset: required when a CA file is given.
    dicom_tls_cert_file: Path | None = None
    dicom_tls_key_file: Path | None = None
    dicom_tls_ca_file: Path | None = None
    dicom_tls_require_client_cert: bool | None = None

    # --- MLLP over TLS: our listeners (HIS feed, critical-value ACKs) and our clients ---
    # IMAGING_MLLP_TLS_CERT_FILE / _KEY_FILE / _CA_FILE / _REQUIRE_CLIENT_CERT: as for DICOM above,
    # for the MLLP TLS ports (IMAGING_MLLP_TLS_PORT, IMAGING_CRITICAL_MLLP_TLS_PORT).
    mllp_tls_cert_file: Path | None = None
    mllp_tls_key_file: Path | None = None
    mllp_tls_ca_file: Path | None = None
    mllp_tls_require_client_cert: bool | None = None
    # IMAGING_MLLP_CLIENT_TLS_DESTINATIONS: MLLP destinations we send to over TLS (reporting's ORU,
    # critical-value notifications): "*" for all, or a comma list of host or host:port, e.g.
    # "his.hospital.local:2575,emr.hospital.local". IMAGING_MLLP_CLIENT_TLS_CA_FILE: the CA their
    # certificates chain to (unset: the system's CAs); the host name is checked against it.
    # IMAGING_MLLP_CLIENT_TLS_CERT_FILE / _KEY_FILE: our client certificate, for peers requiring mTLS.
    mllp_client_tls_destinations: str = ""
    mllp_client_tls_ca_file: Path | None = None
    mllp_client_tls_cert_file: Path | None = None
    mllp_client_tls_key_file: Path | None = None

    def peer_mode(self, port_mode: str | None = None) -> str:
        """The peer check of one port: its own setting, else IMAGING_PEERS_MODE, else by IMAGING_ENV."""
        mode = port_mode or self.peers_mode or ("enforce" if self.env == "production" else "audit-only")
        if mode not in ("enforce", "audit-only", "off"):
            raise ValueError(f"peer mode must be enforce, audit-only or off, not {mode!r}")
        return mode

    def peer_modes(self) -> dict[str, str]:
        """The peer check of each protocol port of the service ({"dicom": "enforce"}), shown by
        GET /admin/peers; a service with such ports lists them in its Settings."""
        return {}

    # --- Audit (imaging_common.audit; standard 10.5.2: kept at least six months) ---
    # IMAGING_AUDIT_RETENTION_DAYS: `python -m imaging_common.audit purge` removes older rows; >= 180.
    audit_retention_days: int = 180

    @field_validator("audit_retention_days")
    @classmethod
    def _retention_at_least_six_months(cls, value: int) -> int:
        if value < 180:
            raise ValueError("IMAGING_AUDIT_RETENTION_DAYS must be at least 180 (standard 10.5.2: six months)")
        return value
