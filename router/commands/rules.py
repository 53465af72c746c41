"""``omniroute rules …``: check, test and simulate rules files; print their JSON Schema;
publish them to a running omniroute (:mod:`router.commands.publish`).

``simulate --replay`` decides stored contacts again (:mod:`router.commands.replay`).

``main(argv)`` takes the arguments after ``rules`` and returns the exit code:
0 fine (warnings allowed), 1 problems found, 2 wrong usage.
Also runnable as ``python -m router.commands.rules check rules/``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from router.commands import publish
from router.commands.replay import main as replay
from router.rules.engine import Ruleset
from router.rules.fields import Catalog
from router.rules.jsonschema import rules_schema
from router.rules.loader import load
from router.rules.simulate import Simulator
from router.rules.testing import run_cases


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniroute rules", description="Check, test and simulate routing rules."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="report every problem in the rules files")
    check.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    test = commands.add_parser("test", help="run the tests written in the rules files")
    test.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    simulate = commands.add_parser(
        "simulate", help="decide every line of an NDJSON file, or replay stored contacts"
    )
    simulate.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    source = simulate.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="NDJSON input file ('-': stdin)")
    source.add_argument(
        "--replay",
        action="store_true",
        help="decide the stored contacts received since --since again; report what changes",
    )
    simulate.add_argument(
        "--output",
        help="write decisions here instead of stdout (with --replay: the changed contacts)",
    )
    simulate.add_argument("--trace", action="store_true", help="add each line's rule trace")
    simulate.add_argument("--since", help="--replay from: a time back from now (7d) or ISO time")
    simulate.add_argument("--until", help="--replay up to: as --since (default: now)")
    simulate.add_argument(
        "--config", type=Path, help="--replay: the service configuration (for the database)"
    )
    commands.add_parser("schema", help="print the JSON Schema of rules files")
    publish.add_parser(commands)
    return parser


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _load(paths: Sequence[Path], out: IO[str]) -> Ruleset | None:
    loaded = load(paths)
    for line in loaded.errors:
        print(line, file=out)
    for line in loaded.warnings:
        print(line.replace(": ", ": warning: ", 1), file=out)
    if loaded.ruleset is None:
        print(
            f"{_plural(len(loaded.errors), 'error')}, {_plural(len(loaded.warnings), 'warning')}",
            file=out,
        )
    return loaded.ruleset


def _check(paths: Sequence[Path]) -> int:
    ruleset = _load(paths, sys.stdout)
    if ruleset is None:
        return 1
    print(
        f"ok: ruleset {ruleset.version}: {_plural(len(ruleset.sources), 'file')}, "
        f"{_plural(len(ruleset.rules), 'rule')}, {_plural(len(ruleset.cases), 'test')}, "
        f"{_plural(len(ruleset.warnings), 'warning')}"
    )
    return 0


def _test(paths: Sequence[Path]) -> int:
    ruleset = _load(paths, sys.stdout)
    if ruleset is None:
        return 1
    count, failed = run_cases(ruleset)
    for line in failed:
        print(line)
    print(f"{count - len(failed)} passed, {len(failed)} failed (ruleset {ruleset.version})")
    return 1 if failed else 0


@contextlib.contextmanager
def _opened(name: str, mode: str, std: IO[bytes]) -> Iterator[IO[bytes]]:
    if name == "-":
        yield std
    else:
        with open(name, mode) as handle:
            yield handle


def _simulate(args: argparse.Namespace) -> int:
    if args.replay and (args.since is None or args.trace):
        print(
            "omniroute rules simulate: --replay needs --since (and takes no --trace)",
            file=sys.stderr,
        )
        return 2
    if not args.replay and (args.since or args.until or args.config):
        print(
            "omniroute rules simulate: --since, --until and --config go with --replay",
            file=sys.stderr,
        )
        return 2
    ruleset = _load(args.paths, sys.stderr)
    if ruleset is None:
        return 1
    if args.replay:
        return replay(
            ruleset, since=args.since, until=args.until, output=args.output, config=args.config
        )
    simulator = Simulator(ruleset, started=datetime.now(UTC), trace=args.trace)
    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        with (
            _opened(args.input, "rb", sys.stdin.buffer) as source,
            _opened(args.output or "-", "wb", sys.stdout.buffer) as sink,
        ):
            summary = simulator.run(source, sink, sys.stderr, progress=progress)
    except OSError as exc:
        print(f"cannot simulate: {exc}", file=sys.stderr)
        return 1
    rate = summary.lines / summary.seconds if summary.seconds else 0.0
    print(
        f"{summary.decided:,} decided, {summary.bad:,} bad lines, "
        f"{summary.seconds:.2f} s ({rate:,.0f} lines/s)",
        file=sys.stderr,
    )
    return 1 if summary.bad else 0


def _schema() -> int:
    catalog = Catalog(UTC)
    schema = rules_schema(catalog)
    sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def main(argv: list[str]) -> int:
    """Run ``omniroute rules`` with ``argv`` (the arguments after ``rules``)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "check":
        return _check(args.paths)
    if args.command == "test":
        return _test(args.paths)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "publish":
        return publish.run(args)
    return _schema()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
