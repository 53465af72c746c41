"""``omniroute rules publish DIR --comment …``: publish rules files from a CI
pipeline to a running omniroute (``rules.source: database``) over its API.

The files are checked and their tests run here first (as ``rules test``), so
a broken edit fails the pipeline without a request; the service checks and
tests them again before it publishes (it may run a newer engine). The token
(scope ``rules:write``) is read from an environment variable, never from the
command line, where other users of the machine could read it; its name is
recorded as the author.

Exit codes: 0 published, 1 refused (problems, failing tests, a conflict with
``--parent``, or the service said no), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from router.rules.loader import build, rule_files
from router.rules.testing import run_cases

#: where the token is read from unless --token-env names another variable
TOKEN_ENV = "OMNIROUTE_TOKEN"
URL_ENV = "OMNIROUTE_URL"
TIMEOUT = 60.0


def add_parser(commands: Any) -> None:
    """The ``publish`` subcommand of ``omniroute rules``."""
    publish = commands.add_parser(
        "publish", help="check, test and publish rules files to a running omniroute"
    )
    publish.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    publish.add_argument("--comment", required=True, help="what changed and why (recorded)")
    publish.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"the service's base URL (default: ${URL_ENV})",
    )
    publish.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help=f"the environment variable holding the API token (default: {TOKEN_ENV})",
    )
    publish.add_argument(
        "--parent",
        help="the version the change was made on: refused if another was published since",
    )


def _files(paths: list[Path]) -> tuple[dict[str, str], list[str]]:
    files, problems = rule_files(paths)
    out: dict[str, str] = {}
    for file in files:
        if file.name in out:
            problems.append(f"{file}:1:1: another file is also named {file.name!r}")
            continue
        try:
            out[file.name] = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}:1:1: cannot read: {exc}")
    return out, problems


def _checked(files: dict[str, str]) -> bool:
    """Load the files and run their tests here, printing what is wrong."""
    loaded = build([(name, name, text) for name, text in sorted(files.items())])
    for line in loaded.errors:
        print(line)
    for line in loaded.warnings:
        print(line.replace(": ", ": warning: ", 1))
    ruleset = loaded.ruleset
    if loaded.errors or ruleset is None:
        print(f"{len(loaded.errors)} errors: not published")
        return False
    count, failed = run_cases(ruleset)
    for line in failed:
        print(line)
    if failed:
        print(f"{count - len(failed)} passed, {len(failed)} failed: not published")
        return False
    print(f"ok: ruleset {ruleset.version}: {count} tests passed")
    return True


async def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
        session.post(
            url.rstrip("/") + "/v1/rules/versions",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as response,
    ):
        text = await response.read()
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            answer = {"message": text.decode(errors="replace")[:500]}
        return response.status, answer if isinstance(answer, dict) else {"message": str(answer)}


def run(args: argparse.Namespace) -> int:
    if not args.url:
        print(f"omniroute rules publish: --url (or ${URL_ENV}) is required", file=sys.stderr)
        return 2
    token = os.environ.get(args.token_env)
    if not token:
        print(
            f"omniroute rules publish: the environment variable {args.token_env} "
            "holds no API token",
            file=sys.stderr,
        )
        return 2
    files, problems = _files(args.paths)
    for line in problems:
        print(line)
    if problems or not _checked(files):
        return 1
    body: dict[str, Any] = {"files": files, "comment": args.comment}
    if args.parent:
        body["parent"] = args.parent
    try:
        status, answer = asyncio.run(_post(args.url, token, body))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"cannot reach {args.url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if status == 201:
        print(
            f"published {answer['version']} (publication {answer['publication']}, "
            f"parent {answer['parent'] or 'none'}, author {answer['author']})"
        )
        return 0
    print(f"not published: {status} {answer.get('message', '')}")
    for field in answer.get("fields", []):
        print(f"  {field.get('field')}: {field.get('reason')}")
    return 1
