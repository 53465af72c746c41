"""Publishing from the console's Rules page over real HTTP, on an app with
``rules.source: database`` (a database of this module): a candidate published
with a comment as the session's token, refused when its tests fail (the test
named) or its parent is stale (a conflict, nothing overwritten), rollback,
the versions with who serves which, their diff and pages; the CSRF and
``rules:write`` refusals; read-only with ``rules.source: files``. The same in
a real browser is in ``test_console_browser.py``."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from router.settings import SCOPES
from router.web.console import governance
from tests.support.api import Api
from tests.support.apps import app_on
from tests.support.console import csrf_of, page, post_form, sign_in
from tests.support.settings import ROOT, TOKEN

WATCHER = "test-token-console-only"
TOKENS = {
    "tokens": [
        {"name": "all", "token": TOKEN, "scopes": list(SCOPES)},
        {"name": "watcher", "token": WATCHER, "scopes": ["console"]},
    ],
    "failed_auth_limit": 0,
}
DATABASE_RULES = {"paths": [str(ROOT / "rules")], "watch": False, "source": "database"}
QUEUES = "00-queues.yaml"
CHAT_TEST = "a chat with nothing special goes to the chat team"
CHAT_EXPECT = "expect: {queue: chat-general, rule: null, priority: 50, sla: 2m}"
BROKEN_EXPECT = "expect: {queue: email-general, rule: null, priority: 50, sla: 2m}"


@pytest.fixture
async def console(own_database: str) -> AsyncIterator[Api]:
    """An app serving the published rules of this module's database, signed
    in with a token holding every scope."""
    async with app_on(own_database, rules=DATABASE_RULES, api=TOKENS) as api:
        assert (await sign_in(api)).status == 303
        yield api


async def published(api: Api) -> str:
    body: dict[str, Any] = await (await api.get("/v1/rules/versions", limit=1)).json()
    version: str = body["published"]
    return version


async def served(api: Api) -> str:
    version: str = (await (await api.get("/v1/rules")).json())["version"]
    return version


async def published_files(api: Api) -> dict[str, str]:
    version = await published(api)
    files: dict[str, str] = (await (await api.get(f"/v1/rules/versions/{version}")).json())["files"]
    return files


def parent_of(page_html: str) -> str:
    """The version the page's editor starts from (its hidden ``parent``)."""
    found = re.search(r'name="parent" value="([0-9a-f]{12})"', page_html)
    assert found is not None, "no parent on the page"
    return found.group(1)


async def test_a_candidate_is_published_with_a_comment_by_the_sessions_token(
    console: Api,
) -> None:
    status, html_page = await page(console, "/console/rules", file=QUEUES)
    assert status == 200
    parent = parent_of(html_page)
    assert parent == await published(console) == await served(console)
    files = await published_files(console)
    text = files[QUEUES] + f"\n# console {time.time()}\n"
    # checked first: the publish form carries the candidate and its parent
    response = await post_form(
        console,
        "/console/rules/candidate",
        {"file": QUEUES, "text": text, "days": "0", "parent": parent},
        csrf=csrf_of(html_page),
    )
    checked = await response.text()
    assert response.status == 200, checked
    assert 'id="publish-form"' in checked
    assert f'name="parent" value="{parent}"' in checked
    response = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": text, "parent": parent, "comment": "a note on <b>queues</b>"},
        csrf=csrf_of(checked),
    )
    assert response.status == 303, await response.text()
    version = response.headers["Location"].removeprefix("/console/rules?published=")
    assert version != parent
    assert await served(console) == version == await published(console)
    trail = (await (await console.get("/v1/rules/versions", limit=1)).json())["versions"][0]
    assert trail["version"] == version and trail["parent"] == parent
    assert trail["author"] == "all" and trail["comment"] == "a note on <b>queues</b>"
    assert (await published_files(console))[QUEUES] == text
    # the same form sent again (a double click, a resend): that version, no second entry
    again = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": text, "parent": parent, "comment": "a note on <b>queues</b>"},
        csrf=csrf_of(checked),
    )
    assert again.status == 303 and again.headers["Location"] == response.headers["Location"]
    newest = (await (await console.get("/v1/rules/versions", limit=1)).json())["versions"][0]
    assert newest["publication"] == trail["publication"]
    # the page after: the new version published, served, its comment as text
    status, after = await page(console, response.headers["Location"])
    assert status == 200
    assert f"Published version <code>{version}</code>; this instance serves it now" in after
    assert f'<code id="active-version">{version}</code>' in after
    assert "a note on &lt;b&gt;queues&lt;/b&gt;" in after
    row = re.search(r'<tr id="publication-\d+" class="current">(.*?)</tr>', after, re.S)
    assert row is not None and version in row.group(1) and "(published)" in row.group(1)
    instance = (await (await console.client.get("/readyz")).json())["instance_id"][:8]
    assert f"<code>{instance}</code>" in row.group(1)  # served by this instance


