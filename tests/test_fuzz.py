"""Every operation of ``/openapi.json`` called with generated path parameters,
query strings and bodies — shaped by the operation's schemas or arbitrary —
with no, a read-only, a full or a bogus token (webhooks: signed or not): no
answer is a 5xx. The database is up, so not even a 503."""

from __future__ import annotations

import json
import string
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.generic import sign
from router.web import create_app
from router.web.openapi import SPEC
from router.web.routes import WEBHOOKS, AdapterResource
from tests.support.api import Api
from tests.support.examples import example, unique
from tests.support.settings import READ_TOKEN, ROOT, SECRETS, TOKEN, make_settings

METHODS = ("get", "put", "post", "delete", "patch")
OPERATIONS = [
    (path, method) for path, item in SPEC["paths"].items() for method in METHODS if method in item
]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
TEXT = st.text(string.printable + "é€😀\x00", max_size=40)
ADAPTERS = st.sampled_from(sorted(SECRETS)) | TEXT


#: The generic adapters' documented payload schemas, for signed webhook bodies.
PAYLOADS = {
    name: orjson.loads((ROOT / "adapters" / "schemas" / f"{name}.json").read_bytes())
    for name in SECRETS
}
#: Every named schema a ``$ref`` may point at (the API's and the payloads').
DEFINITIONS = {
    **{k: v for schema in PAYLOADS.values() for k, v in schema.get("$defs", {}).items()},
    **SPEC["components"]["schemas"],
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DEFINITIONS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def shaped(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the schema's shape (bounds and patterns are not always kept:
    near misses are what finds the 500s)."""
    schema = _resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | TEXT
    if "anyOf" in schema:
        return st.one_of([shaped(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "uuid":
            return st.uuids().map(str) | TEXT
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat()) | TEXT
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
        valid = (
            st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: low <= len(v) <= high)
            if "pattern" in schema
            else st.text(
                string.ascii_letters + string.digits + " @.+-", min_size=low, max_size=high
            )
        )
        return valid | st.text(max_size=schema.get("maxLength", 40) + 2)
    if kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
        return st.integers(low, high) | st.integers(low - 1, high + 1) | st.integers()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(shaped(schema.get("items", {})), max_size=3)
    if kind == "object" and "properties" in schema:
        props = {k: shaped(v) for k, v in schema["properties"].items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    return JSON


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return schema if schema is not None else None


@st.composite
def requests(draw: st.DrawFn, path: str, method: str) -> tuple[str, dict[str, str], bytes | None]:
    item = SPEC["paths"][path]
    operation = item[method]
    params = item.get("parameters", []) + operation.get("parameters", [])
    url = path
    for p in params:
        if p["in"] == "path":
            # aim at configured adapters too, so that signed bodies reach the parsers
            values = ADAPTERS if p["name"] == "adapter" else shaped(p["schema"]) | TEXT
            value = str(draw(values))
            url = url.replace("{" + p["name"] + "}", quote(value, safe="") or "x")
    query: dict[str, str] = {}
    for p in params:
        if p["in"] == "query" and draw(st.booleans()):
            query[p["name"]] = str(draw(shaped(p["schema"]) | TEXT))
    if draw(st.integers(0, 9)) == 0:
        query[draw(st.text(string.ascii_lowercase, min_size=1, max_size=8))] = "1"
    if query:
        url += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    body: bytes | None = None
    schema = _body_schema(operation)
    adapter = url.split("/")[3].split("?")[0] if path.startswith("/v1/webhooks/") else None
    if adapter in PAYLOADS and method == "post":
        schema = PAYLOADS[adapter]
    if schema is not None or draw(st.integers(0, 9)) == 0:
        value = draw(shaped(schema or {}) | shaped(schema or {}) | JSON)
        body = (
            draw(st.binary(max_size=64))
            if draw(st.integers(0, 9)) == 0
            else json.dumps(value).encode()
        )
    credential = draw(st.sampled_from(("none", "full", "full", "full", "read", "bogus")))
    headers = {"Content-Type": "application/json"}
    if adapter is not None:
        if credential == "full" and body is not None and adapter in SECRETS:
            headers["X-Omniroute-Signature"] = sign(body, SECRETS[adapter], int(time.time()))
        elif credential == "bogus":
            headers["X-Omniroute-Signature"] = "t=1,v1=00"
    elif credential != "none":
        token = {"full": TOKEN, "read": READ_TOKEN, "bogus": "not-a-token"}[credential]
        headers["Authorization"] = f"Bearer {token}"
    return url, headers, body


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_no_input_makes_a_5xx(api: Api, path: str, method: str, data: st.DataObject) -> None:
    url, headers, body = data.draw(requests(path, method))
    response = await api.client.request(method.upper(), url, data=body, headers=headers)
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        response.close()  # a stream does not end: its status is what is checked
        text = ""
    else:
        text = await response.text()
    assert response.status < 500, (method, url, headers, body, response.status, text)


async def test_openapi_describes_every_route(api: Api) -> None:
    served = await (await api.client.get("/openapi.json")).json()
    assert served == orjson.loads(orjson.dumps(SPEC))
    described = {(m.upper(), p) for p, item in SPEC["paths"].items() for m in METHODS if m in item}
    app = create_app(make_settings("postgresql://unused"))
    routes = {
        (r.method, WEBHOOKS if isinstance(r.resource, AdapterResource) else r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert routes == described


# -- what the fuzzing found, kept as plain regression tests -------------------


async def test_a_nul_character_is_a_422_not_a_500(api: Api) -> None:
    payload = example("chat", id=unique(), text="before\u0000after")
    response = await api.deliver("chat", payload)
    assert response.status == 422  # a retry cannot succeed: the platform must not retry
    assert (await response.json())["error"] == "unstorable_value"
    customer = await api.send("POST", "/v1/customers", {"crm_id": unique("crm\u0000")})
    assert customer.status == 422
    listing = await api.get("/v1/contacts", queue="a\u0000b")
    assert listing.status == 400
    assert (await listing.json())["fields"][0]["field"] == "queue"


async def test_null_attributes_clear_them(api: Api) -> None:
    crm = unique("crm")
    body = await api.json(
        "POST", "/v1/customers", {"crm_id": crm, "attributes": {"a": 1}}, status=201
    )
    body = await api.json("POST", "/v1/customers", {"crm_id": crm, "attributes": None})
    assert body["attributes"] == {}
