"""The ``omniroute`` command: ``serve``, ``db migrate``, ``rules …``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from router.errors import ConfigError, RouterError
from router.logs import configure
from router.settings import Settings, load_settings

log = structlog.get_logger("omniroute")
T = TypeVar("T")


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
    if args.workers > 1:
        from router.workers import supervise

        argv = ["serve"]
        if args.config:
            argv += ["--config", str(args.config)]
        if args.host:
            argv += ["--host", args.host]
        if args.port is not None:
            argv += ["--port", str(args.port)]
        return supervise(settings, args.workers, argv)
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
        reuse_port=settings.http.reuse_port or None,
    )
    return 0


async def with_pool(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(pool)`` on a migrated database (embedded or configured)."""
    from router.store import db, migrations

    async with db.database(settings.database) as url:
        pool = await db.connect_pool(url, settings.database)
        try:
            async with pool.acquire() as con:
                await migrations.migrate(con)
            return await work(pool)
        finally:
            await pool.close()


def db_migrate(args: argparse.Namespace) -> int:
    from router.store import migrations

    async def work(pool: Any) -> list[str]:
        async with pool.acquire() as con:
            return await migrations.migrate(con)

    settings = _settings(args)
    names = [name for _, name, _ in migrations.available()]
    asyncio.run(with_pool(settings, work))
    print(f"schema up to date ({len(names)} migrations, last {names[-1]})")
    return 0


def customers_import(args: argparse.Namespace) -> int:
    from router import importer

    settings = _settings(args)
    path: Path = args.file
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")

    async def work(pool: Any) -> importer.Report:
        return await importer.run(
            pool, path, normalizer=settings.identity.normalizer(), batch=args.batch
        )

    report = asyncio.run(with_pool(settings, work))
    rate = (report.imported + report.rejected) / report.seconds if report.seconds else 0
    print(
        f"{report.imported} imported, {report.rejected} rejected"
        + (f" (see {path.name}.rejected.ndjson)" if report.rejected else "")
        + (f", {report.skipped} lines done by an earlier run" if report.skipped else "")
        + f", {report.seconds:.1f} s ({rate:,.0f} lines/s)"
    )
    return 1 if report.rejected else 0


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
    s.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1)"
    )
    s.set_defaults(func=serve)

    d = sub.add_parser("db", help="database administration")
    dsub = d.add_subparsers(dest="db_command", required=True)
    with_config(dsub.add_parser("migrate", help="apply pending migrations")).set_defaults(
        func=db_migrate
    )

    c = sub.add_parser("customers", help="customer administration")
    csub = c.add_subparsers(dest="customers_command", required=True)
    imp = with_config(csub.add_parser("import", help="bulk import of a CRM export (NDJSON)"))
    imp.add_argument("file", type=Path, help="one customer per line, as POST /v1/customers")
    imp.add_argument("--batch", type=int, default=20_000, help="lines per transaction")
    imp.set_defaults(func=customers_import)

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
