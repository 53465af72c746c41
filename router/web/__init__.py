"""The HTTP layer: aiohttp app factory, handlers and middlewares."""

from router.web.app import create_app

__all__ = ["create_app"]
