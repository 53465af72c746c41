"""The supervisors' console over real HTTP (the browser tests are in
``test_console_browser.py``): sign-in and its brake, the session cookie and
its expiry, sign-out, CSRF and Origin checks on every change, the security
headers, escaping of what customers sent, and every page against a real
database."""

from __future__ import annotations

import html as html_lib
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from router.store import sessions
from router.web.console.sessions import PLAIN_COOKIE, digest
from tests.support import seed
from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.console import HTML, csrf_of, origin, page, post_form, sign_in
from tests.support.examples import unique
from tests.support.settings import READ_TOKEN, TOKEN

PAGES = (
    "/console/live",
    "/console/contacts",
    "/console/rules",
    "/console/deliveries",
    "/console/summary",
)


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Api]:
    """An app of its own (its own cookie jar), signed in."""
    async with app_on(database_url) as api:
        response = await sign_in(api)
        assert response.status == 303, await response.text()
        yield api


async def failed_delivery(db: asyncpg.Connection, contact_id: str | None = None) -> uuid.UUID:
    """A delivery that gave up, written as the dispatcher leaves one."""
    delivery_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO deliveries (delivery_id, destination, event_type, contact_id, status,
                                   attempts, next_attempt_at, last_error, payload)
           VALUES ($1, 'crm-hook', 'contact.routed', $2, 'failed', 8, now(),
                   'HTTP 500 from receiver: <b>boom</b>', $3)""",
        delivery_id,
        uuid.UUID(contact_id) if contact_id else None,
        orjson.dumps({"type": "contact.routed"}).decode(),
    )
    return delivery_id


# -- signing in ---------------------------------------------------------------------


async def test_pages_need_a_session(database_url: str) -> None:
    async with app_on(database_url) as api:
        for path in PAGES:
            status, _ = await page(api, path)
            assert status == 303, path
        response = await api.client.get("/console/live", headers=HTML, allow_redirects=False)
        assert response.headers["Location"] == "/console/sign-in?next=/console/live"
        # not a page (the stream, a script's fetch): 401 naming the cookie
        response = await api.client.get("/console/live/stream")
        assert response.status == 401
        assert (await response.json())["fields"][0]["field"] == "cookie"
        # a bearer token is not a session
        response = await api.get("/console/live/panel")
        assert response.status == 401


async def test_sign_in_sets_a_strict_http_only_session_cookie(database_url: str) -> None:
    async with app_on(database_url) as api:
        status, html = await page(api, "/console/sign-in")
        assert status == 200 and 'type="password"' in html
        response = await sign_in(api, next="/console/rules")
        assert response.status == 303
        assert response.headers["Location"] == "/console/rules"
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith(f"{PLAIN_COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here; __Host- and Secure over HTTPS
        for path in PAGES:
            status, html = await page(api, path)
            assert status == 200, (path, html[:500])
            assert "Signed in as <strong>all</strong>" in html


async def test_sign_in_refuses_bad_tokens_other_sites_and_next_urls(database_url: str) -> None:
    async with app_on(database_url) as api:
        response = await sign_in(api, token="not-a-token")
        assert response.status == 401
        assert "the token is not valid" in await response.text()
        response = await sign_in(api, token=READ_TOKEN)  # no scope console
        assert response.status == 403
        assert "lacks the scope &#39;console&#39;" in await response.text()
        response = await api.client.post(
            "/console/sign-in",
            data={"token": TOKEN},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        )
        assert response.status == 403
        assert (await response.json())["fields"][0]["field"] == "Origin"
        response = await sign_in(api, next="//evil.example/console")
        assert response.headers["Location"] == "/console/live"


async def test_failed_sign_ins_are_braked(database_url: str) -> None:
    api_settings = {
        "tokens": [{"name": "all", "token": TOKEN, "scopes": ["console"]}],
        "failed_auth_limit": 2,
        "failed_auth_window": 60,
    }
    async with app_on(database_url, api=api_settings) as api:
        assert (await sign_in(api, token="guess-1")).status == 401
        assert (await sign_in(api, token="guess-2")).status == 401
        braked = await sign_in(api, token=TOKEN)  # even the right one, while braked
        assert braked.status == 429
        assert int(braked.headers["Retry-After"]) > 0


async def test_sign_out_deletes_the_session(console: Api, db: asyncpg.Connection) -> None:
    cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))
    session_id = cookie[PLAIN_COOKIE].value
    assert (
        await db.fetchval(
            "SELECT count(*) FROM console_sessions WHERE id_hash = $1", digest(session_id)
        )
        == 1
    )
    _, html = await page(console, "/console/live")
    response = await post_form(console, "/console/sign-out", {}, csrf=csrf_of(html))
    assert response.status == 303
    assert response.headers["Location"] == "/console/sign-in"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM console_sessions WHERE id_hash = $1", digest(session_id)
        )
        == 0
    )
    # the old id is worthless even if a copy of the cookie was kept
    response = await console.client.get(
        "/console/live/panel", headers={"Cookie": f"{PLAIN_COOKIE}={session_id}"}
    )
    assert response.status == 401


async def test_signing_in_again_ends_the_earlier_session(
    console: Api, db: asyncpg.Connection
) -> None:
    jar = console.client.session.cookie_jar
    first = jar.filter_cookies(console.client.make_url("/"))[PLAIN_COOKIE].value
    assert (await sign_in(console)).status == 303
    second = jar.filter_cookies(console.client.make_url("/"))[PLAIN_COOKIE].value
    assert first != second
    held = await db.fetch(
        "SELECT id_hash FROM console_sessions WHERE id_hash = ANY($1::bytea[])",
        [digest(first), digest(second)],
    )
    assert [r["id_hash"] for r in held] == [digest(second)]


async def test_an_idle_or_old_session_has_expired(console: Api, db: asyncpg.Connection) -> None:
    cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))
    id_hash = digest(cookie[PLAIN_COOKIE].value)
    assert (await page(console, "/console/live"))[0] == 200
    await db.execute(
        "UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' "
        "WHERE id_hash = $1",
        id_hash,
    )
    assert (await page(console, "/console/live"))[0] == 303
    await db.execute(
        "UPDATE console_sessions SET last_seen_at = now(), expires_at = now() WHERE id_hash = $1",
        id_hash,
    )
    assert (await page(console, "/console/live"))[0] == 303


async def put_session(db: asyncpg.Connection, *, idle: timedelta, expires: timedelta) -> bytes:
    """A session row last seen ``idle`` ago, ending ``expires`` from now (its
    idle expiry 30 minutes); its id hash."""
    id_hash = digest(unique("sid"))
    await db.execute(
        """INSERT INTO console_sessions (id_hash, token_name, csrf_token, idle_seconds,
                                         last_seen_at, expires_at)
           VALUES ($1, 'all', 'csrf', 1800, now() - $2::interval, now() + $3::interval)""",
        id_hash,
        idle,
        expires,
    )
    return id_hash


async def test_expired_sessions_are_purged_without_a_sign_in(
    api: Api, database_url: str, db: asyncpg.Connection
) -> None:
    # (the session's app has migrated the database and run its own purge)
    old = await put_session(db, idle=timedelta(minutes=1), expires=timedelta(seconds=-1))
    idle = await put_session(db, idle=timedelta(minutes=31), expires=timedelta(hours=1))
    live = await put_session(db, idle=timedelta(minutes=29), expires=timedelta(hours=1))
    mine = [old, idle, live]

    async def held() -> list[bytes]:
        rows = await db.fetch(
            "SELECT id_hash FROM console_sessions WHERE id_hash = ANY($1::bytea[])", mine
        )
        return sorted(r["id_hash"] for r in rows)

    # an instance starting runs the purge job at once, and hourly after that;
    # nobody signs in
    async with app_on(database_url):
        assert await eventually(held, lambda h: len(h) < 3) == [live]


async def test_the_session_purge_deletes_a_batch_at_a_time(
    api: Api, database_url: str, db: asyncpg.Connection
) -> None:
    expired = [
        await put_session(db, idle=timedelta(hours=1), expires=timedelta(hours=1)) for _ in range(3)
    ]
    async with seed.pool(database_url) as pool:
        assert await sessions.purge_expired(pool, limit=2) == 2
        while await sessions.purge_expired(pool, limit=2) == 2:
            pass
    left = await db.fetchval(
        "SELECT count(*) FROM console_sessions WHERE id_hash = ANY($1::bytea[])", expired
    )
    assert left == 0


async def test_a_session_is_stored_only_as_a_hash(console: Api, db: asyncpg.Connection) -> None:
    cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))
    session_id = cookie[PLAIN_COOKIE].value
    hashes = [r["id_hash"] for r in await db.fetch("SELECT id_hash FROM console_sessions")]
    assert digest(session_id) in hashes
    assert all(session_id.encode() not in h for h in hashes)
    row = await db.fetchrow(
        "SELECT token_name, expires_at - created_at AS life, idle_seconds FROM console_sessions "
        "WHERE id_hash = $1",
        digest(session_id),
    )
    assert row["token_name"] == "all"
    assert row["life"].total_seconds() == 12 * 3600 and row["idle_seconds"] == 30 * 60


# -- changes: CSRF and Origin -------------------------------------------------------------


async def test_a_change_without_the_csrf_token_is_refused(
    console: Api, db: asyncpg.Connection
) -> None:
    delivery_id = await failed_delivery(db)
    path = f"/console/deliveries/{delivery_id}/retry"
    response = await post_form(console, path, {}, csrf=None)
    assert response.status == 403
    assert (await response.json())["fields"] == [
        {"field": "csrf_token", "reason": "missing or not this session's token"}
    ]
    response = await post_form(console, path, {}, csrf="forged")
    assert response.status == 403
    _, html = await page(console, "/console/deliveries")
    token = csrf_of(html)
    # the right token from another site's page: refused by its Origin
    response = await console.client.post(
        path,
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert (await response.json())["fields"][0]["field"] == "Origin"
    response = await post_form(console, path, {}, csrf=token, with_origin=False)
    assert response.status == 403
    assert (
        await db.fetchval("SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id)
        == "failed"
    )
    # the header works as well as the form field (for scripts)
    response = await console.client.post(
        path, headers={"Origin": origin(console), "X-CSRF-Token": token}, allow_redirects=False
    )
    assert response.status == 303
    assert (
        await db.fetchval("SELECT status FROM deliveries WHERE delivery_id = $1", delivery_id)
        == "pending"
    )


async def test_retry_a_failed_delivery(console: Api, db: asyncpg.Connection) -> None:
    contact = await routed(console, "chat")
    delivery_id = await failed_delivery(db, contact["contact_id"])
    status, html = await page(console, "/console/deliveries")
    assert status == 200
    assert f"delivery-{delivery_id}" in html
    assert "HTTP 500 from receiver: &lt;b&gt;boom&lt;/b&gt;" in html
    response = await post_form(
        console, f"/console/deliveries/{delivery_id}/retry", {}, csrf=csrf_of(html)
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/console/deliveries?retried={delivery_id}"
    row = await db.fetchrow("SELECT status, attempts FROM deliveries WHERE delivery_id = $1",
                            delivery_id)  # fmt: skip
    assert row["status"] == "pending"
    # the contact's page lists it
    _, html = await page(console, f"/console/contacts/{contact['contact_id']}")
    assert "crm-hook" in html
    status, _ = await page(console, f"/console/deliveries/{uuid.uuid4()}/retry")
    assert status == 405


# -- headers and escaping ---------------------------------------------------------------


async def test_console_answers_carry_the_security_headers(console: Api) -> None:
    for path in (*PAGES, "/console/sign-in", "/console/static/console.js", "/console/nothing"):
        response = await console.client.get(path, headers=HTML, allow_redirects=False)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # and the API keeps its own
    response = await console.get("/v1/live/queues")
    assert "Content-Security-Policy" not in response.headers


async def test_what_a_customer_sent_is_shown_as_text(console: Api) -> None:
    customer = {"email": f"{unique('x')}@example.com", "name": "<img src=x onerror=alert(1)>"}
    contact = await routed(
        console, "chat", customer=customer, text="<script>alert('pwned')</script> & more"
    )
    status, html = await page(console, f"/console/contacts/{contact['contact_id']}")
    assert status == 200
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; more" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html


# -- the pages --------------------------------------------------------------------------------


async def test_live_shows_a_waiting_contact(console: Api) -> None:
    contact = await routed(console, "email", subject="Invoice question")
    status, html = await page(console, "/console/live/panel")
    assert status == 200
    assert f"/console/contacts/{contact['contact_id']}" in html
    assert "<caption>email</caption>" in html
    _, full = await page(console, "/console/live")
    assert 'data-stream="/console/live/stream"' in full


async def test_live_shows_the_agents_available_for_each_queue(console: Api) -> None:
    contact = await routed(console, "email", subject="Invoice question")
    queue = contact["decision"]["queue"]
    skills = {s: 3 for s in ("chat", "writing", "voice", "social", "vip", "orders", "returns")}
    skills["billing"] = 3
    agent = f"console-{uuid.uuid4().hex[:8]}"
    response = await console.send("PUT", f"/v1/agents/{agent}", {"skills": skills})
    assert response.status in (200, 201), await response.text()
    response = await console.send("PUT", f"/v1/agents/{agent}/presence", {"presence": "available"})
    assert response.status == 200, await response.text()
    _, html = await page(console, "/console/live/panel")
    assert "Agents available" in html
    row = re.search(rf'<th scope="row">{re.escape(queue)}</th>(.*?)</tr>', html, re.S)
    assert row, html
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    # waiting, oldest wait, at risk, past SLA, then agents available and busy
    assert int(cells[4]) >= 1, cells


async def test_the_live_stream_answers_a_session(console: Api) -> None:
    response = await console.client.get("/console/live/stream")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await response.content.readline() == b": live\n"
    response.close()


async def test_contacts_lists_filters_and_explains(console: Api) -> None:
    contact = await routed(console, "chat")
    status, html = await page(console, "/console/contacts", channel="chat", queue="")
    assert status == 200
    assert contact["contact_id"][:8] in html
    status, html = await page(console, "/console/contacts", channel="fax")
    assert status == 400
    assert "channel: must be one of" in html
    status, html = await page(console, "/console/contacts", since="yesterday")
    assert status == 400 and "since: expected an ISO 8601 time" in html
    status, html = await page(console, f"/console/contacts/{contact['contact_id']}")
    assert status == 200
    assert 'id="explanation"' in html
    assert "The customer's timeline" in html
    status, _ = await page(console, f"/console/contacts/{uuid.uuid4()}")
    assert status == 404


async def test_contacts_pages_on_to_older_contacts(console: Api) -> None:
    older = await routed(console, "chat")
    newer = await routed(console, "chat")
    status, html = await page(console, "/console/contacts", channel="chat", limit="1")
    assert status == 200, html
    shown = set(re.findall(r'href="/console/contacts/([0-9a-f-]{36})"', html))
    assert shown == {newer["contact_id"]}, shown
    link = re.search(r'<a href="(/console/contacts\?[^"]*)">Older contacts</a>', html)
    assert link, html
    query = dict(urllib.parse.parse_qsl(html_lib.unescape(link.group(1)).split("?", 1)[1]))
    assert query["channel"] == "chat" and query["limit"] == "1" and query["cursor"]
    status, html = await page(console, "/console/contacts", **query)
    assert status == 200, html
    shown = set(re.findall(r'href="/console/contacts/([0-9a-f-]{36})"', html))
    assert shown == {older["contact_id"]}, shown


async def test_summary_draws_svg_charts_with_titles_and_tables(console: Api) -> None:
    await routed(console, "chat")
    status, html = await page(console, "/console/summary", range="24h")
    assert status == 200
    for title in ("Volume (contacts)", "Answered within SLA", "Repeat contacts within 24 h",
                  "Channel switches"):  # fmt: skip
        assert f"{title} by channel</title>" in html
    assert "<polyline" in html
    assert "as a table" in html


async def test_rules_page_shows_the_instances_and_checks_a_candidate(console: Api) -> None:
    status, html = await page(console, "/console/rules")
    assert status == 200
    assert 'id="instances"' in html
    assert "(this one)" in html
    token = csrf_of(html)
    # a syntax error: named at its line
    broken = "queues:\n  general: {description: x\n"
    response = await post_form(
        console,
        "/console/rules/candidate",
        {"file": "00-queues.yaml", "text": broken, "days": "0"},
        csrf=token,
    )
    assert response.status == 422
    html = await response.text()
    assert 'id="check-errors"' in html
    assert 'class="problem"' in html
    # a change that breaks one of the file's own tests
    _, html = await page(console, "/console/rules", file="00-queues.yaml")
    original = html_text(html)
    edited = original.replace("chat:   {queue: chat-general, sla: 2m}",
                              "chat:   {queue: general, sla: 2m}")  # fmt: skip
    assert edited != original
    response = await post_form(
        console,
        "/console/rules/candidate",
        {"file": "00-queues.yaml", "text": edited, "days": "1"},
        csrf=token,
    )
    assert response.status == 200
    html = await response.text()
    assert 'id="check-ok"' in html
    assert "27 passed, 3 failed" in html
    assert "test &#39;a chat with nothing special goes to the chat team&#39;" in html
    assert 'id="replay"' in html and 'id="per-queue"' in html
    assert "+  chat:   {queue: general, sla: 2m}" in html
    # an unknown file
    response = await post_form(
        console, "/console/rules/candidate", {"file": "../etc", "text": ""}, csrf=token
    )
    assert response.status == 400


def html_text(html: str) -> str:
    """The editor's text as the page holds it (escaped)."""
    import html as markup

    start = html.index('<textarea id="candidate-text"')
    start = html.index(">", start) + 1
    return markup.unescape(html[start : html.index("</textarea>", start)])


