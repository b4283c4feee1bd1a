"""Reporting: Report workflow, structured reports, signing, HL7/FHIR delivery."""
