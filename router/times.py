"""Times read from text: the one ISO 8601 parser of the commands and the API.

Pure. A text that is not a time raises ``ValueError``; each caller turns it
into the error of its own boundary (a usage error on the command line, a 400
that names the query parameter in the API) and adds its own checks (the API
keeps times within ``TIME_MIN`` .. ``TIME_MAX``).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def parse_time(text: str, *, default_tz: tzinfo = UTC) -> datetime:
    """An ISO 8601 time: ``2026-03-01T12:00:00Z``, ``2026-03-01T13:00:00+01:00``,
    ``2026-03-01``. A time without an offset is taken in ``default_tz``."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=default_tz)
