"""What every handler needs, built once per app and kept under ``RUNTIME``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from adapters.base import Adapter
from router.errors import StoreUnavailable
from router.live_rules import LiveRules
from router.metrics import Metrics
from router.pipeline import Pipeline
from router.recognition import Recognition
from router.settings import Settings
from router.store import Store
from router.store.instances import Instance
from router.web.auth import Tokens


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    rules: LiveRules
    tokens: Tokens
    adapters: dict[str, Adapter]
    #: what a name that is not configured answers as (see ``webhooks.deliver``)
    unknown_adapter: Adapter
    instance: Instance
    store_: Store | None = None
    recognition_: Recognition | None = None
    pipeline_: Pipeline | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def store(self) -> Store:
        if self.store_ is None:
            raise StoreUnavailable("the service is starting")
        return self.store_

    @property
    def recognition(self) -> Recognition:
        if self.recognition_ is None:
            raise StoreUnavailable("the service is starting")
        return self.recognition_

    @property
    def pipeline(self) -> Pipeline:
        if self.pipeline_ is None:
            raise StoreUnavailable("the service is starting")
        return self.pipeline_


RUNTIME = web.AppKey("runtime", Runtime)
