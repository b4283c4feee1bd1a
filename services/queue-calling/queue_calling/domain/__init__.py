"""Domain logic of the queue calling service: no FastAPI, pynetdicom or hl7apy here."""
