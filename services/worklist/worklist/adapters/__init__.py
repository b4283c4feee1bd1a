"""Protocol adapters of the worklist service (HTTP routes, DICOM, HL7): thin, calling the domain."""
