"""Domain logic of the scheduling service: no FastAPI, pynetdicom or hl7apy here."""
