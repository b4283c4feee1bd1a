"""Settings of the patient portal (environment variables, see CommonSettings).

Each value: its default, the variable that sets it, an example.
"""

from __future__ import annotations

from typing import Literal

from imaging_common.config import CommonSettings
from pydantic import model_validator


class Settings(CommonSettings):
    # IMAGING_PATIENT_TOKEN_SECRET: signs patients' session tokens (HS256) and keys the hash of sign-in
    # codes; 32+ characters, the same on every replica. Required in production; in development an
    # unset secret is drawn at random per process (sessions then end with the process).
    patient_token_secret: str = ""
    # IMAGING_PATIENT_TOKEN_ISSUER: `iss` of patient tokens; never the staff issuer (IMAGING_JWT_ISSUER).
    patient_token_issuer: str = "imaging-patient-portal"
    # IMAGING_PATIENT_SESSION_SECONDS: a patient session ends this long after sign-in, e.g. 1800.
    patient_session_seconds: int = 1800
    # IMAGING_PATIENT_SESSION_IDLE_SECONDS: ... or after this long without a request.
    patient_session_idle_seconds: int = 600
    # IMAGING_PATIENT_CODE_SECONDS: a sign-in code is valid this long.
    patient_code_seconds: int = 300
    # IMAGING_PATIENT_CODE_ATTEMPTS: wrong codes tried against one issued code before it is void.
    patient_code_attempts: int = 5
    # IMAGING_PATIENT_CODE_INTERVAL_SECONDS: a phone gets at most one code per this interval.
    patient_code_interval_seconds: int = 60
    # IMAGING_PATIENT_CODES_PER_PHONE / _PER_ADDRESS: codes asked per window, per phone and per client address.
    patient_codes_per_phone: int = 5
    patient_codes_per_address: int = 20
    # IMAGING_PATIENT_CODE_WINDOW_SECONDS: the window of those two limits.
    patient_code_window_seconds: int = 3600
    # IMAGING_PATIENT_SIGNIN_FAILURES_PER_ADDRESS: wrong codes from one address per window before it is held back.
    patient_signin_failures_per_address: int = 30
    # IMAGING_PATIENT_HOSPITAL_NAME: the header of the reports patients download, e.g. "XX市人民医院 影像中心".
    patient_hospital_name: str = "影像中心"
    # IMAGING_PATIENT_PUBLIC_BASE_URL: where patients reach the platform; base of the report's verification QR.
    patient_public_base_url: str = "http://localhost:8080"
    # IMAGING_PATIENT_TIMEZONE: the center's local time, for times on reports and in messages.
    patient_timezone: str = "Asia/Shanghai"
    # IMAGING_PATIENT_QUIET_HOURS: local hours in which messages wait (critical notices excepted), e.g. "21:00-08:00";
    # empty for none.
    patient_quiet_hours: str = "21:00-08:00"
    # IMAGING_PATIENT_MESSAGE_MAX_ATTEMPTS / _RETRY_SECONDS: sends tried before a message fails; the first back-off.
    patient_message_max_attempts: int = 6
    patient_message_retry_seconds: float = 30.0
    # IMAGING_PATIENT_MESSAGE_POLL_SECONDS: how often the sender looks for due messages besides being woken.
    patient_message_poll_seconds: float = 5.0
    # IMAGING_PATIENT_CRITICAL_DEPARTMENTS: ordering departments whose policy is to tell the patient of a critical
    # result by SMS (comma-separated, "*" for all, empty for none: the default, clinicians tell the patient).
    patient_critical_departments: str = ""
    # IMAGING_PATIENT_SMS_PROVIDER: "smpp" (an SMSC over SMPP 3.4) or "http" (an SMS cloud's HTTP API).
    patient_sms_provider: Literal["smpp", "http"] = "smpp"
    # IMAGING_PATIENT_SMS_SIGNATURE: the signature Chinese carriers require at the start of a message.
    patient_sms_signature: str = "【影像中心】"
    # IMAGING_PATIENT_SMPP_HOST / _PORT / _SYSTEM_ID / _PASSWORD / _SOURCE: the SMSC and the account on it;
    # the source address is the center's service number, e.g. 1069012345.
    patient_smpp_host: str = "127.0.0.1"
    patient_smpp_port: int = 2775
    patient_smpp_system_id: str = "imaging"
    patient_smpp_password: str = ""
    patient_smpp_source: str = "10690000"
    # IMAGING_PATIENT_SMPP_TIMEOUT: seconds for connecting, binding and each submit.
    patient_smpp_timeout: float = 10.0
    # IMAGING_PATIENT_SMS_HTTP_URL / _TOKEN: an SMS cloud's (or the hospital gateway's) send endpoint and its
    # bearer token, e.g. https://sms-gateway.hospital.local/send; the URL must be on IMAGING_OUTBOUND_ALLOW.
    patient_sms_http_url: str | None = None
    patient_sms_http_token: str = ""
    # IMAGING_PATIENT_SMS_HTTP_TEMPLATE: the cloud's approved template id for sign-in codes, e.g. SMS_123456.
    patient_sms_http_template: str = "SIGNIN_CODE"

    @model_validator(mode="after")
    def _secret_in_production(self) -> Settings:
        if self.env == "production" and len(self.patient_token_secret) < 32:
            raise ValueError("IMAGING_PATIENT_TOKEN_SECRET (32+ characters) is required in production")
        if self.patient_token_issuer == self.jwt_issuer:
            raise ValueError("IMAGING_PATIENT_TOKEN_ISSUER must differ from IMAGING_JWT_ISSUER (staff tokens)")
        return self
