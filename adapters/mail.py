"""Inbound email, whatever the provider: RFC 2047 header decoding, addresses,
Message-Id threading, HTML-only bodies turned into text, raw MIME messages,
and the one function that turns a parsed email into a ``Contact``.

Threading: ids are kept without angle brackets. A message's ``thread_id`` is
the first id of ``References`` (the thread's root), else its ``In-Reply-To``.
Quoted replies are only stripped when the provider gives a stripped field; we
never guess where a quote starts.
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from html.parser import HTMLParser
from typing import Any

from adapters.building import attachment_summary, build
from adapters.forms import decode_text
from router.models import Contact, Identifier

_MESSAGE_ID = re.compile(r"<([^<>\s]{1,510})>")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt footer h1 h2 h3 h4 h5 h6 header hr li "
    "main nav ol p pre section table tr ul".split()
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_MIME_ERRORS = (ValueError, TypeError, LookupError, AttributeError, AssertionError)


def decode_words(value: str | None) -> str | None:
    """A header value with RFC 2047 encoded words decoded (``=?utf-8?q?...?=``)."""
    if value is None:
        return None
    if "=?" not in value:
        return value.strip()
    try:
        return str(email.header.make_header(email.header.decode_header(value))).strip()
    except (*_MIME_ERRORS, UnicodeError):
        return value.strip()


def address(value: str | None) -> tuple[str | None, str | None]:
    """``(display name, address)`` of a ``From``-style header value."""
    if not value:
        return None, None
    name, addr = email.utils.parseaddr(value)
    return decode_words(name) or None, addr.strip() or None


def addresses(values: Iterable[str | None]) -> list[str]:
    """Every address in ``To``/``Cc``-style header values."""
    present = [v for v in values if v]
    return [addr for _, addr in email.utils.getaddresses(present) if addr]


def message_ids(value: str | None) -> list[str]:
    """The ``<id>`` tokens of a ``Message-Id``/``In-Reply-To``/``References`` value,
    without brackets; a bare id without brackets is taken whole."""
    if not value:
        return []
    found = _MESSAGE_ID.findall(value)
    if found:
        return found
    bare = value.strip()
    return [bare] if bare and " " not in bare and len(bare) <= 510 else []


def thread_of(references: str | None, in_reply_to: str | None) -> str | None:
    ids = message_ids(references) or message_ids(in_reply_to)
    return ids[0] if ids else None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: tags dropped, blocks on their own lines."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser's reaction to some malformed markup
        pass
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def choose_text(stripped: str | None, plain: str | None, html: str | None) -> str | None:
    """The provider's stripped reply if given, else the plain body, else the HTML as text."""
    for candidate in (stripped, plain):
        if candidate and candidate.strip():
            return candidate
    return html_to_text(html) if html and html.strip() else None


def fallback_id(*parts: str | bytes | None) -> str:
    """A stable id for a message that carries no Message-Id: a hash of its content,
    so a retried delivery of the same message gets the same id."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part or b""
        digest.update(len(data).to_bytes(8, "big") + data)
    return f"sha256:{digest.hexdigest()}"


@dataclass(slots=True)
class Mail:
    """One inbound email as the providers describe it, before mapping."""

    provider: str
    from_header: str | None
    message_id: str | None = None  # bare Message-Id of the email
    external_id: str | None = None  # the provider's own id, when it has a better one
    envelope_from: str | None = None
    from_address: str | None = None  # when the provider already split the From header
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str | None = None
    text: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    language: str | None = None
    sent_at: datetime | None = None
    attachment_types: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    fallback: tuple[str | bytes | None, ...] = ()  # content hashed when no id is given


def to_contact(mail: Mail) -> Contact:
    """The normalized email contact: sender address (header ``From``, else the
    envelope sender), thread from References/In-Reply-To, attachments counted."""
    name, addr = address(mail.from_header)
    if mail.from_address:
        name, addr = mail.from_name or None, mail.from_address.strip()
    if not addr and mail.envelope_from:
        addr = address(mail.envelope_from)[1]
    identifiers = [Identifier(kind="email", value=addr)] if addr else []
    external_id = mail.external_id or mail.message_id or fallback_id(*mail.fallback)
    reply_ids = message_ids(mail.in_reply_to)
    attrs: dict[str, Any] = {
        "to": mail.to,
        "cc": mail.cc or None,
        "message_id": mail.message_id,
        "in_reply_to": reply_ids[0] if reply_ids else None,
        "reply": True if reply_ids else None,
        "envelope_from": mail.envelope_from,
        **attachment_summary(mail.attachment_types),
        **mail.attributes,
    }
    return build(
        channel="email",
        provider=mail.provider,
        external_id=external_id,
        thread_id=thread_of(mail.references, mail.in_reply_to),
        identifiers=identifiers,
        sender_name=name,
        subject=decode_words(mail.subject),
        text=mail.text,
        language=mail.language,
        sent_at=mail.sent_at,
        attributes=attrs,
    )


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def header_block(raw: str) -> Mapping[str, str]:
    """A raw header block (``Name: value`` lines, folded) as a case-insensitive mapping
    of first values."""
    try:
        message = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(raw)
        items = message.items()
    except _MIME_ERRORS:
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        out.setdefault(key.lower(), str(value))
    return out


def from_mime(raw: bytes, *, provider: str) -> Mail:
    """A raw RFC 5322 message (SendGrid "send raw", Mailgun ``body-mime``) as ``Mail``."""
    try:
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
        plain, html, types = _walk(message)
        headers = {k.lower(): str(v) for k, v in reversed(message.items())}
    except _MIME_ERRORS:
        message, plain, html, types, headers = None, None, None, [], {}
    return from_headers(
        provider,
        headers,
        text=choose_text(None, plain, html),
        attachment_types=types,
        fallback=(raw,),
    )


def from_headers(provider: str, headers: Mapping[str, str], **fields: Any) -> Mail:
    """``Mail`` from a lower-cased header mapping (From, To, Cc, Subject, Date,
    Message-Id, In-Reply-To, References, Content-Language); ``fields`` override."""
    values: dict[str, Any] = {
        "from_header": headers.get("from"),
        "message_id": first_id(headers.get("message-id")),
        "to": addresses([headers.get("to")]),
        "cc": addresses([headers.get("cc")]),
        "subject": headers.get("subject"),
        "in_reply_to": headers.get("in-reply-to"),
        "references": headers.get("references"),
        "language": headers.get("content-language"),
        "sent_at": parse_date(headers.get("date")),
    }
    values.update(fields)
    return Mail(provider=provider, **values)


def first_id(value: str | None) -> str | None:
    ids = message_ids(value)
    return ids[0] if ids else None


def _walk(message: Message) -> tuple[str | None, str | None, list[str]]:
    plain: str | None = None
    html: str | None = None
    types: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
        content_type = part.get_content_type()
        if (
            disposition == "attachment"
            or part.get_filename()
            or not content_type.startswith("text/")
        ):
            types.append(content_type)
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = decode_text(payload, part.get_content_charset() or "utf-8")
        if content_type == "text/plain" and plain is None:
            plain = text
        elif content_type == "text/html" and html is None:
            html = text
    return plain, html, types
