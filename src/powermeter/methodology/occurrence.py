"""When an activity happened: ISO 8601 instants from clients, bounded and normalised (pure).

Reports book every record at its occurrence time: a job's ``started_at`` (default: received time
minus duration), an AI request's ``startTimeMs`` (default: received time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: how far in the future an occurrence time may be (client clock skew)
MAX_FUTURE_SKEW = timedelta(minutes=5)
BOUNDS_TEXT = "not before 2000-01-01T00:00:00Z and not more than 5 minutes after the server's time"


def format_instant(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC; microseconds only when non-zero)."""
    m = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if m.year >= 1000:  # isoformat writes the same text (fraction only when non-zero), ~5× cheaper
        return m.replace(tzinfo=None).isoformat() + "Z"
    if m.microsecond:
        return m.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return m.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date-time with a UTC offset or ``Z`` (a bare local time is ambiguous: refused)."""
    v = text.strip()
    if len(v) < 16 or "T" not in v.upper():
        raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2025-12-31T23:30:00Z")
    moment = datetime.fromisoformat(v[:-1] + "+00:00" if v[-1] in "Zz" else v)
    if moment.tzinfo is None:
        raise ValueError("must carry a UTC offset or Z, e.g. 2025-12-31T23:30:00Z")
    return moment.astimezone(UTC)


def normalise_instant(text: str) -> str:
    """The canonical UTC form of a client's instant (raises ``ValueError`` with what to fix)."""
    moment = parse_instant(text)
    if moment < EARLIEST:
        raise ValueError(f"must be {BOUNDS_TEXT}")
    return format_instant(moment)


def check_bounds(moment: datetime, now: datetime) -> bool:
    """Is ``moment`` within the accepted range, given the server's ``now``?"""
    return EARLIEST <= moment <= now + MAX_FUTURE_SKEW
