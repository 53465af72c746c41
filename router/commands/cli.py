"""The ``omniroute`` command: ``serve``, ``db migrate``, ``rules …``."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from router import exposure
from router.commands import agents, importer
from router.commands.database import with_store
from router.commands.rules import main as rules_main
from router.commands.workers import supervise
from router.errors import ConfigError, RouterError
from router.logs import configure
from router.recognition import identity
from router.settings import Settings, load_settings
from router.times import parse_time

if TYPE_CHECKING:
    from router.store import Store

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
    # imported here, so that the other commands start without the HTTP stack
    from router.web import create_app, server

    settings = _settings(args)
    exposure.check(settings)  # before anything starts, in the supervisor and each worker
    if args.workers > 1:
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
    asyncio.run(server.serve(create_app(settings), settings))
    return 0


def db_migrate(args: argparse.Namespace) -> int:
    from router.store import migrations, open_store

    async def migrate() -> None:
        async with open_store(settings.database):  # opening it migrates it
            pass

    settings = _settings(args)
    names = [name for _, name, _ in migrations.available()]
    asyncio.run(migrate())
    print(f"schema up to date ({len(names)} migrations, last {names[-1]})")
    return 0


def customers_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path: Path = args.file
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")

    async def work(store: Store) -> importer.Report:
        return await importer.run(
            store, path, normalizer=identity.configured(settings.identity), batch=args.batch
        )

    report = asyncio.run(with_store(settings, work))
    rate = (report.imported + report.rejected) / report.seconds if report.seconds else 0
    print(
        f"{report.imported} imported, {report.rejected} rejected"
        + (f" (see {path.name}.rejected.ndjson)" if report.rejected else "")
        + (f", {report.skipped} lines done by an earlier run" if report.skipped else "")
        + f", {report.seconds:.1f} s ({rate:,.0f} lines/s)"
    )
    return 1 if report.rejected else 0


def agents_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path: Path = args.file
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    fmt = agents.format_of(path, args.format)
    if fmt is None:
        raise ConfigError(f"{path}: give --format ndjson or csv (or name it .ndjson, .csv)")

    async def work(store: Store) -> agents.Report:
        return await agents.run(store, path, fmt)

    report = asyncio.run(with_store(settings, work))
    for rejected in report.rejected:
        for line in rejected.lines(path):
            print(line, file=sys.stderr)
    print(
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.rejected)} rejected"
    )
    return 1 if report.rejected else 0


def parse_age(text: str) -> tuple[int, int]:
    """``13mo``, ``2y``, ``400d``, ``8w`` -> (months, days)."""
    match = re.fullmatch(r"\s*(\d+)\s*(mo|y|d|w)\s*", text)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 13mo, 2y, 400d or 8w")
    n, unit = int(match[1]), match[2]
    return {"mo": (n, 0), "y": (12 * n, 0), "d": (0, n), "w": (0, 7 * n)}[unit]


async def _retention(settings: Settings, months: int, days: int, dry_run: bool) -> str:
    from router.store import open_store, retention

    cutoff = retention.months_before(datetime.now(UTC), months) - timedelta(days=days)
    async with open_store(settings.database, migrate=False) as store:
        report = await store.reporting.apply_retention(cutoff, dry_run=dry_run)
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
    from router.store import open_store

    async with open_store(settings.database, migrate=False) as store:
        if since is None:
            done = await store.reporting.refresh_rollups()
            return f"rolled up {done.hours if done else 0} hour(s)"
        hours = await store.reporting.rebuild_rollups(since, until or datetime.now(UTC))
        return f"rebuilt {hours} hour(s)"


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    s.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1)"
    )
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

    c = sub.add_parser("customers", help="customer administration")
    csub = c.add_subparsers(dest="customers_command", required=True)
    imp = with_config(csub.add_parser("import", help="bulk import of a CRM export (NDJSON)"))
    imp.add_argument("file", type=Path, help="one customer per line, as POST /v1/customers")
    imp.add_argument("--batch", type=int, default=20_000, help="lines per transaction")
    imp.set_defaults(func=customers_import)

    a = sub.add_parser("agents", help="agent administration")
    asub = a.add_subparsers(dest="agents_command", required=True)
    aimp = with_config(
        asub.add_parser("import", help="create or update agents in bulk (NDJSON or CSV)")
    )
    aimp.add_argument("file", type=Path, help="one agent per line (see docs/agents.md)")
    aimp.add_argument(
        "--format", choices=("ndjson", "csv"), default=None, help="default: by the extension"
    )
    aimp.set_defaults(func=agents_import)

    sub.add_parser(
        "rules", help="check, test, simulate rules; print their JSON Schema", add_help=False
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "rules":
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
