"""The store's own configuration: the ``database`` section of the service's
settings (``router/settings.py`` holds it as it is), so that the store needs
nothing from the rest of the configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    #: a streaming replica (hot standby) of the database for the reporting
    #: reads (history pages, exports, the summary); ``env:NAME`` reads it from
    #: the environment. Routing and every write never use it (docs/operations.md)
    replica_url: str | None = None
    #: connections to the replica, at most (opened as the reads need them)
    replica_pool_max: int = Field(default=5, ge=1)
    #: a replica further behind than this is not read from
    max_lag_seconds: float = Field(default=30.0, gt=0)
    #: what reporting reads do while the replica is away or too far behind:
    #: read the primary (``primary``) or answer 503 ``replica_unavailable``
    #: (``refuse``: the primary is kept for routing whatever happens)
    replica_fallback: Literal["primary", "refuse"] = "primary"

    @field_validator("replica_url")
    @classmethod
    def _from_environment(cls, value: str | None) -> str | None:
        if value is None or not value.startswith("env:"):
            return value or None
        name = value[4:]
        found = os.environ.get(name)
        if found is None:
            raise ValueError(f"environment variable {name} is not set")
        return found or None
