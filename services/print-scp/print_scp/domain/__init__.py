"""Domain logic of the print scp service: no FastAPI, pynetdicom or hl7apy here."""
