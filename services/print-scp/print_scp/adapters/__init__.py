"""Protocol adapters of the print scp service (HTTP routes, DICOM, HL7): thin, calling the domain."""
