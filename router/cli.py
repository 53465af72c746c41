"""The ``omniroute`` command: ``serve``, ``db migrate``, ``rules …``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog

from router.errors import ConfigError, RouterError
from router.logs import configure
from router.settings import Settings, load_settings

log = structlog.get_logger("omniroute")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, object]] = {}
    if getattr(args, "host", None):
        overrides.setdefault("http", {})["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides.setdefault("http", {})["port"] = args.port
    settings = load_settings(args.config, overrides=overrides)
    configure(settings.log)
    return settings


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from router.web import create_app

    settings = _settings(args)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        pass
    if settings.http.host not in ("127.0.0.1", "localhost", "::1"):
        for adapter in settings.adapters:
            if any(s.startswith("demo-") for s in adapter.secrets):
                log.warning(
                    "demo_secret_in_use",
                    adapter=adapter.name,
                    hint="replace the demo secrets before exposing the service",
                )
    app = create_app(settings)
    log.info("serving", host=settings.http.host, port=settings.http.port)
    web.run_app(
        app,
        host=settings.http.host,
        port=settings.http.port,
        shutdown_timeout=settings.http.shutdown_timeout,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


async def _migrate(settings: Settings) -> list[str]:
    from router.store import db, migrations

    async with db.database(settings.database) as url:
        pool = await db.connect_pool(url, settings.database)
        try:
            async with pool.acquire() as con:
                return await migrations.migrate(con)
        finally:
            await pool.close()


def db_migrate(args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(_settings(args)))
    print(f"{len(applied)} migration(s) applied" + (": " + ", ".join(applied) if applied else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omniroute", description="Omni-channel contact routing.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config",
            type=Path,
            default=None,
            help="config file (default: $OMNIROUTE_CONFIG or config/omniroute.yaml)",
        )
        return sp

    s = with_config(sub.add_parser("serve", help="run the HTTP service"))
    s.add_argument("--host", help="listen address (overrides http.host)")
    s.add_argument("--port", type=int, help="listen port (overrides http.port)")
    s.set_defaults(func=serve)

    d = sub.add_parser("db", help="database administration")
    dsub = d.add_subparsers(dest="db_command", required=True)
    with_config(dsub.add_parser("migrate", help="apply pending migrations")).set_defaults(
        func=db_migrate
    )

    sub.add_parser(
        "rules", help="check, test, simulate rules; print their JSON Schema", add_help=False
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "rules":
        from router.rules.cli import main as rules_main

        return rules_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, RouterError) as exc:
        print(f"omniroute: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
