"""The store's own configuration: the ``database`` section of the service's
settings (``router/settings.py`` holds it as it is), so that the store needs
nothing from the rest of the configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DatabaseSettings(BaseModel):
    """Where the database is and how the pool to it behaves."""

    model_config = ConfigDict(extra="forbid")

    #: a PostgreSQL URL; without one, an embedded server in ``embedded_dir``
    url: str | None = None
    embedded_dir: Path = Path("data/postgres")
    pool_min: int = Field(default=2, ge=1)
    pool_max: int = Field(default=10, ge=1)
    command_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    #: batch the database work of concurrent contacts (group commit)
    batching: bool = True
