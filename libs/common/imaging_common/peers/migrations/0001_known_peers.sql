-- Known peers of a service's protocol ports (issue 18 item 1): who may open a DICOM association or
-- an MLLP connection. Held in the schema of the service that owns the port (worklist: modalities;
-- print-scp: printers' callers; registration: the HIS; critical-values: clinician systems).
CREATE TABLE known_peer (
    peer_id          text PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('modality', 'printer', 'his', 'clinician-system')),
    name             text NOT NULL DEFAULT '',
    -- DICOM: the calling AE title it uses (modality, printer's SCU)
    ae_title         text,
    -- HL7: the MSH-3 / MSH-4 it sends (NULL facility = any)
    hl7_application  text,
    hl7_facility     text,
    -- addresses it connects from: IP addresses or CIDR networks (e.g. 10.1.20.0/24)
    addresses        text[] NOT NULL,
    -- sha256 (hex) of the DER certificate it must present over TLS; NULL = any certificate the CA signed
    cert_sha256      text,
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(addresses) > 0),
    CHECK (kind NOT IN ('modality', 'printer') OR ae_title IS NOT NULL),
    CHECK (kind NOT IN ('his', 'clinician-system') OR hl7_application IS NOT NULL)
);
CREATE INDEX known_peer_ae_title ON known_peer (ae_title) WHERE ae_title IS NOT NULL;