async def test_a_candidate_whose_tests_fail_is_refused_naming_the_test(console: Api) -> None:
    before = await published(console)
    status, html_page = await page(console, "/console/rules", file=QUEUES)
    files = await published_files(console)
    broken = files[QUEUES].replace(CHAT_EXPECT, BROKEN_EXPECT)
    assert broken != files[QUEUES]
    # the check shows the failure and no publish form
    response = await post_form(
        console,
        "/console/rules/candidate",
        {"file": QUEUES, "text": broken, "days": "0", "parent": before},
        csrf=csrf_of(html_page),
    )
    checked = html.unescape(await response.text())
    assert 'id="publish-form"' not in checked
    assert "Publishing is refused: 1 test fails" in checked
    assert f"test {CHAT_TEST!r}" in checked
    # posted anyway: refused by the same check as the API, the test named
    response = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": broken, "parent": before, "comment": "break it"},
        csrf=csrf_of(html_page),
    )
    refused = html.unescape(await response.text())
    assert response.status == 422, refused
    assert "the rules tests fail" in refused and "nothing was published" in refused
    assert f"test {CHAT_TEST!r}: expected queue 'email-general', got 'chat-general'" in refused
    assert 'class="problem"' in refused  # at its line of the file
    assert await published(console) == before == await served(console)


async def test_a_comment_is_required(console: Api) -> None:
    before = await published(console)
    status, html_page = await page(console, "/console/rules")
    files = await published_files(console)
    response = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": files[QUEUES] + "\n# x\n", "parent": before, "comment": " "},
        csrf=csrf_of(html_page),
    )
    refused = await response.text()
    assert response.status == 400
    assert "a comment is required" in refused and "<code>comment</code>: required" in refused
    response = await post_form(
        console,
        "/console/rules/rollback",
        {"version": before, "parent": before},
        csrf=csrf_of(html_page),
    )
    assert response.status == 400
    assert await published(console) == before


async def test_a_stale_parent_is_a_conflict_and_overwrites_nothing(console: Api) -> None:
    status, html_page = await page(console, "/console/rules", file=QUEUES)
    parent = parent_of(html_page)
    files = await published_files(console)
    # someone else publishes after this editor opened
    theirs = {**files, "10-routing.yaml": files["10-routing.yaml"] + f"\n# {time.time()}\n"}
    response = await console.send(
        "POST",
        "/v1/rules/versions",
        {"files": theirs, "comment": "theirs", "parent": parent},
    )
    assert response.status == 201, await response.text()
    their_version = (await response.json())["version"]
    mine = files[QUEUES] + "\n# mine\n"
    response = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": mine, "parent": parent, "comment": "mine"},
        csrf=csrf_of(html_page),
    )
    refused = await response.text()
    assert response.status == 409, refused
    assert f"the published version is {their_version}, not {parent}" in refused
    assert f"Someone published <code>{their_version}</code>" in refused
    assert "# mine" in refused  # the edit is kept on the page
    assert await published(console) == their_version
    # a rollback from a stale page is a conflict too
    response = await post_form(
        console,
        "/console/rules/rollback",
        {"version": parent, "parent": parent, "comment": "stale"},
        csrf=csrf_of(html_page),
    )
    assert response.status == 409
    assert await published(console) == their_version


