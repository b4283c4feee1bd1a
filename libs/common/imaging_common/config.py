"""Settings shared by every service, read only from environment variables.

Each value carries its default (one that works on a developer machine where PostgreSQL,
RabbitMQ and Redis listen on localhost) and the variable that sets it. A service subclasses
`CommonSettings` with its own values (AE titles, ports) in its `settings.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGING_", extra="ignore")

    # "production" refuses development conveniences (generated keys, placeholder secrets).
    env: Literal["development", "production"] = "development"

    # DATABASE_URL, e.g. postgresql://imaging:secret@db.hospital.local:5432/imaging
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/imaging",
        validation_alias=AliasChoices("DATABASE_URL", "IMAGING_DATABASE_URL"),
    )
    # AMQP_URL, e.g. amqp://imaging:secret@mq.hospital.local:5672/imaging
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=AliasChoices("AMQP_URL", "IMAGING_AMQP_URL"),
    )
    # REDIS_URL, e.g. redis://cache.hospital.local:6379/0
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "IMAGING_REDIS_URL"),
    )
    # IMAGING_DATA_DIR: films, generated dev keys; e.g. /var/lib/imaging
    data_dir: Path = Path("var")

    # IMAGING_NAMESPACE prefixes the RabbitMQ exchange/queues and Redis keys, so two
    # installations (or two test runs) can share one broker and cache without crosstalk.
    namespace: str = "imaging"

    # IMAGING_HTTP_HOST / IMAGING_HTTP_PORT: where the HTTP API and pages listen.
    http_host: str = "0.0.0.0"
    http_port: int = 8080

    # IMAGING_DB_POOL_MAX: connections per service pool (seven pools in the all-in-one run).
    db_pool_max: int = 5

    # IMAGING_LOG_LEVEL, IMAGING_LOG_JSON: structured JSON logs by default.
    log_level: str = "INFO"
    log_json: bool = True

    # Seconds a dependency check may take before readiness calls it down.
    readiness_timeout: float = 2.0
