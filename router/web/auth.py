"""Bearer tokens for the ``/v1`` API and ``/metrics`` (not the webhooks, which
adapters verify).

Tokens are kept as SHA-256 digests and compared in constant time against
every configured token. Failed attempts are braked per client address
(``router.web.limits``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from router.errors import FieldError, Forbidden, Unauthorized
from router.settings import TokenSettings
from router.web.limits import ClientAddresses, FailureLimiter


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]


class Tokens:
    def __init__(
        self,
        tokens: Sequence[TokenSettings],
        *,
        limiter: FailureLimiter | None = None,
        clients: ClientAddresses | None = None,
    ) -> None:
        self._tokens = [(t.digest, Principal(t.name, frozenset(t.scopes))) for t in tokens]
        self._limiter = limiter or FailureLimiter(0, 1)
        self._clients = clients or ClientAddresses(())

    def authenticate(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for expected, principal in self._tokens:
            if hmac.compare_digest(expected, digest):
                found = principal
        return found

    def named(self, name: str) -> Principal | None:
        """The configured token called ``name`` (a console session's token; a
        session whose token was removed or lost its scope ends with it)."""
        for _, principal in self._tokens:
            if principal.name == name:
                return principal
        return None

    def sign_in(self, request: web.Request, presented: str, scope: str) -> Principal:
        """The principal of a token typed into a sign-in form, braked like a
        bearer token: ``TooManyRequests`` while the client is braked,
        ``Unauthorized`` (counted as a failure) for an unknown token,
        ``Forbidden`` without ``scope``."""
        client = self._clients.of(request)
        self._limiter.check(client)
        principal = self.authenticate(presented.strip()) if presented.strip() else None
        if principal is None:
            self._limiter.failed(client)
            raise Unauthorized(
                "the token is not valid",
                fields=[FieldError("token", "unknown or revoked token")],
            )
        if scope not in principal.scopes:
            raise Forbidden(
                f"token {principal.name!r} lacks the scope {scope!r}",
                fields=[FieldError("token", f"scope {scope!r} required")],
            )
        return principal

    def require(self, request: web.Request, scope: str) -> Principal:
        client = self._clients.of(request)
        self._limiter.check(client)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "a bearer token is required",
                fields=[FieldError("Authorization", "expected 'Bearer <token>'")],
            )
        principal = self.authenticate(token.strip())
        if principal is None:
            self._limiter.failed(client)
            raise Unauthorized(
                "the token is not valid",
                fields=[FieldError("Authorization", "unknown or revoked token")],
            )
        if scope not in principal.scopes:
            raise Forbidden(
                f"token {principal.name!r} lacks the scope {scope!r}",
                fields=[FieldError("Authorization", f"scope {scope!r} required")],
            )
        return principal