async def test_rollback_publishes_an_earlier_version_again(console: Api) -> None:
    status, html_page = await page(console, "/console/rules")
    earlier = parent_of(html_page)
    files = await published_files(console)
    response = await post_form(
        console,
        "/console/rules/publish",
        {
            "file": QUEUES,
            "text": files[QUEUES] + f"\n# to roll back {time.time()}\n",
            "parent": earlier,
            "comment": "to roll back",
        },
        csrf=csrf_of(html_page),
    )
    assert response.status == 303
    later = await published(console)
    status, html_page = await page(console, "/console/rules")
    assert f"Roll back to {earlier}" in html_page and f"Roll back to {later}" not in html_page
    response = await post_form(
        console,
        "/console/rules/rollback",
        {"version": earlier, "parent": later, "comment": "back again"},
        csrf=csrf_of(html_page),
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/console/rules?published={earlier}&rolled_back=1"
    assert await served(console) == earlier == await published(console)
    trail = (await (await console.get("/v1/rules/versions", limit=1)).json())["versions"][0]
    assert (trail["version"], trail["parent"], trail["comment"]) == (earlier, later, "back again")
    status, after = await page(console, response.headers["Location"])
    assert f"Rolled back: version <code>{earlier}</code>" in after
    # an unknown version: 404 naming the field
    response = await post_form(
        console,
        "/console/rules/rollback",
        {"version": "0123456789ab", "parent": earlier, "comment": "x"},
        csrf=csrf_of(after),
    )
    assert response.status == 404
    assert (await response.json())["fields"] == [
        {"field": "version", "reason": "unknown ruleset version"}
    ]


async def test_the_diff_between_two_versions_and_the_pages_of_versions(
    console: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, html_page = await page(console, "/console/rules")
    a = parent_of(html_page)
    files = await published_files(console)
    marker = f"# compared {time.time()}"
    response = await post_form(
        console,
        "/console/rules/publish",
        {"file": QUEUES, "text": files[QUEUES] + f"\n{marker}\n", "parent": a, "comment": "c"},
        csrf=csrf_of(html_page),
    )
    assert response.status == 303
    b = await published(console)
    status, diffed = await page(console, "/console/rules", **{"from": a, "to": b})
    assert status == 200
    assert f'<span class="add">+{marker}</span>' in diffed
    assert f"--- {a}/{QUEUES}" in diffed and f"+++ {b}/{QUEUES}" in diffed
    status, bad = await page(console, "/console/rules", **{"from": a, "to": "nope"})
    assert "a ruleset version is 12 lowercase hex digits" in bad
    # keyset pages: one publication a page, the next page older
    monkeypatch.setattr(governance, "PAGE", 1)
    status, first = await page(console, "/console/rules")
    rows = re.findall(r'<tr id="publication-(\d+)"', first)
    assert len(rows) == 1
    found = re.search(r'id="older-versions" href="/console/rules\?cursor=(\d+)"', first)
    assert found is not None and found.group(1) == rows[0]
    status, second = await page(console, "/console/rules", cursor=found.group(1))
    older = re.findall(r'<tr id="publication-(\d+)"', second)
    assert len(older) == 1 and int(older[0]) < int(rows[0])


async def test_a_change_without_the_csrf_token_is_refused(console: Api) -> None:
    before = await published(console)
    files = await published_files(console)
    for path, form in (
        ("/console/rules/publish", {"file": QUEUES, "text": files[QUEUES] + "\n# c\n"}),
        ("/console/rules/rollback", {"version": before}),
    ):
        response = await post_form(
            console, path, {**form, "parent": before, "comment": "no token"}, csrf=None
        )
        assert response.status == 403
        assert (await response.json())["fields"][0]["field"] == "csrf_token"
        response = await post_form(
            console, path, {**form, "parent": before, "comment": "x"}, csrf="forged"
        )
        assert response.status == 403
    assert await published(console) == before


async def test_a_console_only_token_sees_the_rules_read_only(own_database: str) -> None:
    async with app_on(own_database, rules=DATABASE_RULES, api=TOKENS) as api:
        assert (await sign_in(api, token=WATCHER)).status == 303
        before = await published(api)
        status, html_page = await page(api, "/console/rules")
        assert status == 200
        assert "Your token (watcher) lacks the scope rules:write" in html_page
        assert "Roll back to" not in html_page and 'id="versions"' in html_page
        response = await post_form(
            api,
            "/console/rules/candidate",
            {"file": QUEUES, "text": "queues: {}\n", "days": "0", "parent": before},
            csrf=csrf_of(html_page),
        )
        assert 'id="publish-form"' not in await response.text()
        for path, form in (
            ("/console/rules/publish", {"file": QUEUES, "text": "x"}),
            ("/console/rules/rollback", {"version": before}),
        ):
            response = await post_form(
                api, path, {**form, "parent": before, "comment": "x"}, csrf=csrf_of(html_page)
            )
            assert response.status == 403
            body = await response.json()
            assert "lacks the scope 'rules:write'" in body["message"]
            assert body["fields"] == [
                {"field": "cookie", "reason": "the session's token needs scope 'rules:write'"}
            ]
        assert await published(api) == before


async def test_with_rules_source_files_the_page_is_read_only(database_url: str) -> None:
    async with app_on(database_url) as api:
        assert (await sign_in(api)).status == 303
        status, html_page = await page(api, "/console/rules", file=QUEUES)
        assert "publishing needs rules.source: database" in html_page
        version = await served(api)
        text = (ROOT / "rules" / QUEUES).read_text() + "\n# files\n"
        response = await post_form(
            api,
            "/console/rules/candidate",
            {"file": QUEUES, "text": text, "days": "0", "parent": version},
            csrf=csrf_of(html_page),
        )
        checked = await response.text()
        assert response.status == 200 and 'id="check-ok"' in checked
        assert 'id="publish-form"' not in checked and "Roll back to" not in checked
        response = await post_form(
            api,
            "/console/rules/publish",
            {"file": QUEUES, "text": text, "parent": version, "comment": "x"},
            csrf=csrf_of(html_page),
        )
        assert response.status == 409
        assert (await response.json())["fields"] == [
            {"field": "rules.source", "reason": "is files: publishing is refused"}
        ]
        assert await served(api) == version
