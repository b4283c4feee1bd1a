"""Protocol adapters of the registration service (HTTP routes, DICOM, HL7): thin, calling the domain."""
