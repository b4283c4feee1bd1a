"""Domain logic of the worklist service: no FastAPI, pynetdicom or hl7apy here."""
