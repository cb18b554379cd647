"""Adapters over the other capabilities' services, shaped for the dashboard's templates.

Every function reads through the owning capability's service (or repository) functions inside the
page's transaction; nothing here writes SQL of its own except what ``web.repository`` holds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from powermeter.web.deps import Page

RECEIPTS_PAGE_SIZE = 25
USAGE_MAX_RECEIPTS = 10_000  # receipts read for the time series (newest first)
GRANULARITIES = ("day", "week", "month")
USAGE_GROUPS = ("location", "provider", "model")
REGIONS_SHOWN = ("US", "US-CA", "DE", "FR", "GB", "SE", "NO", "PL", "IN", "CN", "AU", "BR")


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def bucket_of(d: date, granularity: str) -> str:
    """The label of the day/ISO week/month a date falls in."""
    if granularity == "month":
        return d.strftime("%Y-%m")
    if granularity == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return d.isoformat()


def short_label(bucket: str, granularity: str) -> str:
    """A label that fits under a bar on a phone: ``3 Nov``, ``W45``, ``Nov 26``."""
    if granularity == "month":
        d = date.fromisoformat(bucket + "-01")
        return d.strftime("%b %y")
    if granularity == "week":
        return bucket.split("-")[1]
    d = date.fromisoformat(bucket)
    return f"{d.day} {d:%b}"


def buckets(start: date, end_inclusive: date, granularity: str) -> list[str]:
    out: list[str] = []
    d = start
    while d <= end_inclusive:
        b = bucket_of(d, granularity)
        if not out or out[-1] != b:
            out.append(b)
        d += timedelta(days=1)
    return out


# --- overview ---------------------------------------------------------------------------------------


def _report(page: Page, start: datetime, end: datetime, group_by: str) -> dict[str, Any]:
    from powermeter.reports import service as reports

    return reports.build_document(
        page.conn,
        page.state.signer,
        account_id=page.account_id,
        email=page.session.email,
        period=reports.Period(start, end),
        group_by=group_by,
        view="report",
        now=page.now,
        db=page.state.db,
        with_coverage=False,
    )


def _top(doc: dict[str, Any]) -> dict[str, Any] | None:
    per: dict[str, dict[str, Any]] = {}
    for line in doc["lines"]:
        g = per.setdefault(line["group"], {"label": line["group_label"], "co2e_kg": 0.0, "energy_kwh": 0.0})
        g["co2e_kg"] += line["co2e_kg"]
        g["energy_kwh"] += line["energy_kwh"]
    return max(per.values(), key=lambda g: g["co2e_kg"], default=None)


def month_summary(page: Page) -> dict[str, Any]:
    """This month so far: energy and CO2e (compute jobs and AI inference), the trend against the same
    days of last month, and the location and model that emitted most."""
    now = page.now.astimezone(UTC)
    m0 = datetime(now.year, now.month, 1, tzinfo=UTC)
    prev0 = (m0 - timedelta(days=1)).replace(day=1)
    end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)  # today included
    prev_same = min(prev0 + (end - m0), m0)  # the same days of last month (at most all of it)
    by_location = _report(page, m0, end, "location")
    by_model = _report(page, m0, end, "model")
    before = _report(page, prev0, prev_same, "month")
    this, last = by_location["totals"], before["totals"]

    def change(a: float, b: float) -> float | None:
        return None if not b else (a - b) / b * 100

    return {
        "month_label": m0.strftime("%B %Y"),
        "prev_label": prev0.strftime("%B"),
        "energy_kwh": this["energy_kwh"],
        "co2e_kg": this["co2e_kg"],
        "records": this["records"],
        "energy_change": change(this["energy_kwh"], last["energy_kwh"]),
        "co2e_change": change(this["co2e_kg"], last["co2e_kg"]),
        "prev_records": last["records"],
        "top_location": _top(by_location),
        "top_model": _top(by_model),
    }


def has_any_records(page: Page) -> bool:
    """Whether the account has reported anything yet (a compute job or an AI inference)."""
    from powermeter.inference import service as inference
    from powermeter.jobs import service as jobs

    if jobs.list_receipts(page.conn, page.account_id, job_id=None, limit=1, offset=0)["total"]:
        return True
    groups, _ = inference.summarize(page.conn, page.account_id, None, None, "provider")
    return bool(groups)


# --- receipts (jobs) ---------------------------------------------------------------------------------


def recent_receipts(page: Page, limit: int = 5) -> list[dict[str, Any]] | None:

    return list(search_receipts(page, "", 1, limit=limit)["receipts"])


RECEIPT_CSV_MAX = 100_000


def _day_bounds(start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` ISO dates (``to`` inclusive) as [from, before) instants, UTC; bad dates ignored."""

    def d(text: str) -> date | None:
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            return None

    s, e = d(start), d(end)
    return (
        datetime(s.year, s.month, s.day, tzinfo=UTC) if s else None,
        datetime(e.year, e.month, e.day, tzinfo=UTC) + timedelta(days=1) if e else None,
    )


