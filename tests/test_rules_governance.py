"""Rules governance: a ruleset whose own tests fail never goes live (at reload,
at start, at publish); publishing with ``rules.source: database`` (the audit
trail, files, diffs, rollback, the parent check, scopes, bounded bodies);
every instance on the database switching to a published version within 2 s.

The publishing tests run on a database of this module (``own_database``):
what is published there is the module's own."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from bench.faults import copy_rules
from router.errors import ConfigError
from router.rules.loader import version_of
from router.runtime import open_runtime
from router.settings import SCOPES
from router.store.rulesets import publish
from tests.support.api import Api
from tests.support.apps import app_on, base_url, eventually, served_version
from tests.support.databases import new_database
from tests.support.seed import pool as store_pool
from tests.support.settings import READ_TOKEN, ROOT, TOKEN, make_settings

VIEWER = "test-token-rules-viewer"
#: every scope, and a token that may read the rules but not publish them
TOKENS = {
    "tokens": [
        {"name": "all", "token": TOKEN, "scopes": list(SCOPES)},
        {"name": "viewer", "token": VIEWER, "scopes": ["rules:read"]},
    ],
    "failed_auth_limit": 0,
}
#: the test in rules/00-queues.yaml that the broken edits below make fail
CHAT_TEST = "a chat with nothing special goes to the chat team"
CHAT_EXPECT = "expect: {queue: chat-general, rule: null, priority: 50, sla: 2m}"
BROKEN_EXPECT = "expect: {queue: email-general, rule: null, priority: 50, sla: 2m}"


def shipped() -> dict[str, str]:
    """The repository's rules files, by name."""
    return {p.name: p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}


