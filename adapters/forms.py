"""HTML form bodies: ``application/x-www-form-urlencoded`` and
``multipart/form-data`` (parsed with the standard library's MIME parser).

Uploaded files are never kept: only their field name, file name, content type
and size are, so attachment metadata can be reported without the bodies.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import parse_qsl

from router.errors import FieldError, PayloadError, UnsupportedMediaType
from router.models import WebhookRequest

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

#: Most fields a form may carry; more is refused rather than parsed.
MAX_FIELDS = 1000


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart form, without its content."""

    field: str
    filename: str
    content_type: str
    size: int


@dataclass(slots=True)
class Form:
    """Text fields in order (repeated names kept) and the uploads' metadata."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    raw: dict[str, bytes] = field(default_factory=dict)  # first raw value of multipart fields
    uploads: list[Upload] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or ``None``."""
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def names(self) -> set[str]:
        return {key for key, _ in self.pairs}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)


def bad_form(reason: str) -> PayloadError:
    return PayloadError("body is not a readable form", fields=[FieldError("body", reason)])


def parse_form(
    request: WebhookRequest, *, accept: Collection[str] = (URLENCODED, MULTIPART)
) -> Form:
    """The form in the body (or in the query string of a GET delivery)."""
    if request.method.upper() == "GET":
        return Form(pairs=list(request.query.items()))
    content_type = request.content_type
    if content_type not in accept:
        raise UnsupportedMediaType(
            f"expected {' or '.join(accept)}, got {content_type!r}",
            fields=[FieldError("content-type", f"must be {' or '.join(accept)}")],
        )
    if content_type == URLENCODED:
        return parse_urlencoded(request.body)
    return parse_multipart(request.headers.get("content-type", ""), request.body)


def parse_urlencoded(body: bytes) -> Form:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_form("urlencoded body is not UTF-8") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise bad_form(f"more than {MAX_FIELDS} fields or bad percent-encoding") from None
    return Form(pairs=pairs)


def parse_multipart(content_type_header: str, body: bytes) -> Form:
    head = f"Content-Type: {content_type_header}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "utf-8", "surrogateescape"
    )
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        return _form_from_message(message)
    except PayloadError:
        raise
    except (ValueError, TypeError, LookupError, AttributeError, AssertionError):
        # The standard library's MIME parser raises these on some malformed input.
        raise bad_form("malformed multipart body") from None


def _form_from_message(message: Message) -> Form:
    if not message.is_multipart() or not message.get_boundary():
        raise bad_form("multipart body without a boundary or parts")
    form = Form()
    payload = message.get_payload()
    if not isinstance(payload, list):
        raise bad_form("multipart body has no parts")
    if len(payload) > MAX_FIELDS:
        raise bad_form(f"more than {MAX_FIELDS} parts")
    for part in payload:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        content = part.get_payload(decode=True)
        data = content if isinstance(content, bytes) else b""
        filename = part.get_param("filename", header="content-disposition")
        if isinstance(filename, str) or part.get_content_maintype() not in ("text", "multipart"):
            form.uploads.append(
                Upload(
                    field=name,
                    filename=filename if isinstance(filename, str) else "",
                    content_type=part.get_content_type(),
                    size=len(data),
                )
            )
            continue
        charset = part.get_content_charset() or "utf-8"
        form.raw.setdefault(name, data)
        form.pairs.append((name, decode_text(data, charset)))
    return form


def decode_text(data: bytes, charset: str) -> str:
    """``data`` in ``charset``; unknown charsets fall back to UTF-8, bad bytes are replaced."""
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")