def search_receipts(
    page: Page,
    q: str,
    page_no: int,
    *,
    location: str = "",
    start: str = "",
    end: str = "",
    sort: str = "issued",
    direction: str = "desc",
    limit: int | None = None,
) -> dict[str, Any]:
    """A page of receipts: ``q`` is part of a job id or receipt id (any case), filtered by location and
    issue date, sorted by a column."""
    from powermeter.web import repository as repo

    q = q.strip()
    size = limit or RECEIPTS_PAGE_SIZE
    offset = (page_no - 1) * size
    issued_from, issued_before = _day_bounds(start, end)
    rows, total = repo.find_receipts(
        page.conn,
        page.account_id,
        q=q,
        location=location.strip(),
        issued_from=issued_from,
        issued_before=issued_before,
        sort=sort,
        descending=direction != "asc",
        limit=size,
        offset=offset,
    )
    found = [
        {
            "receipt_id": r.receipt_id,
            "job_id": r.job_id,
            "kwh": r.kwh,
            "co2_grams": r.co2_grams,
            "location": r.geo_iso,
            "timestamp": r.issued_at,
        }
        for r in rows
    ]
    filters = {"q": q, "location": location.strip(), "from": start, "to": end}
    return {
        "receipts": found,
        "total": total,
        "page_no": page_no,
        "pages": max(1, math.ceil(total / size)),
        "has_more": offset + len(found) < total,
        "q": q,
        "filters": filters,
        "filtered": any(filters.values()),
        "sort": sort,
        "direction": "asc" if direction == "asc" else "desc",
        "locations": repo.receipt_locations(page.conn, page.account_id),
    }


def receipt_view(page: Page, receipt_id: str) -> dict[str, Any]:
    """The receipt document, verified here and shown with the result; the read is audited (``VIEW``)."""
    from powermeter.jobs import receipts as rc
    from powermeter.jobs.deps import receipt_views
    from powermeter.jobs.service import ReceiptAccess

    access = ReceiptAccess("VIEW", page.account_id, receipt_id, page.now, via="dashboard")
    doc = receipt_views(page.request).open(page.conn, access, check_integrity=False)
    check = rc.verify_document(doc, page.state.signer.public_key_pem())
    return {"doc": doc, "receipt": doc["receipt"], "verification": check}


def receipt_file(page: Page, receipt_id: str) -> bytes:
    """The receipt document as ``GET /v1/receipts/{id}/download`` gives it; writes the audit ``DOWNLOAD`` entry."""
    import orjson

    from powermeter.jobs.deps import receipt_views
    from powermeter.jobs.service import ReceiptAccess

    access = ReceiptAccess("DOWNLOAD", page.account_id, receipt_id, page.now, via="dashboard")
    doc = receipt_views(page.request).open(page.conn, access, check_integrity=False)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


# --- audit ---------------------------------------------------------------------------------------------


def audit_log(page: Page, action_type: str | None, receipt_id: str | None, limit: int) -> dict[str, Any]:
    from powermeter.audit import service as audit

    keys = [audit.PublicKey.of(page.state.signer)]
    entries, total, report = audit.list_logs(
        page.conn, page.account_id, keys, action_type=action_type, receipt_id=receipt_id, limit=limit
    )
    return {
        "entries": entries,
        "total": total,
        "report": report.as_json(),
        "ok": report.ok,
        "actions": sorted(audit.ACTION_TYPES),
    }


# --- usage -----------------------------------------------------------------------------------------------


