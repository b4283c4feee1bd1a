"""Protocol adapters of the critical values service (HTTP routes, DICOM, HL7): thin, calling the domain."""
