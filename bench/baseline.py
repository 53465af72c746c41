"""The bare aiohttp baseline: parse the JSON body, answer JSON. No signature
check, no database. ``python bench/baseline.py --port 8091``"""

from __future__ import annotations

import argparse

import orjson
import uvloop
from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    answer = {"contacts": [{"id": body.get("id"), "queue": "general", "duplicate": False}]}
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8091)
    args = p.parse_args()
    uvloop.install()
    app = web.Application()
    app.router.add_post("/v1/webhooks/{adapter}", handle)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
