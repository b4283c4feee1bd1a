"""Settings of the registration service (environment variables, see CommonSettings)."""

from pathlib import Path
from typing import Literal

from imaging_common.config import CommonSettings


class Settings(CommonSettings):
    # IMAGING_MLLP_HOST / IMAGING_MLLP_PORT: where the HIS feed (HL7 v2 over MLLP) is received, e.g. 2575.
    mllp_host: str = "0.0.0.0"
    mllp_port: int = 2575
    # IMAGING_MLLP_ENABLED: start the MLLP listener with the service (tests start their own).
    mllp_enabled: bool = True
    # IMAGING_MLLP_TLS_PORT: the same feed over MLLP/TLS (IMAGING_MLLP_TLS_CERT_FILE / _KEY_FILE, mutual
    # TLS with IMAGING_MLLP_TLS_CA_FILE [+ _REQUIRE_CLIENT_CERT]), e.g. 2576; unset: none.
    mllp_tls_port: int | None = None
    # IMAGING_MLLP_PEERS: enforce | audit-only | off for both feed ports: a connection from an address no
    # HIS is registered at (GET/PUT /api/registration/admin/peers) is closed, a message whose MSH-3/MSH-4
    # is not registered at that address answered AR; audited. Unset: IMAGING_PEERS_MODE.
    mllp_peers: Literal["enforce", "audit-only", "off"] | None = None
    # IMAGING_HL7_DEFAULT_CHARSET: how a message without MSH-18 is decoded; many HIS send GB18030 unlabelled.
    hl7_default_charset: str = "utf-8"
    # IMAGING_HL7_FACILITY: MSH-3/MSH-4 of our acknowledgements, e.g. "IMAGING^RIS".
    hl7_application: str = "IMAGING"
    hl7_facility: str = "RIS"
    # IMAGING_PATIENT_ID_PREFIX: prefix of new PACS PatientIDs; one per campus keeps them unique, e.g. "P01".
    patient_id_prefix: str = "P"
    # IMAGING_ACCESSION_PREFIX: prefix of accession numbers (max 16 characters in DICOM), e.g. "A".
    accession_prefix: str = "A"
    # IMAGING_EMPI_MODEL_FILE: Fellegi-Sunter parameters estimated for this site (JSON from
    # `python -m imaging_common.empi estimate ... --save-model`); unset: the shipped defaults.
    empi_model_file: Path | None = None
    # IMAGING_EMPI_LINK_THRESHOLD / IMAGING_EMPI_REVIEW_THRESHOLD: match-weight bands (log2 units).
    empi_link_threshold: float = 10.0
    empi_review_threshold: float = 4.0
    # IMAGING_FHIR_IDENTIFIER_SYSTEM: base of FHIR Identifier.system URIs, one per assigning authority.
    fhir_identifier_system: str = "urn:imaging:id:"
    # IMAGING_HIS_STATUS_HOST / IMAGING_HIS_STATUS_PORT: the HIS's MLLP listener for order status updates
    # (ORM^O01 ORC-1 SC/OC about orders it placed, docs/hl7-interface.md); unset: none are sent or queued.
    # Over TLS when listed in IMAGING_MLLP_CLIENT_TLS_DESTINATIONS.
    his_status_host: str | None = None
    his_status_port: int | None = None
    # IMAGING_HIS_STATUS_APPLICATION / _FACILITY: MSH-5/MSH-6 of those messages; _CHARSET: their encoding
    # (utf-8 or gb18030, named in MSH-18).
    his_status_application: str = "HIS"
    his_status_facility: str = ""
    his_status_charset: str = "utf-8"
    # IMAGING_HIS_STATUS_TIMEOUT: seconds to wait for the HIS's answer; RETRY_BASE doubling up to RETRY_MAX
    # between attempts of a message not accepted (AE, no answer); POLL: seconds between looks at the queue
    # when no NOTIFY came; BATCH: messages claimed at once.
    his_status_timeout: float = 10.0
    his_status_retry_base: float = 5.0
    his_status_retry_max: float = 600.0
    his_status_poll: float = 5.0
    his_status_batch: int = 50

    def peer_modes(self) -> dict[str, str]:
        return {"mllp": self.peer_mode(self.mllp_peers)}
