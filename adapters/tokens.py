"""Adapters whose provider proves itself with a static shared secret in a
request header (no signature over the body): the header name is an option."""

from __future__ import annotations

from typing import ClassVar

from adapters.base import Adapter, AdapterSpec
from adapters.options import Options
from adapters.signing import shared_token
from router.models import WebhookRequest


class SharedTokenAdapter(Adapter):
    """Verifies ``<header>: <secret>`` against every configured secret."""

    default_header: ClassVar[str]
    extra_options: ClassVar[tuple[str, ...]] = ()
    header_option: ClassVar[bool] = True  # False where the provider fixes the header

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        allowed = (("header",) if self.header_option else ()) + self.extra_options
        self.options = Options(spec, allowed=allowed)
        header = self.options.string("header", self.default_header) if self.header_option else None
        self.header = (header or self.default_header).lower()

    def verify(self, request: WebhookRequest) -> None:
        shared_token(request.headers.get(self.header), self.secrets, header=self.header)
