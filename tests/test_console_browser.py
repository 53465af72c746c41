"""The console in a real headless Chromium (the system's ``chromium``, driven
through Playwright's Python API; no browser is downloaded): sign in, watch a
contact arrive on Live without a reload, open its explanation, try a rules
edit, retry a failed delivery, sign out; a rules edit refused for a failing
test, a good one published with a comment, the diff, a rollback; a change without the CSRF token is
refused; what a customer sent shows as text and runs nothing.

Skipped when Chromium or Playwright cannot be found, unless
``OMNIROUTE_BROWSER_TESTS=required`` (as in CI). With
``OMNIROUTE_SCREENSHOTS=docs/console`` the tests write the screenshots of
docs/console.md there."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from router.web.console.sessions import PLAIN_COOKIE, digest
from tests.support.api import Api, routed
from tests.support.apps import app_on, base_url
from tests.support.examples import unique
from tests.support.settings import ROOT, TOKEN

REQUIRED = os.environ.get("OMNIROUTE_BROWSER_TESTS") == "required"
CHROMIUM = (
    os.environ.get("OMNIROUTE_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
SHOTS = os.environ.get("OMNIROUTE_SCREENSHOTS")
TIMEOUT = 15_000  # ms

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _missing() -> str | None:
    if async_playwright is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if CHROMIUM is None:
        return "no chromium on PATH (apt-get install chromium, or set OMNIROUTE_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    missing = _missing()
    if missing is not None:
        if REQUIRED:
            pytest.fail(f"OMNIROUTE_BROWSER_TESTS=required, but {missing}")
        pytest.skip(missing)
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Api]:
    async with app_on(database_url) as api:
        yield api


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT)
    yield opened
    await context.close()


async def shot(page: Page, name: str) -> None:
    """A screenshot for docs/console.md, when asked for."""
    if SHOTS:
        directory = Path(SHOTS) if Path(SHOTS).is_absolute() else ROOT / SHOTS
        directory.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


async def signed_in(page: Page, api: Api, then: str = "/console/live") -> None:
    await page.goto(base_url(api) + then)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("API token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{then}")


async def session_id(page: Page) -> str:
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    return cookies[PLAIN_COOKIE]


async def test_a_supervisor_signs_in_watches_live_explains_retries_and_signs_out(
    page: Page, console: Api, db: asyncpg.Connection
) -> None:
    await page.goto(base_url(console) + "/console/live")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await shot(page, "sign-in")
    # a wrong token first: the form says so
    await page.get_by_label("API token").fill("not-the-token")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text("the token is not valid")
    await page.get_by_label("API token").fill(TOKEN)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/live")
    cookie = next(c for c in await page.context.cookies() if c["name"] == PLAIN_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Live: connected to the stream; a contact arrives without a reload
    await expect(page.locator("#live-status")).to_contain_text("Live: updated")
    await page.evaluate("window.notReloaded = true")
    contact = await routed(console, "chat", text="My parcel never came")
    link = page.locator(f'a[href="/console/contacts/{contact["contact_id"]}"]')
    await expect(link).to_be_visible()
    assert await page.evaluate("window.notReloaded === true")
    await expect(page.get_by_role("table").first).to_be_visible()
    await shot(page, "live")

    # its explanation
    await link.click()
    await page.wait_for_url(f"**/console/contacts/{contact['contact_id']}")
    await expect(page.get_by_role("heading", name="Why: the rules, one by one")).to_be_visible()
    explanation = page.locator("#explanation li")
    assert await explanation.count() >= 1
    await expect(page.locator("#explanation li.matched, #explanation li").last).to_be_visible()
    await expect(page.locator("#message")).to_contain_text("My parcel never came")
    await shot(page, "contact")

    # the history with a filter
    await page.get_by_role("link", name="Contacts", exact=True).click()
    await page.get_by_label("Channel").select_option("chat")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#contacts")).to_contain_text("chat")
    await shot(page, "contacts")

    # a failed delivery, retried
    delivery_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO deliveries (delivery_id, destination, event_type, contact_id, status,
                                   attempts, next_attempt_at, last_error, payload)
           VALUES ($1, 'crm-hook', 'contact.routed', $2, 'failed', 8, now(),
                   'HTTP 503 from https://crm.example/hooks: Service Unavailable', $3)""",
        delivery_id,
        uuid.UUID(contact["contact_id"]),
        orjson.dumps({"type": "contact.routed"}).decode(),
    )
    await page.get_by_role("link", name="Deliveries").click()
    row = page.locator(f"#delivery-{delivery_id}")
    await expect(row).to_contain_text("HTTP 503")
    await shot(page, "deliveries")
    await row.get_by_role("button", name="Retry").click()
    await expect(page.locator("#retried")).to_contain_text(str(delivery_id))
    status = await db.fetchval("SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id)
    assert status == "pending"

    # summary charts: a line per channel
    for channel in ("email", "voice", "social", "chat"):
        await routed(console, channel)
    await page.get_by_role("link", name="Summary").click()
    await expect(page.locator("#chart-contacts")).to_be_visible()
    assert await page.locator("#chart-contacts circle.line-voice").count() >= 1
    await shot(page, "summary")

    # sign out: the session is gone from the database, the pages ask to sign in
    held = await session_id(page)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/sign-in")
    count = await db.fetchval(
        "SELECT count(*) FROM console_sessions WHERE id_hash = $1", digest(held)
    )
    assert count == 0
    await page.goto(base_url(console) + "/console/live")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_rules_edit_is_checked_tested_and_replayed(page: Page, console: Api) -> None:
    await routed(console, "chat")
    await signed_in(page, console, "/console/rules")
    await expect(page.locator("#instances")).to_contain_text("(this one)")
    editor = page.get_by_label("00-queues.yaml")
    text = await editor.input_value()
    await editor.fill(text.replace("chat:   {queue: chat-general", "chat:   {queue: general"))
    await page.get_by_label("Replay the contacts of the last N days").fill("1")
    await page.get_by_role("button", name="Check, test and preview").click()
    await expect(page.locator("#test-result")).to_contain_text("3 failed")
    await expect(page.locator("#per-queue")).to_be_visible()
    await expect(page.locator("#line-43")).to_contain_text("expected queue 'chat-general'")
    # rules.source: files: nothing to publish from here
    await expect(page.locator("#read-only")).to_contain_text("needs rules.source: database")
    assert await page.locator("#publish-form").count() == 0
    # a syntax error is shown at its line
    editor = page.get_by_label("00-queues.yaml")
    await editor.fill("queues:\n  general: [oops\n")
    await page.get_by_role("button", name="Check, test and preview").click()
    await expect(page.locator("#check-errors")).to_be_visible()
    assert await page.locator("ol.source li.problem").count() >= 1


#: the test in rules/00-queues.yaml the broken edit makes fail, and the edit
CHAT_TEST = "a chat with nothing special goes to the chat team"
CHAT_EXPECT = "expect: {queue: chat-general, rule: null, priority: 50, sla: 2m}"
BROKEN_EXPECT = "expect: {queue: email-general, rule: null, priority: 50, sla: 2m}"


async def _served(api: Api) -> str:
    version: str = (await (await api.get("/v1/rules")).json())["version"]
    return version


async def test_a_rules_edit_is_refused_published_and_rolled_back(
    page: Page, own_database: str
) -> None:
    rules = {"paths": [str(ROOT / "rules")], "watch": False, "source": "database"}
    async with app_on(own_database, rules=rules) as api:
        await routed(api, "chat")
        before = await _served(api)
        await signed_in(page, api, "/console/rules")
        await expect(page.locator("#active-version")).to_have_text(before)
        await expect(page.locator("#versions")).to_contain_text("initial")

        # an edit that breaks a test: no publish, the failing test named
        editor = page.get_by_label("00-queues.yaml")
        text = await editor.input_value()
        assert CHAT_EXPECT in text
        await editor.fill(text.replace(CHAT_EXPECT, BROKEN_EXPECT))
        await page.get_by_label("Replay the contacts of the last N days").fill("1")
        await page.get_by_role("button", name="Check, test and preview").click()
        await expect(page.locator("#test-result")).to_contain_text("1 failed")
        await expect(page.locator("#publish-blocked")).to_contain_text("Publishing is refused")
        await expect(page.locator("#publish-blocked")).to_contain_text(CHAT_TEST)
        assert await page.locator("#publish-form").count() == 0
        await expect(page.locator("#per-queue")).to_be_visible()
        await shot(page, "rules")

        # a good edit, published with a comment: the served version changes
        good = (
            text.replace("chat:   {queue: chat-general", "chat:   {queue: chat-general")
            + "\n# weekend cover: the chat team answers until 20:00\n"
        )
        await page.get_by_label("00-queues.yaml").fill(good)
        await page.get_by_label("Replay the contacts of the last N days").fill("0")
        await page.get_by_role("button", name="Check, test and preview").click()
        await expect(page.locator("#test-result")).to_contain_text("0 failed")
        await page.get_by_label("Comment (required)").fill("Weekend cover for chat")
        await page.get_by_role("button", name="Publish this candidate").click()
        await page.wait_for_url("**/console/rules?published=*")
        await expect(page.locator("#published")).to_contain_text("this instance serves it now")
        after = await _served(api)
        assert after != before
        await expect(page.locator("#active-version")).to_have_text(after)
        current = page.locator("#versions tr.current")
        await expect(current).to_contain_text(after)
        await expect(current).to_contain_text("Weekend cover for chat")
        await expect(current).to_contain_text("all")  # the session's token
        await expect(current).to_contain_text(before)  # its parent

        # the diff between the two, picked
        await page.get_by_label("Compare", exact=True).select_option(before)
        await page.get_by_label("with", exact=True).select_option(after)
        await page.get_by_role("button", name="Show the diff").click()
        await expect(page.locator("#versions-diff")).to_contain_text(
            "+# weekend cover: the chat team answers until 20:00"
        )
        await shot(page, "rules-versions")

        # roll back: the earlier version is served again
        await page.get_by_label(f"Why roll back to {before}").first.fill("Cover not needed")
        await page.get_by_role("button", name=f"Roll back to {before}").first.click()
        await page.wait_for_url("**/console/rules?published=*")
        await expect(page.locator("#published")).to_contain_text("Rolled back")
        await expect(page.locator("#active-version")).to_have_text(before)
        assert await _served(api) == before
        await expect(page.locator("#versions tr.current")).to_contain_text("Cover not needed")


async def test_a_post_without_the_csrf_token_is_refused(
    page: Page, console: Api, db: asyncpg.Connection
) -> None:
    await signed_in(page, console, "/console/deliveries")
    delivery_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO deliveries (delivery_id, destination, event_type, status, attempts,
                                   next_attempt_at, last_error, payload)
           VALUES ($1, 'crm-hook', 'contact.routed', 'failed', 8, now(), 'boom', '{}')""",
        delivery_id,
    )
    # the browser sends the session cookie and its Origin, but not the token
    status = await page.evaluate(
        """id => fetch('/console/deliveries/' + id + '/retry', {method: 'POST',
                 credentials: 'same-origin'}).then(r => r.status)""",
        str(delivery_id),
    )
    assert status == 403
    found = await db.fetchval("SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id)
    assert found == "failed"
    # with the page's token it goes through
    status = await page.evaluate(
        """id => fetch('/console/deliveries/' + id + '/retry', {method: 'POST',
                 credentials: 'same-origin', redirect: 'manual',
                 headers: {'X-CSRF-Token': document.getElementById('main').dataset.csrf}})
                 .then(r => r.type === 'opaqueredirect' ? 303 : r.status)""",
        str(delivery_id),
    )
    assert status == 303


async def test_what_a_customer_sent_shows_as_text_and_runs_nothing(
    page: Page, console: Api
) -> None:
    customer: dict[str, Any] = {
        "email": f"{unique('x')}@example.com",
        "name": '<img src=x onerror="window.pwned = 2">',
    }
    text = "<script>window.pwned = 1</script> hello"
    contact = await routed(console, "chat", customer=customer, text=text)
    await signed_in(page, console, f"/console/contacts/{contact['contact_id']}")
    message = page.locator("#message")
    await expect(message).to_contain_text(text)
    await expect(message).to_contain_text('<img src=x onerror="window.pwned = 2">')
    assert await page.evaluate("typeof window.pwned") == "undefined"
    assert await page.locator("#message img, #message script").count() == 0


async def test_the_skip_link_comes_first_for_keyboard_users(page: Page, console: Api) -> None:
    await signed_in(page, console, "/console/live")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
