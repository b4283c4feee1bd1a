"""Protocol adapters of the reporting service (HTTP routes, DICOM, HL7): thin, calling the domain."""
