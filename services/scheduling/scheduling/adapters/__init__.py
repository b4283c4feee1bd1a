"""Protocol adapters of the scheduling service (HTTP routes, DICOM, HL7): thin, calling the domain."""
