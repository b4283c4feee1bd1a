"""Domain logic of the reporting service: no FastAPI, pynetdicom or hl7apy here."""
