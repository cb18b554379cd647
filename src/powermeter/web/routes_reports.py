"""Reports: presets (this quarter, last quarter, year to date, last month), a preview with its
methodology and limits, and downloads (JSON, ESRS JSON, CSV, signed HTML) named by inclusive dates.

* The same query (account, period, grouping) gives one report id for every format: the id is an
  HMAC of the query under the server's secret, so the CSV and HTML of a query can be matched.
* The CSV is rounded for people (energy and emissions to 3 decimals at most, 4 significant figures
  below 1); the exact figures stay in the signed JSON and HTML.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from powermeter.infra.errors import ApiError
from powermeter.web.deps import Page, SignedIn
from powermeter.web.render import render

router = APIRouter()

ReportGroup = Literal["month", "location", "provider", "model", "key"]
REPORT_GROUPS = ("month", "location", "provider", "model", "key")
FORMATS = ("json", "esrs", "csv", "html")
ROUNDED_SUFFIXES = ("_kwh", "_kg", "_l", "_g")  # CSV columns holding measured quantities


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def presets(today: date) -> list[dict[str, Any]]:
    """Named periods (inclusive ISO dates) relative to ``today`` (UTC)."""
    q0 = _quarter_start(today)
    last_q_end = q0 - timedelta(days=1)
    last_q0 = _quarter_start(last_q_end)
    m0 = today.replace(day=1)
    last_m_end = m0 - timedelta(days=1)
    out = [
        ("this-quarter", "This quarter", q0, today),
        ("last-quarter", "Last quarter", last_q0, last_q_end),
        ("ytd", "Year to date", date(today.year, 1, 1), today),
        ("last-month", "Last month", last_m_end.replace(day=1), last_m_end),
        ("last-year", "Last year", date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    ]
    return [
        {"id": pid, "label": label, "start": s.isoformat(), "end": e.isoformat(), "current": False}
        for pid, label, s, e in out
    ]


def _day(d: date) -> str:
    return f"{d.day} {d:%b}"


def inclusive_label(start: datetime, end_exclusive: datetime) -> str:
    """``1 Jul – 30 Sep 2026`` for whole days; exact UTC times otherwise."""
    if (start.hour, start.minute, start.second) != (0, 0, 0) or (
        end_exclusive.hour,
        end_exclusive.minute,
        end_exclusive.second,
    ) != (0, 0, 0):
        return f"{start:%Y-%m-%d %H:%M} UTC – {end_exclusive:%Y-%m-%d %H:%M} UTC (end excluded)"
    s, e = start.date(), (end_exclusive - timedelta(days=1)).date()
    if s == e:
        return f"{_day(s)} {s.year}"
    if s.year == e.year:
        return f"{_day(s)} – {_day(e)} {e.year}"
    return f"{_day(s)} {s.year} – {_day(e)} {e.year}"


def inclusive_dates(start: datetime, end_exclusive: datetime) -> tuple[str, str]:
    """ISO start and last day (inclusive) for whole days; compact date-times otherwise."""
    whole = all((t.hour, t.minute, t.second) == (0, 0, 0) for t in (start, end_exclusive))
    if whole:
        return start.date().isoformat(), (end_exclusive - timedelta(days=1)).date().isoformat()
    return f"{start:%Y-%m-%dT%H%MZ}", f"{end_exclusive:%Y-%m-%dT%H%MZ}"


def file_name(start: datetime, end_exclusive: datetime, group_by: str, fmt: str) -> str:
    s, e = inclusive_dates(start, end_exclusive)
    ext = {"json": "json", "esrs": "esrs.json", "csv": "csv", "html": "html"}[fmt]
    return f"emissions-report-{s}-to-{e}-by-{group_by}.{ext}"


def report_id_for(secret: str, account_id: str, start: datetime, end: datetime, group_by: str) -> str:
    msg = f"powermeter-report-id|{account_id}|{start.isoformat()}|{end.isoformat()}|{group_by}".encode()
    return "rpt_" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:24]


def human_number(text: str) -> str:
    """A figure rounded for people: 3 decimals at most, 4 significant figures below 1."""
    try:
        v = float(text)
    except ValueError:
        return text
    if "." not in text and "e" not in text.lower():
        return text  # an integer stays as it is
    if v == 0 or math.isnan(v) or math.isinf(v):
        return "0" if v == 0 else text
    a = abs(v)
    decimals = 3 if a >= 1 else min(9, 3 - math.floor(math.log10(a)))
    out = f"{v:.{decimals}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


def round_csv(body: bytes) -> bytes:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    if not rows:
        return body
    header = rows[0]
    cols = [i for i, name in enumerate(header) if name.endswith(ROUNDED_SUFFIXES)]
    for row in rows[1:]:
        for i in cols:
            if i < len(row) and row[i]:
                row[i] = human_number(row[i])
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


#: How each GHG booking of a report is named once on the page (the report's own text has the long form).
SHORT_GHG_LABELS = {
    "scope2": "Scope 2 · location- and market-based",
    "scope3_cat1": "Scope 3 Cat 1 · average-data",
    "unclassified": "Unclassified (jobs sent without ownership or provider: not booked in a scope)",
}


def ghg_labels(doc: dict[str, Any]) -> list[str]:
    """The distinct GHG bookings of the lines, in words (``Scope 3 Cat 1 · average-data``)."""
    seen: list[str] = []
    for line in doc.get("lines") or doc.get("by_ghg_category") or []:
        g = line.get("ghg")
        if isinstance(g, dict) and g.get("code") in SHORT_GHG_LABELS:
            label = SHORT_GHG_LABELS[str(g["code"])]
        elif isinstance(g, dict):
            cat = f" Cat {g['category']}" if g.get("category") is not None else ""
            label = f"Scope {g.get('scope')}{cat}"
        else:
            label = str(g)
        if label not in seen:
            seen.append(label)
    return seen


def _period(page: Page, start: str, end: str) -> Any:
    from powermeter.reports import service as reports

    return reports.parse_period(start or None, end or None, page.now)


@router.get("/reports")
def reports_page(
    start: Annotated[str, Query(max_length=40)] = "",
    end: Annotated[str, Query(max_length=40)] = "",
    group_by: Annotated[ReportGroup, Query()] = "month",
    page: Page = SignedIn(),
) -> Response:
    from powermeter.reports import service as reports

    today = page.now.astimezone(UTC).date()
    ctx: dict[str, Any] = {
        "page_title": "Reports",
        "start": start,
        "end": end,
        "group_by": group_by,
        "groups": REPORT_GROUPS,
        "error": None,
        "doc": None,
        "presets": presets(today),
    }
    try:
        period = _period(page, start, end)
        rid = report_id_for(page.state.secret, page.account_id, period.start, period.end, group_by)
        doc = reports.build_document(
            page.conn,
            page.state.signer,
            account_id=page.account_id,
            email=page.session.email,
            period=period,
            group_by=group_by,
            view="report",
            now=page.now,
            db=page.state.db,
            with_coverage=False,
            report_id=rid,
        )
    except ApiError as e:
        ctx["error"] = e.detail
        return render(page.request, "reports.html", ctx, status_code=400)
    s_iso, e_iso = inclusive_dates(period.start, period.end)
    ctx.update(
        doc=doc,
        period=period,
        period_label=inclusive_label(period.start, period.end),
        ghg=ghg_labels(doc),
        qs_start=start or s_iso,
        qs_end=end or e_iso,
        files={f: file_name(period.start, period.end, group_by, f) for f in FORMATS},
        includes_today=period.end > page.now,
    )
    for p in ctx["presets"]:
        p["current"] = p["start"] == s_iso and p["end"] == e_iso
    return render(page.request, "reports.html", ctx)


@router.get("/reports/download")
def report_download(
    format: Annotated[Literal["json", "esrs", "csv", "html"], Query()],
    start: Annotated[str, Query(max_length=40)] = "",
    end: Annotated[str, Query(max_length=40)] = "",
    group_by: Annotated[ReportGroup, Query()] = "month",
    page: Page = SignedIn(),
) -> Response:
    """The report as a file (its audit ``DOWNLOAD`` entry written), named by its inclusive dates."""
    import orjson

    from powermeter.reports import service as reports

    period = _period(page, start, end)
    rid = report_id_for(page.state.secret, page.account_id, period.start, period.end, group_by)
    with reports.snapshot(page.state.db, page.conn) as conn:
        doc = reports.build_document(
            conn,
            page.state.signer,
            account_id=page.account_id,
            email=page.session.email,
            period=period,
            group_by=group_by,
            view="esrs" if format == "esrs" else "report",
            now=page.now,
            db=page.state.db,
            with_coverage=format != "csv",
            report_id=rid,
        )
    reports.record_download(page.conn, doc, format, page.now, actor_key_id=None, actor_masked_key=None, via="dashboard")
    if format in ("json", "esrs"):
        body, media_type = orjson.dumps(doc, option=orjson.OPT_INDENT_2), "application/json"
    else:
        body, media_type, _ = reports.render_document(doc, format)
        if format == "csv":
            body = round_csv(body)
    name = file_name(period.start, period.end, group_by, format)
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Report-Id": doc["report_id"]},
    )
