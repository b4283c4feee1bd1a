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