def failing_test_line() -> int:
    """The line of the chat test's name in rules/00-queues.yaml."""
    lines = (ROOT / "rules" / "00-queues.yaml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if CHAT_TEST in line)


def with_failing_test(files: dict[str, str]) -> dict[str, str]:
    """``files`` with the chat test expecting the email queue (it fails)."""
    assert CHAT_EXPECT in files["00-queues.yaml"]
    return {**files, "00-queues.yaml": files["00-queues.yaml"].replace(CHAT_EXPECT, BROKEN_EXPECT)}


def edited(files: dict[str, str], marker: str) -> dict[str, str]:
    """A valid edit: a comment changes the version."""
    return {**files, "10-routing.yaml": files["10-routing.yaml"] + f"\n# {marker}\n"}


async def send(api: Api, method: str, path: str, body: Any, token: str = TOKEN) -> ClientResponse:
    return await api.send(method, path, body, token=token)


async def answer(response: ClientResponse, status: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, (response.status, text)
    body: dict[str, Any] = await response.json()
    return body


# -- tests that fail keep a version from going live (files) -------------------


async def test_a_reload_whose_tests_fail_is_refused_naming_the_test(
    database_url: str, tmp_path: Path
) -> None:
    rules = copy_rules(tmp_path)
    async with app_on(database_url, rules={"paths": [str(rules)], "watch": True}) as api:
        before = await served_version(api)
        queues = rules / "00-queues.yaml"
        queues.write_text(queues.read_text().replace(CHAT_EXPECT, BROKEN_EXPECT))

        async def ready() -> dict[str, Any]:
            body: dict[str, Any] = await (await api.client.get("/readyz")).json()
            return body

        body = await eventually(ready, lambda b: bool(b.get("rules_reload_errors")))
        assert body["ruleset"] == before  # the previous version keeps serving
        [problem] = body["rules_reload_errors"]
        line = failing_test_line()
        assert problem.startswith(f"{queues}:{line}:")
        assert f"test {CHAT_TEST!r}" in problem
        assert "expected queue 'email-general', got 'chat-general'" in problem
        rules_body = await answer(await api.get("/v1/rules"), 200)
        assert rules_body["version"] == before
        assert rules_body["reload_errors"] == [problem]
        metrics = await (await api.get("/metrics")).text()
        assert re.search(r'omniroute_rules_tests_refused_total\{at="reload"\} 1\.0', metrics)
        assert "omniroute_rules_reload_failures_total 1.0" in metrics

        # fixed again: the fixed edit goes live and the refusal is cleared
        queues.write_text(queues.read_text().replace(BROKEN_EXPECT, CHAT_EXPECT) + "\n# fixed\n")
        body = await eventually(ready, lambda b: b["ruleset"] != before)
        assert "rules_reload_errors" not in body


async def test_a_service_whose_rules_tests_fail_does_not_start(
    database_url: str, tmp_path: Path
) -> None:
    rules = copy_rules(tmp_path)
    queues = rules / "00-queues.yaml"
    queues.write_text(queues.read_text().replace(CHAT_EXPECT, BROKEN_EXPECT))
    settings = make_settings(database_url, rules={"paths": [str(rules)]})
    with pytest.raises(ConfigError) as raised:
        async with open_runtime(settings):
            pass
    message = raised.value.message
    assert message.startswith("the rules files fail their tests:")
    assert f"{queues}:{failing_test_line()}:" in message
    assert f"test {CHAT_TEST!r}: expected queue 'email-general', got 'chat-general'" in message


async def test_publishing_is_refused_while_the_source_is_files(api: Api) -> None:
    body = {"files": shipped(), "comment": "try"}
    refused = await answer(await send(api, "POST", "/v1/rules/versions", body), 409)
    assert refused["fields"] == [
        {"field": "rules.source", "reason": "is files: publishing is refused"}
    ]
    version = await served_version(api)
    path = f"/v1/rules/versions/{version}/publish"
    await answer(await send(api, "POST", path, {"comment": "again"}), 409)


# -- publishing (rules.source: database) --------------------------------------


@pytest.fixture(scope="module")
async def pair(own_database: str) -> AsyncIterator[tuple[Api, Api]]:
    """Two instances serving the published version of the module's database;
    the first one to start publishes the repository's rules ("initial")."""
    rules = {"paths": [str(ROOT / "rules")], "watch": False, "source": "database"}
    async with (
        app_on(own_database, rules=rules, api=TOKENS) as a,
        app_on(own_database, rules=rules, api=TOKENS) as b,
    ):
        yield a, b


async def current(api: Api) -> str:
    body = await answer(await api.get("/v1/rules/versions", limit=1), 200)
    version: str = body["published"]
    return version


async def test_the_first_start_publishes_the_files_as_initial(pair: tuple[Api, Api]) -> None:
    a, b = pair
    trail = await answer(await a.get("/v1/rules/versions", limit=500), 200)
    first = trail["versions"][-1]
    assert first["author"] == "start-up" and first["comment"] == "initial"
    assert first["parent"] is None and first["publication"] == 1
    assert trail["source"] == "database"
    stored = await answer(await a.get(f"/v1/rules/versions/{first['version']}"), 200)
    assert stored["files"] == shipped()
    ready = await (await b.client.get("/readyz")).json()
    assert ready["rules_source"] == "database"


async def test_publish_switches_both_instances_within_two_seconds(
    pair: tuple[Api, Api],
) -> None:
    a, b = pair
    parent = await current(a)
    assert await served_version(b) == parent
    files = edited(shipped(), f"switch {time.time()}")
    started = time.monotonic()
    body = await answer(
        await send(a, "POST", "/v1/rules/versions", {
            "files": files, "comment": "a comment line", "parent": parent}),
        201,
    )  # fmt: skip
    version = body["version"]
    assert version != parent
    assert body["serving"] == version  # the instance that published serves it at once
    assert body["author"] == "all" and body["parent"] == parent
    assert body["comment"] == "a comment line"
    await eventually(lambda: served_version(b), lambda v: v == version, timeout=2.0)
    switched = time.monotonic() - started
    assert switched < 2.0, switched
    # both report it: the heartbeat (GET /v1/rules lists every instance)
    listed = await answer(await b.get("/v1/rules"), 200)
    assert listed["version"] == version and listed["source"] == "database"

    async def serving() -> set[str]:
        body = await answer(await a.get("/v1/rules"), 200)
        return {i["ruleset"] for i in body["instances"]}

    await eventually(serving, lambda versions: versions == {version}, timeout=2.0)


async def test_a_publication_whose_tests_fail_is_refused_naming_the_test(
    pair: tuple[Api, Api],
) -> None:
    a, b = pair
    before = await current(a)
    files = with_failing_test(shipped())
    refused = await answer(
        await send(a, "POST", "/v1/rules/versions", {"files": files, "comment": "broken"}), 422
    )
    assert refused["error"] == "rules_rejected"
    [field] = refused["fields"]
    assert field["field"] == "files.00-queues.yaml"
    line = failing_test_line()
    assert field["reason"].startswith(f"00-queues.yaml:{line}:")
    assert (
        f"test {CHAT_TEST!r}: expected queue 'email-general', got 'chat-general'"
        in (field["reason"])
    )
    assert await current(a) == before  # nothing was published
    assert await served_version(a) == await served_version(b) == before
    metrics = await (await a.get("/metrics")).text()
    assert re.search(r'omniroute_rules_tests_refused_total\{at="publish"\} 1\.0', metrics)


async def test_a_publication_that_does_not_load_names_the_file_and_line(
    pair: tuple[Api, Api],
) -> None:
    a, _ = pair
    files = {**shipped(), "20-more.yaml": "rules:\n  - name: x\n    route: {queue: nowhere}\n"}
    refused = await answer(
        await send(a, "POST", "/v1/rules/versions", {"files": files, "comment": "bad"}), 422
    )
    assert refused["fields"], refused
    assert all(f["field"] == "files.20-more.yaml" for f in refused["fields"])
    assert any(f["reason"].startswith("20-more.yaml:3:") for f in refused["fields"]), refused


async def test_a_stale_parent_is_a_conflict(pair: tuple[Api, Api]) -> None:
    a, _ = pair
    parent = await current(a)
    ok = {"files": edited(shipped(), f"one {time.time()}"), "comment": "one", "parent": parent}
    await answer(await send(a, "POST", "/v1/rules/versions", ok), 201)
    now = await current(a)
    late = {"files": edited(shipped(), f"two {time.time()}"), "comment": "two", "parent": parent}
    refused = await answer(await send(a, "POST", "/v1/rules/versions", late), 409)
    assert refused["error"] == "publish_conflict"
    assert refused["fields"] == [{"field": "parent", "reason": f"the published version is {now}"}]
    assert await current(a) == now


async def test_the_trail_pages_newest_first_and_diff_and_rollback(
    pair: tuple[Api, Api],
) -> None:
    a, b = pair
    old = await current(a)
    files = edited(shipped(), f"trail {time.time()}")
    new = await answer(
        await send(a, "POST", "/v1/rules/versions", {"files": files, "comment": "for the diff"}),
        201,
    )
    # the trail, newest first, a page at a time
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await answer(await a.get("/v1/rules/versions", **params), 200)
        seen += page["versions"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    numbers = [v["publication"] for v in seen]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    assert seen[0]["version"] == new["version"] and seen[0]["current"] is True
    assert seen[0]["parent"] == old
    assert [v["current"] for v in seen].count(True) == sum(
        v["version"] == new["version"] for v in seen
    )

    # the diff: one file changed, a unified diff of it
    diff = await answer(await a.get(f"/v1/rules/versions/{old}/diff/{new['version']}"), 200)
    [changed] = diff["files"]
    assert changed["file"] == "10-routing.yaml" and changed["status"] == "changed"
    assert changed["diff"].startswith(f"--- {old}/10-routing.yaml\n+++ ")
    assert "+# trail " in changed["diff"]
    text = await a.get(f"/v1/rules/versions/{old}/diff/{new['version']}", format="text")
    assert text.status == 200 and (await text.text()) == changed["diff"]

    # rollback: the earlier version published again, a new entry of the trail
    back = await answer(
        await send(a, "POST", f"/v1/rules/versions/{old}/publish", {"comment": "roll back"}),
        201,
    )
    assert back["version"] == old and back["parent"] == new["version"]
    assert back["publication"] > new["publication"] and back["comment"] == "roll back"
    await eventually(lambda: served_version(b), lambda v: v == old, timeout=2.0)
    stored = await answer(await a.get(f"/v1/rules/versions/{old}"), 200)
    assert back["publication"] in [p["publication"] for p in stored["publications"]]


async def test_scopes_and_bounds(pair: tuple[Api, Api]) -> None:
    a, _ = pair
    version = await current(a)
    body = {"files": shipped(), "comment": "no"}
    forbidden = await answer(await send(a, "POST", "/v1/rules/versions", body, VIEWER), 403)
    assert "rules:write" in forbidden["message"]
    path = f"/v1/rules/versions/{version}/publish"
    await answer(await send(a, "POST", path, {"comment": "no"}, VIEWER), 403)
    # reading needs rules:read only
    await answer(await a.get("/v1/rules/versions", token=VIEWER), 200)
    await answer(await a.get(f"/v1/rules/versions/{version}", token=VIEWER), 200)
    await answer(await a.get("/v1/rules/versions", token=None), 401)

    async def refused(body: Any) -> list[dict[str, str]]:
        found = await answer(await send(a, "POST", "/v1/rules/versions", body), 422)
        fields: list[dict[str, str]] = found["fields"]
        return fields

    files = shipped()
    for name in ("../escape.yaml", "sub/dir.yaml", ".hidden.yaml", "notes.txt", "a..yaml"):
        fields = await refused({"files": {name: "rules: []\n"}, "comment": "x"})
        assert fields[0]["field"].startswith("files"), (name, fields)
    assert (await refused({"files": files}))[0]["field"] == "comment"
    assert (await refused({"files": files, "comment": "  "}))[0]["field"] == "comment"
    assert (await refused({"files": {}, "comment": "x"}))[0]["field"] == "files"
    many = {f"f{i}.yaml": "" for i in range(65)}
    assert (await refused({"files": many, "comment": "x"}))[0]["field"] == "files"
    bad_parent = await refused({"files": files, "comment": "x", "parent": "../x"})
    assert bad_parent[0]["field"] == "parent"
    unknown = await answer(await a.get("/v1/rules/versions/0123456789ab"), 404)
    assert unknown["fields"] == [{"field": "version", "reason": "unknown ruleset version"}]
    badly = await answer(await a.get("/v1/rules/versions/NOT-A-VERSION"), 400)
    assert badly["fields"][0]["field"] == "version"
    assert await current(a) == version


# -- omniroute rules publish (a CI pipeline) ----------------------------------


async def cli(*args: str, token: str | None = TOKEN) -> tuple[int, str]:
    """``omniroute rules publish …`` as a process; (exit code, output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMNIROUTE_TOKEN", "OMNIROUTE_URL")}
    if token is not None:
        env["OMNIROUTE_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router.commands.rules", "publish", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_command_publishes_over_http(pair: tuple[Api, Api], tmp_path: Path) -> None:
    a, b = pair
    url = base_url(a)
    before = await current(a)
    rules = copy_rules(tmp_path / "broken")
    queues = rules / "00-queues.yaml"
    queues.write_text(queues.read_text().replace(CHAT_EXPECT, BROKEN_EXPECT))
    code, out = await cli(str(rules), "--comment", "broken", "--url", url)
    assert code == 1, out
    assert f"test {CHAT_TEST!r}: expected queue 'email-general', got 'chat-general'" in out
    assert await current(a) == before

    code, out = await cli(str(rules), "--comment", "no token", "--url", url, token=None)
    assert code == 2 and "OMNIROUTE_TOKEN" in out, out
    code, out = await cli(str(rules), "--comment", "viewer", "--url", url, token=VIEWER)
    assert code == 1

    good = copy_rules(tmp_path / "good")
    (good / "10-routing.yaml").write_text(
        (good / "10-routing.yaml").read_text() + f"\n# from CI {time.time()}\n"
    )
    code, out = await cli(str(good), "--comment", "from CI", "--url", url, "--parent", before)
    assert code == 0, out
    version = await current(a)
    assert version != before and f"published {version}" in out
    trail = await answer(await a.get("/v1/rules/versions", limit=1), 200)
    assert trail["versions"][0]["author"] == "all"
    assert trail["versions"][0]["comment"] == "from CI"
    await eventually(lambda: served_version(b), lambda v: v == version, timeout=2.0)

    # a stale parent: refused, the conflict printed
    code, out = await cli(str(good), "--comment", "late", "--url", url, "--parent", before)
    assert code == 1 and "parent: the published version is" in out, out


# -- rules.source: database at start, and a version an instance refuses -------


def database_rules(paths: list[Path] | None = None) -> dict[str, Any]:
    return {
        "paths": [str(p) for p in (paths or [ROOT / "rules"])],
        "watch": False,
        "source": "database",
    }


async def test_instances_starting_together_publish_the_files_once(server_url: str) -> None:
    async with new_database(server_url, "omniroute_gov") as url:
        settings = make_settings(url, rules=database_rules())

        async def start() -> str:
            async with open_runtime(settings) as rt:
                return rt.rules.active.version

        versions = await asyncio.gather(start(), start(), start())
        async with store_pool(url) as pool:
            rows = await pool.fetch("SELECT version, author, comment FROM ruleset_publications")
    assert len(set(versions)) == 1
    assert [tuple(r) for r in rows] == [(versions[0], "start-up", "initial")]


async def test_with_nothing_published_failing_files_refuse_to_start(
    server_url: str, tmp_path: Path
) -> None:
    rules = copy_rules(tmp_path)
    queues = rules / "00-queues.yaml"
    queues.write_text(queues.read_text().replace(CHAT_EXPECT, BROKEN_EXPECT))
    async with new_database(server_url, "omniroute_gov") as url:
        settings = make_settings(url, rules=database_rules([rules]))
        with pytest.raises(ConfigError) as raised:
            async with open_runtime(settings):
                pass
        async with store_pool(url) as pool:
            published = await pool.fetchval("SELECT count(*) FROM ruleset_publications")
    assert raised.value.message.startswith(
        "no ruleset is published yet, and the rules files fail their tests:"
    )
    assert f"test {CHAT_TEST!r}" in raised.value.message
    assert published == 0


async def test_a_published_version_that_fails_here_is_refused_and_blocks_a_start(
    server_url: str,
) -> None:
    """A version stored as published whose tests fail on this instance (an
    older engine, or written around the API): the running instance keeps its
    version and says why; a new instance does not start on it."""
    async with new_database(server_url, "omniroute_gov") as url:
        async with app_on(url, rules=database_rules(), api=TOKENS) as api:
            before = await served_version(api)
            broken = with_failing_test(shipped())
            async with store_pool(url) as pool:
                version = version_of(broken)
                await publish(
                    pool, version, broken, author="somebody", comment="around the API",
                    parent=None, check_parent=False,
                )  # fmt: skip

            async def ready() -> dict[str, Any]:
                body: dict[str, Any] = await (await api.client.get("/readyz")).json()
                return body

            body = await eventually(ready, lambda b: bool(b.get("rules_reload_errors")))
            assert body["ruleset"] == before
            [problem] = body["rules_reload_errors"]
            assert problem.startswith(f"00-queues.yaml:{failing_test_line()}:")
            assert f"test {CHAT_TEST!r}" in problem
            metrics = await (await api.get("/metrics")).text()
            assert re.search(r'omniroute_rules_tests_refused_total\{at="follow"\} 1\.0', metrics)

            settings = make_settings(url, rules=database_rules())
            with pytest.raises(ConfigError) as raised:
                async with open_runtime(settings):
                    pass
            assert raised.value.message.startswith(
                f"the files of the published ruleset {version} fail their tests:"
            )


def test_rules_source_is_files_or_database(database_url: str) -> None:
    assert make_settings(database_url).rules.source == "files"
    with pytest.raises(ConfigError, match=r"rules\.source: Input should be 'files' or 'database'"):
        make_settings(database_url, rules={"paths": ["rules"], "source": "git"})


async def test_a_candidate_is_checked_and_tested_without_being_stored(api: Api) -> None:
    files = shipped()
    ok = await answer(await send(api, "POST", "/v1/rules/check", {"files": files}), 200)
    assert ok["ok"] is True and ok["version"] == version_of(files)
    assert ok["errors"] == ok["failures"] == [] and ok["tests"] > 0

    failing = await answer(
        await send(api, "POST", "/v1/rules/check", {"files": with_failing_test(files)}), 200
    )
    assert failing["ok"] is False and failing["tests"] == ok["tests"]
    [failure] = failing["failures"]
    assert (failure["file"], failure["line"], failure["col"]) == (
        "00-queues.yaml", failing_test_line(), 5
    )  # fmt: skip
    assert failure["message"] == (
        f"test {CHAT_TEST!r}: expected queue 'email-general', got 'chat-general'"
    )

    broken = {**files, "20-more.yaml": "rules:\n  - name: x\n    route: {queue: nowhere}\n"}
    bad = await answer(await send(api, "POST", "/v1/rules/check", {"files": broken}), 200)
    assert bad["ok"] is False and bad["version"] is None and bad["tests"] == 0
    assert bad["errors"] and {e["file"] for e in bad["errors"]} == {"20-more.yaml"}
    assert any(e["line"] == 3 and "nowhere" in e["message"] for e in bad["errors"]), bad

    await answer(await send(api, "POST", "/v1/rules/check", {"files": files}, READ_TOKEN), 403)
    refused = await answer(
        await send(api, "POST", "/v1/rules/check", {"files": {"../x.yaml": ""}}), 422
    )
    assert refused["fields"][0]["field"].startswith("files")
    # nothing was stored
    unstored = version_of(with_failing_test(files))
    await answer(await api.get(f"/v1/rules/versions/{unstored}"), 404)
