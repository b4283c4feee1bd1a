"""Protocol adapters of the queue calling service (HTTP routes, DICOM, HL7): thin, calling the domain."""
