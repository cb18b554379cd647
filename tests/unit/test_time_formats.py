"""The fast time and id formatters write exactly what the straightforward versions wrote.

Each formatter on the ingest path was rewritten for speed (isoformat instead of strftime, no
intermediate objects); the text is hashed, signed or stored, so it must not change by one character.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from powermeter.accounts.service import day_period, month_period, seconds_to_midnight
from powermeter.audit.repository import _sqlite_time
from powermeter.inference.service import uuid7
from powermeter.infra.clock import next_utc_midnight, utc_iso
from powermeter.methodology.audit_chain import format_timestamp
from powermeter.methodology.occurrence import format_instant

offsets = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
utc_moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@given(moments)
def test_format_instant(m: datetime) -> None:
    u = m.astimezone(UTC)
    expected = u.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if u.microsecond else u.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert format_instant(m) == expected
    assert format_instant(m.replace(tzinfo=None)) == format_instant(m.replace(tzinfo=UTC))


@given(moments)
def test_format_timestamp(m: datetime) -> None:
    u = m.astimezone(UTC)
    expected = (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )
    assert format_timestamp(m) == expected


@given(moments)
def test_day_period_and_sqlite_time(m: datetime) -> None:
    assert day_period(m) == m.strftime("%Y-%m-%d")
    assert month_period(m) == m.strftime("%Y-%m")
    assert utc_iso(m) == m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    u = m.astimezone(UTC)
    # SQLAlchemy's storage format for DateTime on SQLite (zero-padded years, unlike glibc's strftime)
    sqlalchemy_text = (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}"
    )
    assert _sqlite_time(m) == sqlalchemy_text


@given(st.one_of(moments, utc_moments))
def test_seconds_to_midnight(m: datetime) -> None:
    if m.astimezone(UTC).date() >= datetime(9999, 12, 31).date():
        return
    assert seconds_to_midnight(m) == max(1, int((next_utc_midnight(m) - m).total_seconds() + 0.999))


@given(utc_moments)
def test_uuid7_is_a_well_formed_version_7_uuid(m: datetime) -> None:
    text = uuid7(m)
    u = uuid.UUID(text)
    assert str(u) == text
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert (u.int >> 80) == int(m.timestamp() * 1000) & ((1 << 48) - 1)
