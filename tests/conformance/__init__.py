"""Conformance of the platform to its published interface documents (HL7 v2, DICOM, FHIR)."""
