"""Domain logic of the registration service: no FastAPI, pynetdicom or hl7apy here."""
