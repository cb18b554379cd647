"""The account's reporting boundary: consolidation approach and entity, its sites' market-based
instruments, and closed reporting periods (the SQL is in :mod:`powermeter.reports.repository`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from powermeter.methodology.canonical import canonical_text
from powermeter.methodology.occurrence import format_instant
from powermeter.reports import repository as repo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DEFAULT_APPROACH = "operational_control"
INSTRUMENT_TYPES = ("supplier_rate", "energy_attribute_certificates", "ppa")


@dataclass(frozen=True, slots=True)
class Instrument:
    site: str
    type: str
    rate_g_per_kwh: float
    covered_share: float
    year: int
    source: str
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "type": self.type,
            "rate_g_per_kwh": self.rate_g_per_kwh,
            "covered_share": self.covered_share,
            "year": self.year,
            "source": self.source,
            "note": self.note,
        }


@dataclass(slots=True)
class Boundary:
    consolidation_approach: str = DEFAULT_APPROACH
    entity: str | None = None
    approach_set: bool = False
    sites: dict[str, Instrument] = field(default_factory=dict)
    closes: dict[int, datetime] = field(default_factory=dict)


def _dt(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return datetime.fromisoformat(str(v)).replace(tzinfo=UTC)


def load(conn: Connection, account_id: str) -> Boundary:
    b = Boundary()
    rows = repo.boundary_rows(conn, account_id)
    if rows.settings is not None:
        b.consolidation_approach, b.entity, b.approach_set = (
            rows.settings.consolidation_approach,
            rows.settings.entity,
            True,
        )
    for site, body in rows.sites:
        d = orjson.loads(body)
        b.sites[site] = Instrument(
            site,
            d["type"],
            float(d["rate_g_per_kwh"]),
            float(d["covered_share"]),
            int(d["year"]),
            str(d["source"]),
            d.get("note"),
        )
    for year, closed_at in rows.closes:
        b.closes[year] = _dt(closed_at)
    return b


def save_settings(conn: Connection, account_id: str, approach: str, entity: str | None, now: datetime) -> None:
    repo.replace_settings(conn, account_id, approach, entity, now)


def save_site(conn: Connection, account_id: str, inst: Instrument, now: datetime) -> None:
    body = {k: v for k, v in inst.as_dict().items() if k != "site"}
    repo.replace_site(conn, account_id, inst.site, canonical_text(body), now)


def delete_site(conn: Connection, account_id: str, site: str) -> bool:
    return repo.delete_site(conn, account_id, site)


def close_period(conn: Connection, account_id: str, year: int, now: datetime) -> tuple[datetime, bool]:
    """Close ``year`` (idempotent): (the closing time, whether this call closed it)."""
    closed = repo.period_closed_at(conn, account_id, year)
    if closed is not None:
        return _dt(closed), False
    repo.insert_period_close(conn, account_id, year, now)
    return now, True


def closes_json(b: Boundary) -> list[dict[str, Any]]:
    return [{"year": y, "closed_at": format_instant(at)} for y, at in sorted(b.closes.items())]
