"""Settings of the print scp service (environment variables, see CommonSettings)."""

from __future__ import annotations

from typing import Literal

from imaging_common.config import CommonSettings
from pydantic import Field, SecretStr


class Settings(CommonSettings):
    # IMAGING_PRINT_HOST / IMAGING_PRINT_PORT: where the DICOM print SCP listens, e.g. 0.0.0.0:11112
    # (0: any free port, logged at start; for test runs of the whole platform side by side).
    print_host: str = "0.0.0.0"
    print_port: int = 11112
    # IMAGING_PRINT_TLS_PORT: a second listener of the same AE over DICOM TLS (PS3.15 B.9 BCP 195), e.g.
    # 2762 (the Helm chart's port); unset: none. Certificates from IMAGING_DICOM_TLS_CERT_FILE / _KEY_FILE,
    # mutual TLS with IMAGING_DICOM_TLS_CA_FILE (+ IMAGING_DICOM_TLS_REQUIRE_CLIENT_CERT).
    print_tls_port: int | None = None
    # IMAGING_PRINT_PEERS: enforce | audit-only | off, for modalities (calling AE title, address,
    # certificate) missing from /api/print/admin/peers; unset: IMAGING_PEERS_MODE, else by IMAGING_ENV.
    print_peers: Literal["enforce", "audit-only", "off"] | None = None
    # IMAGING_PRINT_AE_TITLE: the AE title modalities print to, e.g. PRINT_SCP.
    print_ae_title: str = Field("PRINT_SCP", max_length=16)
    # IMAGING_PRINT_MAX_PDU: largest PDU we receive (bytes); big PDUs move 8 MB images faster.
    print_max_pdu: int = 4 * 1024 * 1024
    # Image data in memory (adapters/memory_budget.py): one N-SET data set, the images one association
    # holds until printed and deleted, and everything arriving and held. Over the first or the last
    # while a data set arrives: A-ABORT; an image box over a limit: N-SET refused with 0x0213.
    print_max_image_bytes: int = 256 * 1024 * 1024
    print_max_association_bytes: int = 1024 * 1024 * 1024
    print_max_memory_bytes: int = 2 * 1024 * 1024 * 1024
    # IMAGING_PRINT_DIMSE_TIMEOUT / IMAGING_PRINT_NETWORK_TIMEOUT: seconds before a silent peer is dropped.
    print_dimse_timeout: float = 60.0
    print_network_timeout: float = 120.0
    # Printer Module (PS3.3 C.13.9) answered to N-GET of the Printer SOP instance.
    print_printer_name: str = "IMAGING VIRTUAL PRINTER"
    print_manufacturer: str = "Imaging Platform"
    print_model: str = "WS/T 597 virtual film printer"
    print_serial: str = "VP-0001"
    # IMAGING_PRINT_EVENT_REPORTS: send the Printer N-EVENT-REPORT (NORMAL) after each print.
    print_event_reports: bool = True
    # IMAGING_PRINT_RENDER_DPI: film resolution of the stored sheet (14x17 in at 150 dpi = 2100x2550).
    print_render_dpi: int = 150
    # IMAGING_PRINT_RENDER_WORKERS: films rendered and matched at once (each in a worker thread).
    print_render_workers: int = 2
    # IMAGING_PRINT_PREVIEW_MAX: longest side in pixels of the PNG preview.
    print_preview_max: int = 1024
    # IMAGING_PRINT_STORE: "directory" (under IMAGING_PRINT_STORE_DIR, default $IMAGING_DATA_DIR/print)
    # or "s3" (an S3-compatible bucket, IMAGING_PRINT_S3_* below; checked at startup).
    print_store: Literal["directory", "s3"] = "directory"
    print_store_dir: str | None = None
    # IMAGING_PRINT_S3_BUCKET / IMAGING_PRINT_S3_PREFIX: where films go, e.g. "imaging-films" and
    # "hospital-a" (keys become hospital-a/films/2026/11/23/<id>.png). The bucket must exist.
    print_s3_bucket: str | None = None
    print_s3_prefix: str = ""
    # IMAGING_PRINT_S3_ENDPOINT_URL: the S3-compatible server, e.g. https://minio.hospital.local:9000 or
    # https://oss-cn-hangzhou.aliyuncs.com; unset = AWS S3 of IMAGING_PRINT_S3_REGION.
    print_s3_endpoint_url: str | None = None
    print_s3_region: str | None = None
    # IMAGING_PRINT_S3_ACCESS_KEY_ID / IMAGING_PRINT_S3_SECRET_ACCESS_KEY: unset = boto3's own chain
    # (AWS_* variables, instance or pod role).
    print_s3_access_key_id: str | None = None
    print_s3_secret_access_key: SecretStr | None = None
    # IMAGING_PRINT_S3_ADDRESSING_STYLE: "path" (http://minio:9000/<bucket>/...: MinIO, Ceph without a
    # wildcard DNS name), "virtual" (http://<bucket>.oss-cn-hangzhou.aliyuncs.com/...: Aliyun OSS requires
    # it) or "auto" (botocore's choice: virtual-hosted on a named host, path on an IP address).
    print_s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # IMAGING_PRINT_S3_TIMEOUT: seconds to connect or to wait for a response, per attempt.
    print_s3_timeout: float = 10.0
    # IMAGING_PRINT_PATIENT_ID_PATTERN / IMAGING_PRINT_ACCESSION_PATTERN: formats OCR candidates must
    # have to count as identifiers (regular expressions, full match), e.g. "P\\d{8}" and "A\\d{10}".
    print_patient_id_pattern: str = r"[A-Z]{0,3}\d{5,12}"
    print_accession_pattern: str = r"[A-Z]{0,3}\d{6,14}"
    # IMAGING_PRINT_ISSUER_OF_PATIENT_ID: Issuer of Patient ID (0010,0021) written into matched films,
    # e.g. the hospital's code "HOSP-A" (as the worklist gives the modalities); empty = left out.
    print_issuer_of_patient_id: str = Field("", max_length=64)
    # IMAGING_PRINT_TIMEZONE: the zone of Study Date/Time written into films, e.g. Asia/Shanghai.
    print_timezone: str = "Asia/Shanghai"
    # IMAGING_PRINT_OCR_WINDOW_HOURS: studies active this long before the print time are candidates.
    print_ocr_window_hours: int = 36
    # IMAGING_PRINT_TESSERACT: the OCR engine binary.
    print_tesseract: str = "/usr/bin/tesseract"
    # IMAGING_PRINT_SHARE_MAX_DAYS: longest validity of a cloud-film share link (regional cloud spec).
    print_share_max_days: int = 30
    # IMAGING_PRINT_SHARE_MAX_ATTEMPTS: wrong identity checks before a share link locks.
    print_share_max_attempts: int = 5
    # IMAGING_PRINT_PUBLIC_BASE_URL: base of links printed in QR codes, e.g. https://imaging.hospital.cn
    print_public_base_url: str = "http://localhost:8080"
    # Self-service kiosks: each device is registered with a key of its own (/api/print/admin/kiosks,
    # header X-Kiosk-Key); the patient's slip carries a token issued at the desk (/api/print/slips).
    # IMAGING_PRINT_KIOSK_DEVICE_PER_MINUTE / IMAGING_PRINT_KIOSK_ADDRESS_PER_MINUTE: kiosk requests
    # one device / one client address may make per minute (Redis; more get 429 + Retry-After).
    print_kiosk_device_per_minute: int = Field(30, ge=1)
    print_kiosk_address_per_minute: int = Field(60, ge=1)
    # IMAGING_PRINT_SLIP_VALID_DAYS: how long a slip's token fetches films.
    print_slip_valid_days: int = Field(30, ge=1, le=365)
    # IMAGING_PRINT_ARCHIVE_AE_TITLE / _HOST / _PORT: the PACS matched films are sent to (C-STORE), e.g.
    # PACS at pacs.hospital.local:104; AE title unset = archive off (films are not queued).
    print_archive_ae_title: str | None = Field(None, max_length=16)
    print_archive_host: str = "localhost"
    print_archive_port: int = 104
    # IMAGING_PRINT_ARCHIVE_CALLING_AE: our AE title towards the PACS, e.g. PRINT_SCP; unset = IMAGING_PRINT_AE_TITLE.
    print_archive_calling_ae: str | None = Field(None, max_length=16)
    # IMAGING_PRINT_ARCHIVE_MAX_ATTEMPTS: sends tried before a film is marked failed (staff may retry it).
    print_archive_max_attempts: int = Field(8, ge=1)
    # IMAGING_PRINT_ARCHIVE_RETRY_SECONDS: wait after the first failed send, doubled after each next one
    # (30: 30 s, 1 min, 2 min ... the 8th attempt about an hour after the first).
    print_archive_retry_seconds: float = Field(30.0, gt=0)
    # IMAGING_PRINT_ARCHIVE_TIMEOUT: seconds to connect to the PACS and to wait for each of its answers.
    print_archive_timeout: float = Field(30.0, gt=0)

    def peer_modes(self) -> dict[str, str]:
        return {"dicom": self.peer_mode(self.print_peers)}
