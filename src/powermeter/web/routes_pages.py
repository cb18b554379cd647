"""Pages over the other capabilities: usage, receipts, audit log, devices, calculator, reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from powermeter.web import capabilities as caps
from powermeter.web.deps import Page, SignedIn
from powermeter.web.render import render, wants_fragment

router = APIRouter()

Granularity = Literal["day", "week", "month"]
UsageGroup = Literal["location", "provider", "model"]
SPANS = {"day": 30, "week": 84, "month": 365}


@router.get("/usage")
def usage_page(
    granularity: Annotated[Granularity, Query()] = "day",
    group_by: Annotated[UsageGroup, Query()] = "location",
    page: Page = SignedIn(),
) -> Response:
    ctx: dict[str, Any] = {
        "page_title": "Usage",
        "granularity": granularity,
        "group_by": group_by,
        "granularities": caps.GRANULARITIES,
        "groups": caps.USAGE_GROUPS,
        "regions": caps.grid_regions(page),
        "has_records": caps.has_any_records(page),
        "base_url": str(page.request.base_url).rstrip("/"),
    }
    fragment = wants_fragment(page.request)
    if ctx["has_records"] or fragment:
        ctx.update(caps.usage(page, granularity, SPANS[granularity], group_by))
    ctx["gateway"] = caps.gateway_usage(page, SPANS[granularity])
    template = "_usage_body.html" if fragment else "usage.html"
    return render(page.request, template, ctx)


ReceiptSort = Literal["issued", "job", "kwh", "co2", "location"]


@router.get("/receipts")
def receipts_page(
    q: Annotated[str, Query(max_length=128)] = "",
    location: Annotated[str, Query(max_length=64)] = "",
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
    sort: Annotated[ReceiptSort, Query()] = "issued",
    dir: Annotated[Literal["asc", "desc"], Query()] = "desc",
    p: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page: Page = SignedIn(),
) -> Response:
    ctx: dict[str, Any] = {"page_title": "Receipts"}
    ctx.update(caps.search_receipts(page, q, p, location=location, start=start, end=end, sort=sort, direction=dir))
    template = "_receipts_results.html" if wants_fragment(page.request) else "receipts.html"
    return render(page.request, template, ctx)


@router.get("/receipts.csv")
def receipts_csv(
    q: Annotated[str, Query(max_length=128)] = "",
    location: Annotated[str, Query(max_length=64)] = "",
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
    sort: Annotated[ReceiptSort, Query()] = "issued",
    dir: Annotated[Literal["asc", "desc"], Query()] = "desc",
    page: Page = SignedIn(),
) -> Response:
    """The receipts the page's filters select, as CSV (at most 100,000 rows; exact figures)."""
    import csv
    import io

    found = caps.search_receipts(
        page, q, 1, location=location, start=start, end=end, sort=sort, direction=dir, limit=caps.RECEIPT_CSV_MAX
    )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["receipt_id", "job_id", "energy_kwh", "co2e_grams", "location", "issued_at"])
    for r in found["receipts"]:
        w.writerow([r["receipt_id"], r["job_id"], repr(r["kwh"]), repr(r["co2_grams"]), r["location"], r["timestamp"]])
    return Response(
        buf.getvalue().encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="receipts-{page.now:%Y-%m-%d}.csv"'},
    )


@router.get("/receipts/{receipt_id}")
def receipt_page(receipt_id: str, page: Page = SignedIn()) -> Response:
    ctx: dict[str, Any] = {"page_title": f"Receipt {receipt_id}"}
    ctx.update(caps.receipt_view(page, receipt_id))
    return render(page.request, "receipt.html", ctx)


@router.get("/receipts/{receipt_id}/download")
def receipt_download(receipt_id: str, page: Page = SignedIn()) -> Response:
    body = caps.receipt_file(page, receipt_id)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{receipt_id}.json"'},
    )


@router.get("/audit")
def audit_page(
    action: Annotated[str, Query(max_length=40)] = "",
    receipt: Annotated[str, Query(max_length=128)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page: Page = SignedIn(),
) -> Response:
    ctx: dict[str, Any] = {"page_title": "Audit log", "action": action, "receipt": receipt, "limit": limit}
    ctx.update(caps.audit_log(page, action or None, receipt or None, limit))
    if action and action not in ctx["actions"]:
        ctx["entries"], ctx["total"] = [], 0
    return render(page.request, "audit.html", ctx)


@router.get("/calculator")
def calculator_page(page: Page = SignedIn()) -> Response:
    from powermeter.cost.deps import rates_provider

    rates = rates_provider(page.request).get_with(page.conn)
    regions = sorted(rates.regions.values(), key=lambda r: r.name)
    return render(page.request, "calculator.html", {"page_title": "Calculator", "regions": regions})
