"""Settings every service shares, read from the environment by pydantic-settings.

Each service subclasses :class:`MeshSettings` with its own fields. In production mode
(``MP3MESH_ENV=production``) nothing secret has a working default: a service refuses
to start instead of running with a value everyone knows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MeshSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    mp3mesh_env: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # MongoDB: GridFS buckets `videos` and `mp3s`, and the `jobs` collection.
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "mp3mesh"

    # RabbitMQ: the job pipeline.
    amqp_url: str = (
        "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=30&blocked_connection_timeout=60"
    )
    video_queue: str = "video"
    mp3_queue: str = "mp3"

    @property
    def production(self) -> bool:
        return self.mp3mesh_env == "production"

    @model_validator(mode="after")
    def _no_guest_broker_in_production(self) -> MeshSettings:
        if self.production and "guest:guest@" in self.amqp_url:
            raise ValueError("AMQP_URL uses the guest account; set real broker credentials")
        return self
