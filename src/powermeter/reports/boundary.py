"""The account's reporting boundary: consolidation approach and entity, its sites' market-based
instruments, and closed reporting periods. Every SQL statement on those tables lives here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.methodology.canonical import canonical_text
from powermeter.methodology.occurrence import format_instant
from powermeter.reports.tables import report_period_closes, report_settings, report_sites

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
        return {"site": self.site, "type": self.type, "rate_g_per_kwh": self.rate_g_per_kwh,
                "covered_share": self.covered_share, "year": self.year, "source": self.source, "note": self.note}


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
    row = conn.execute(sa.select(report_settings).where(report_settings.c.account_id == account_id)).first()
    if row is not None:
        b.consolidation_approach, b.entity, b.approach_set = row.consolidation_approach, row.entity, True
    for r in conn.execute(sa.select(report_sites).where(report_sites.c.account_id == account_id)):
        d = orjson.loads(r.body)
        b.sites[r.site] = Instrument(r.site, d["type"], float(d["rate_g_per_kwh"]), float(d["covered_share"]),
                                     int(d["year"]), str(d["source"]), d.get("note"))
    for r in conn.execute(sa.select(report_period_closes).where(report_period_closes.c.account_id == account_id)):
        b.closes[int(r.year)] = _dt(r.closed_at)
    return b


def save_settings(conn: Connection, account_id: str, approach: str, entity: str | None, now: datetime) -> None:
    t = report_settings
    conn.execute(t.delete().where(t.c.account_id == account_id))
    conn.execute(t.insert().values(account_id=account_id, consolidation_approach=approach, entity=entity,
                                   updated_at=now))


def save_site(conn: Connection, account_id: str, inst: Instrument, now: datetime) -> None:
    t = report_sites
    body = {k: v for k, v in inst.as_dict().items() if k != "site"}
    conn.execute(t.delete().where(t.c.account_id == account_id, t.c.site == inst.site))
    conn.execute(t.insert().values(account_id=account_id, site=inst.site, body=canonical_text(body),
                                   updated_at=now))


def delete_site(conn: Connection, account_id: str, site: str) -> bool:
    t = report_sites
    return bool(conn.execute(t.delete().where(t.c.account_id == account_id, t.c.site == site)).rowcount)


def close_period(conn: Connection, account_id: str, year: int, now: datetime) -> tuple[datetime, bool]:
    """Close ``year`` (idempotent): (the closing time, whether this call closed it)."""
    t = report_period_closes
    row = conn.execute(sa.select(t.c.closed_at).where(t.c.account_id == account_id, t.c.year == year)).first()
    if row is not None:
        return _dt(row[0]), False
    conn.execute(t.insert().values(account_id=account_id, year=year, closed_at=now))
    return now, True


def closes_json(b: Boundary) -> list[dict[str, Any]]:
    return [{"year": y, "closed_at": format_instant(at)} for y, at in sorted(b.closes.items())]
