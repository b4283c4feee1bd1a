"""Settings of the worklist service (environment variables, see CommonSettings)."""

from typing import Literal
from zoneinfo import ZoneInfo

from imaging_common.config import CommonSettings
from pydantic import Field


class Settings(CommonSettings):
    # IMAGING_WORKLIST_AE_TITLE: the AE title modalities call for MWL C-FIND and MPPS; e.g. WORKLIST
    worklist_ae_title: str = "WORKLIST"
    # IMAGING_WORKLIST_HOST / IMAGING_WORKLIST_PORT: where the DICOM SCP listens; e.g. 0.0.0.0 / 11113
    worklist_host: str = "0.0.0.0"
    worklist_port: int = 11113
    # IMAGING_WORKLIST_TLS_PORT: a second listener of the same AE over DICOM TLS (PS3.15 B.9 BCP 195),
    # e.g. 2763 (the Helm chart's port); unset: none. Needs IMAGING_DICOM_TLS_CERT_FILE / _KEY_FILE;
    # mutual TLS with IMAGING_DICOM_TLS_CA_FILE (+ IMAGING_DICOM_TLS_REQUIRE_CLIENT_CERT).
    worklist_tls_port: int | None = None
    # IMAGING_WORKLIST_PEERS: enforce | audit-only | off, what both ports do with a calling AE title
    # (and address, certificate) missing from GET/PUT /api/worklist/admin/peers; unset: IMAGING_PEERS_MODE
    # (enforce in production, audit-only in development).
    worklist_peers: Literal["enforce", "audit-only", "off"] | None = None
    # IMAGING_WORKLIST_REQUIRE_CALLED_AE: refuse associations addressed to another AE title
    worklist_require_called_ae: bool = True
    # IMAGING_WORKLIST_STREAM_SECONDS: how long one page's stream of worklist changes lasts before the page
    # opens another (through its session: a revoked one is not told anything after this); e.g. 120
    worklist_stream_seconds: float = Field(120.0, gt=0, le=3600)
    # IMAGING_WORKLIST_MAX_RESULTS: C-FIND answers at most this many items, then fails with A700
    # ("Out of Resources") and a comment asking to narrow the query; e.g. 1000
    worklist_max_results: int = 1000
    # IMAGING_WORKLIST_TIMEZONE: DICOM dates and times carry no zone; ours are wall time here
    worklist_timezone: str = "Asia/Shanghai"
    # IMAGING_WORKLIST_REPLY_CHARSET: the set for replies with non-ASCII text when the modality's
    # own set cannot carry it (or it declared none); "ISO_IR 192" (UTF-8) or "GB18030"
    worklist_reply_charset: str = "ISO_IR 192"
    # IMAGING_WORKLIST_MAX_ASSOCIATIONS: concurrent modality associations; e.g. 20
    worklist_max_associations: int = 20
    # IMAGING_WORKLIST_NETWORK_TIMEOUT: seconds a silent modality keeps its association; e.g. 60
    worklist_network_timeout: float = 60.0
    # IMAGING_WORKLIST_DICOM_LOG_LEVEL: pynetdicom's own log level; it logs every C-FIND response
    # at INFO, which at thousands of responses costs more than answering; e.g. WARNING, INFO, DEBUG
    worklist_dicom_log_level: str = "WARNING"
    # IMAGING_WORKLIST_CODING_SCHEME: Coding Scheme Designator of our local exam codes; e.g. 99IMG
    worklist_coding_scheme: str = "99IMG"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.worklist_timezone)

    def peer_modes(self) -> dict[str, str]:
        return {"dicom": self.peer_mode(self.worklist_peers)}
