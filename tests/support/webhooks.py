"""Webhook requests as the adapters receive them: the recorded provider
payloads (``tests/adapters/payloads/``), an adapter built from a spec,
requests, form and multipart bodies, and verify + parse in one call."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import adapters
from adapters.base import Adapter, AdapterSpec, Parsed
from router.errors import RouterError
from router.models import WebhookRequest

PAYLOADS = Path(__file__).resolve().parents[1] / "adapters" / "payloads"
URL = "https://hooks.example.com/v1/webhooks/test"


def read(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(read(name))


def make(kind: str, secrets: Iterable[str] = ("secret",), **options: Any) -> Adapter:
    spec = AdapterSpec(name=f"test-{kind}", kind=kind, secrets=tuple(secrets), options=options)
    return adapters.build(spec)


def request(
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    url: str = URL,
    query: Mapping[str, str] | None = None,
    content_type: str | None = "application/json",
) -> WebhookRequest:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if content_type and "content-type" not in lowered:
        lowered["content-type"] = content_type
    return WebhookRequest(
        method=method, url=url, headers=lowered, query=dict(query or {}), body=body
    )


def form_body(pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> bytes:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return urlencode(list(items)).encode()


def multipart(
    fields: Iterable[tuple[str, str | bytes]],
    files: Iterable[tuple[str, str, str, bytes]] = (),
    boundary: str = "xYzZY",
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type."""
    out = b""
    for name, value in fields:
        data = value.encode() if isinstance(value, str) else value
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    for name, filename, ctype, data in files:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def run(adapter: Adapter, req: WebhookRequest) -> Parsed:
    adapter.verify(req)
    return adapter.parse(req)


def robust(adapter: Adapter, req: WebhookRequest) -> None:
    """Verify and parse; only the service's own errors may escape."""
    try:
        run(adapter, req)
    except RouterError:
        pass
