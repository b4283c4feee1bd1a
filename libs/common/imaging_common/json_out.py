"""The base of the services' JSON response models (their adapters/schemas.py).

A model names the fields clients read; `extra="allow"` passes on any other column of a row as it is,
so a column added later still reaches clients (a response model otherwise drops what it does not name).
"""

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")