async def test_static_files(console: Api) -> None:
    response = await console.client.get("/console/static/console.js")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    response = await console.client.get("/console/static/..%2Fviews.py")
    assert response.status == 404


async def test_session_lookup_marks_it_seen(console: Api, db: asyncpg.Connection) -> None:
    before = await db.fetchval("SELECT max(last_seen_at) FROM console_sessions")
    await page(console, "/console/live")
    after = await db.fetchval("SELECT max(last_seen_at) FROM console_sessions")
    assert after >= before and after <= datetime.now(UTC)


async def test_over_https_the_cookie_is_secure_and_host_prefixed(database_url: str) -> None:
    console_settings = {"secure_cookie": True}
    async with app_on(database_url, console=console_settings) as api:
        response = await sign_in(api)
        assert response.status == 303
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-omniroute_console=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie


async def test_a_session_ends_with_its_token(database_url: str, db: asyncpg.Connection) -> None:
    """A session whose token was removed from the configuration, or no longer
    holds the scope, opens nothing."""
    async with app_on(database_url) as api:
        await sessions_of_tokens_gone(api, db)


async def sessions_of_tokens_gone(console: Api, db: asyncpg.Connection) -> None:
    for name, status in (("removed-token", 303), ("reader", 403)):
        session_id = unique("sid")
        await db.execute(
            """INSERT INTO console_sessions (id_hash, token_name, csrf_token, idle_seconds,
                                             expires_at)
               VALUES ($1, $2, 'csrf', 600, now() + interval '1 hour')""",
            digest(session_id),
            name,
        )
        response = await console.client.get(
            "/console/live",
            headers={**HTML, "Cookie": f"{PLAIN_COOKIE}={session_id}"},
            allow_redirects=False,
        )
        assert response.status == status, name
