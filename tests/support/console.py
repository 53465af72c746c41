"""The console as a browser uses it, over plain HTTP: sign in with a token
(the session cookie lands in the client's cookie jar), read a page's CSRF
token, post a form from the console's own origin."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import ClientResponse

from tests.support.api import Api
from tests.support.settings import TOKEN

HTML = {"Accept": "text/html"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def origin(api: Api) -> str:
    url = api.client.make_url("/")
    return f"{url.scheme}://{url.host}:{url.port}"


async def sign_in(api: Api, token: str = TOKEN, **extra: str) -> ClientResponse:
    return await api.client.post(
        "/console/sign-in",
        data={"token": token, **extra},
        headers={"Origin": origin(api), **HTML},
        allow_redirects=False,
    )


async def page(api: Api, path: str, **params: Any) -> tuple[int, str]:
    response = await api.client.get(path, params=params, headers=HTML, allow_redirects=False)
    return response.status, await response.text()


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def post_form(
    api: Api, path: str, data: dict[str, str], *, csrf: str | None, with_origin: bool = True
) -> ClientResponse:
    form = dict(data)
    if csrf is not None:
        form["csrf_token"] = csrf
    headers = {**HTML, **({"Origin": origin(api)} if with_origin else {})}
    return await api.client.post(path, data=form, headers=headers, allow_redirects=False)