def usage(page: Page, granularity: str, days: int, group_by: str) -> dict[str, Any]:
    """Energy, CO2 and water over time (compute jobs and AI inference) and by location/provider/model."""
    from powermeter.inference import service as inference
    from powermeter.jobs import service as jobs

    end = page.now.date()
    start = end - timedelta(days=days - 1)
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end_dt = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    labels = buckets(start, end, granularity)
    index = {b: i for i, b in enumerate(labels)}

    def zeros() -> list[float]:
        return [0.0] * len(labels)

    job_kwh, job_co2 = zeros(), zeros()
    listing = jobs.list_receipts(page.conn, page.account_id, job_id=None, limit=USAGE_MAX_RECEIPTS, offset=0)
    jobs_counted = 0
    for r in listing["receipts"]:
        ts = _parse_ts(r["timestamp"])
        if not (start_dt <= ts < end_dt):
            continue
        i = index[bucket_of(ts.date(), granularity)]
        job_kwh[i] += float(r["kwh"])
        job_co2[i] += float(r["co2_grams"])
        jobs_counted += 1

    inf_kwh, inf_co2, inf_water = zeros(), zeros(), zeros()
    day_groups, _ = inference.summarize(page.conn, page.account_id, start_dt, end_dt, "day")
    for g in day_groups:
        d = date.fromisoformat(str(g["key"])[:10])
        b = bucket_of(d, granularity)
        if b not in index:
            continue
        i = index[b]
        inf_kwh[i] += g["energyWh"] / 1000.0
        inf_co2[i] += g["co2Grams"]
        inf_water[i] += g["waterMl"] / 1000.0

    def r6(xs: list[float]) -> list[float]:
        return [round(x, 6) for x in xs]

    short = [short_label(b, granularity) for b in labels]

    def panel(series: list[float], name: str, kind: str, unit: str, chart_type: str = "bar") -> dict[str, Any]:
        return {
            "type": chart_type,
            "labels": labels,
            "short": short,
            "series": [r6(series)],
            "names": [name],
            "classes": [f"ct-series-{kind}"],
            "kinds": [kind],
            "unit": unit,
        }

    # AI inference is often a thousandth of compute: each gets its own panel (its own y-axis), and a
    # series keeps its colour on every chart (compute = series 1, inference = series 2, water = 3).
    charts = {
        "energy": [panel(job_kwh, "Compute jobs", "jobs", "kWh"), panel(inf_kwh, "AI inference", "inference", "kWh")],
        "co2": [
            panel([x / 1000 for x in job_co2], "Compute jobs", "jobs", "kg CO₂e"),
            panel([x / 1000 for x in inf_co2], "AI inference", "inference", "kg CO₂e"),
        ],
        "water": [panel(inf_water, "AI inference water", "water", "L")],
    }
    totals = {
        "job_kwh": sum(job_kwh),
        "job_co2_kg": sum(job_co2) / 1000,
        "jobs": jobs_counted,
        "inference_kwh": sum(inf_kwh),
        "inference_co2_kg": sum(inf_co2) / 1000,
        "inference_water_l": sum(inf_water),
    }
    rows = breakdown(page, start_dt, end_dt, group_by)
    from powermeter.web.routes_reports import inclusive_label

    return {
        "charts": charts,
        "totals": totals,
        "breakdown": rows,
        "start": start,
        "end": end,
        "period_label": inclusive_label(start_dt, end_dt),
        "capped": listing["total"] > USAGE_MAX_RECEIPTS,
    }


def breakdown(page: Page, start: datetime, end: datetime, group_by: str) -> list[dict[str, Any]]:
    """Report lines folded per group (the reports capability's aggregation, unsigned)."""
    from powermeter.reports import service as reports

    doc = reports.build_document(
        page.conn,
        page.state.signer,
        account_id=page.account_id,
        email=page.session.email,
        period=reports.Period(start, end),
        group_by=group_by,
        view="report",
        now=page.now,
        db=page.state.db,
        with_coverage=False,
    )
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "label": "",
            "records": 0,
            "jobs": 0,
            "inferences": 0,
            "energy_kwh": 0.0,
            "co2e_kg": 0.0,
            "water_l": None,
        }
    )
    for line in doc["lines"]:
        g = groups[line["group"]]
        g["key"] = line["group"]
        g["label"] = line["group_label"]
        g["records"] += line["records"]
        g["jobs"] += line["compute_job_receipts"]
        g["inferences"] += line["inference_records"]
        g["energy_kwh"] += line["energy_kwh"]
        g["co2e_kg"] += line["co2e_kg"]
        if line["water_l"] is not None:
            g["water_l"] = (g["water_l"] or 0.0) + line["water_l"]
    return sorted(groups.values(), key=lambda g: -g["co2e_kg"])


def grid_regions(page: Page) -> list[dict[str, Any]]:
    """Grid intensity of known regions (the locations dataset's latest annual figure)."""
    from powermeter.data.locations import load_locations

    index = load_locations()
    out = []
    for code in REGIONS_SHOWN:
        loc = index.resolve(code)
        if loc is not None:
            out.append(
                {
                    "code": loc.code,
                    "name": loc.name,
                    "intensity": loc.intensity_g_per_kwh,
                    "year": loc.year,
                    "source": loc.source,
                }
            )
    return out


# --- AI gateway traffic (powermeter gateway records, source "gateway") ------------------------------------


def gateway_usage(page: Page, days: int) -> dict[str, Any]:
    """The gateway's records over the last ``days`` days, by model and by caller tag."""
    from powermeter.inference import service as inference

    end = page.now.date()
    start = end - timedelta(days=days - 1)
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end_dt = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    by_model, totals = inference.summarize(page.conn, page.account_id, start_dt, end_dt, "model", "gateway")
    by_tag, _ = inference.summarize(page.conn, page.account_id, start_dt, end_dt, "tag", "gateway")
    return {"by_model": by_model, "by_tag": by_tag, "totals": totals}
