"""Settings of the reporting service (environment variables, see CommonSettings)."""

import json

from imaging_common.config import CommonSettings
from pydantic import SecretStr, model_validator

DEV_SIGNING_SECRET = "development-only-signing-secret"


class Settings(CommonSettings):
    # IMAGING_DB_POOL_MAX: reporting signs (one transaction each) while its delivery worker drains
    # the queue, so it keeps more connections than the common default; e.g. 10
    db_pool_max: int = 10
    # IMAGING_REPORTING_SIGNING_SECRET: encrypts each user's private signing key at rest (AES-GCM);
    # changing it makes existing keys unusable (new ones are made). e.g. a 32+ character random string
    reporting_signing_secret: str = DEV_SIGNING_SECRET
    # IMAGING_REPORTING_REQUIRE_KEY_APPROVAL: a user's signing key is made on their first signature
    # and, when true, must be approved by an administrator before it signs (standard 10.2.4 (1))
    reporting_require_key_approval: bool = False
    # IMAGING_REPORTING_RECEIVERS: JSON list of receivers created at start if missing, e.g.
    # [{"id": "his", "kind": "hl7", "name": "HIS", "host": "his.local", "port": 2575, "charset": "gb18030"},
    #  {"id": "emr", "kind": "fhir", "name": "EMR", "url": "https://emr.local/fhir"}]
    reporting_receivers: str = "[]"
    # IMAGING_REPORTING_FHIR_TOKENS: each FHIR receiver's own bearer token, a JSON object by receiver id,
    # e.g. {"emr": "…"} (from a Secret); sent to that receiver only. Receivers' hosts and URLs must be in
    # IMAGING_OUTBOUND_ALLOW.
    reporting_fhir_tokens: SecretStr = SecretStr("{}")
    # IMAGING_REPORTING_DELIVERY_MAX_ATTEMPTS: then the delivery is 'dead' (visible, retried by hand); e.g. 20
    reporting_delivery_max_attempts: int = 20
    # IMAGING_REPORTING_DELIVERY_RETRY_BASE / _MAX: backoff seconds, doubling per attempt; e.g. 1.0 / 300.0
    reporting_delivery_retry_base: float = 1.0
    reporting_delivery_retry_max: float = 300.0
    # IMAGING_REPORTING_DELIVERY_TIMEOUT: seconds to wait for an ACK or a FHIR answer; e.g. 10
    reporting_delivery_timeout: float = 10.0
    # IMAGING_REPORTING_DELIVERY_POLL: seconds between looks at the queue without a NOTIFY; e.g. 1.0
    reporting_delivery_poll: float = 1.0
    # IMAGING_REPORTING_DELIVERY_BATCH: rows claimed per receiver per round; e.g. 50
    reporting_delivery_batch: int = 50
    # IMAGING_REPORTING_DELIVERY_ENABLED: run the delivery worker in this process; e.g. true
    reporting_delivery_enabled: bool = True
    # IMAGING_REPORTING_SINGLE_READER: a site with one radiologist on duty may sign the final report
    # of its own preliminary and decide its own amendment request; each such step is recorded as
    # signed single-reader (report.single_reader, amendment.single_reader, the audit row). false
    # (the default) keeps four eyes: final signer != preliminary author, reviewer != requester.
    reporting_single_reader: bool = False

    @model_validator(mode="after")
    def _no_dev_secret_in_production(self) -> "Settings":
        if self.env == "production" and (self.reporting_signing_secret == DEV_SIGNING_SECRET
                                         or len(self.reporting_signing_secret) < 32):
            raise ValueError("IMAGING_REPORTING_SIGNING_SECRET must be set (32+ characters) in production")
        return self


def fhir_tokens(settings: Settings) -> dict[str, str]:
    """Receiver id -> its own FHIR bearer token."""
    parsed = json.loads(settings.reporting_fhir_tokens.get_secret_value() or "{}")
    if not isinstance(parsed, dict):
        raise ValueError("IMAGING_REPORTING_FHIR_TOKENS must be a JSON object of receiver id -> token")
    return {str(k): str(v) for k, v in parsed.items()}
