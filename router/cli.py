"""The ``omniroute`` command: ``serve``, ``db migrate``, ``rules …``."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
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


def parse_age(text: str) -> tuple[int, int]:
    """``13mo``, ``2y``, ``400d``, ``8w`` -> (months, days)."""
    match = re.fullmatch(r"\s*(\d+)\s*(mo|y|d|w)\s*", text)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 13mo, 2y, 400d or 8w")
    n, unit = int(match[1]), match[2]
    return {"mo": (n, 0), "y": (12 * n, 0), "d": (0, n), "w": (0, 7 * n)}[unit]


async def _retention(settings: Settings, months: int, days: int, dry_run: bool) -> str:
    from router.store import db, retention

    cutoff = retention.months_before(datetime.now(UTC), months) - timedelta(days=days)
    async with db.database(settings.database) as url:
        pool = await db.connect_pool(url, settings.database)
        try:
            report = await retention.apply(pool, cutoff, dry_run=dry_run)
        finally:
            await pool.close()
    if report is None:
        return "retention is being applied by another process; nothing done"
    verb = "would drop" if dry_run else "dropped"
    lines = [f"cutoff {cutoff.isoformat(timespec='seconds')}"]
    lines += [
        f"{verb} {p.name} ({p.start:%Y-%m-%d} .. {p.end:%Y-%m-%d}, ~{p.rows} rows)"
        for p in report.dropped
    ]
    lines += [f"skipped {name}: busy, retried at the next run" for name in report.skipped]
    lines.append(
        f"{'would delete' if dry_run else 'deleted'} {report.default_rows} expired "
        "row(s) from the default partition"
    )
    if not dry_run:
        lines.append(f"deleted {report.keys} idempotency key(s), {report.events} event(s)")
    return "\n".join(lines)


def db_retention(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.older_than is not None:
        months, days = args.older_than
    elif settings.reporting.retention_months is not None:
        months, days = settings.reporting.retention_months, 0
    else:
        print("omniroute: give --older-than or set reporting.retention_months", file=sys.stderr)
        return 2
    print(asyncio.run(_retention(settings, months, days, args.dry_run)))
    return 0


async def _rollup(settings: Settings, since: datetime | None, until: datetime | None) -> str:
    from router.store import db, rollups

    async with db.database(settings.database) as url:
        pool = await db.connect_pool(url, settings.database)
        try:
            if since is None:
                done = await rollups.refresh(pool)
                return f"rolled up {done.hours if done else 0} hour(s)"
            hours = await rollups.rebuild(pool, since, until or datetime.now(UTC))
            return f"rebuilt {hours} hour(s)"
        finally:
            await pool.close()


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def db_rollup(args: argparse.Namespace) -> int:
    print(asyncio.run(_rollup(_settings(args), args.since, args.until)))
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
    r = with_config(dsub.add_parser("retention", help="drop records older than an age"))
    r.add_argument(
        "--older-than",
        type=parse_age,
        default=None,
        metavar="AGE",
        help="e.g. 13mo, 2y, 400d, 8w (default: reporting.retention_months)",
    )
    r.add_argument("--dry-run", action="store_true", help="show what would be dropped")
    r.set_defaults(func=db_retention)
    u = with_config(
        dsub.add_parser("rollup", help="bring the summary rollups up to date, or rebuild a range")
    )
    u.add_argument("--since", type=_time, help="rebuild the hours from this time (ISO 8601)")
    u.add_argument("--until", type=_time, help="... up to this time (default: now)")
    u.set_defaults(func=db_rollup)

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
