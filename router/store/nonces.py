"""Replay nonces: the one-time values of signatures that do not cover the
body (``router.models.Nonce``), claimed once across every instance."""

from __future__ import annotations

import hashlib

import asyncpg

from router.models import Nonce

# One statement, safe under concurrency: a new value is inserted; a value held
# by the same delivery (same fingerprint), or whose claim has expired, is
# taken again; a live value held by another delivery is left alone and
# nothing is returned. ON CONFLICT DO UPDATE locks the row and re-checks the
# WHERE on its latest version, so two racing claims cannot both win.
_CLAIM = """
INSERT INTO replay_nonces AS n (scope, nonce, fingerprint, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (scope, nonce) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint,
       expires_at = greatest(n.expires_at, EXCLUDED.expires_at)
 WHERE n.fingerprint = EXCLUDED.fingerprint OR n.expires_at < now()
RETURNING true
"""


async def claim(pool: asyncpg.Pool, nonce: Nonce) -> bool:
    """True when ``nonce`` is now held by this delivery (first use, or a retry
    of the delivery that first used it); False when another delivery holds it."""
    digest = hashlib.sha256(nonce.value.encode("utf-8", "surrogatepass")).digest()
    won = await pool.fetchval(_CLAIM, nonce.scope, digest, nonce.fingerprint, nonce.expires_at)
    return bool(won)


async def purge(pool: asyncpg.Pool) -> int:
    """Delete expired claims; the number deleted."""
    result: str = await pool.execute("DELETE FROM replay_nonces WHERE expires_at < now()")
    return int(result.rsplit(" ", 1)[-1])
