"""Domain logic of the critical values service: no FastAPI, pynetdicom or hl7apy here."""
