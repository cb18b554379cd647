"""The "Bills" page: upload a Green Button file, see the monthly bill and the tariff comparison."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, UploadFile
from starlette.responses import Response

from powermeter.infra.errors import ApiError
from powermeter.web.deps import Page, SignedIn, SignedInForm
from powermeter.web.render import render

router = APIRouter()


def _tariffs(page: Page) -> list[dict[str, str]]:
    from powermeter.cost.deps import rates_provider

    rates = rates_provider(page.request).get()
    return [
        {"id": t.id, "label": f"{t.name} ({t.region})", "region": t.region}
        for t in sorted(rates.tariffs.values(), key=lambda t: (t.region, t.id))
    ]


def _ctx(page: Page, **extra: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "page_title": "Bills",
        "tariffs": _tariffs(page),
        "form": {"tariff": "pge-e-tou-c", "region": "US-CA", "timezone": ""},
        "bill": None,
        "compare": None,
        "error": None,
    }
    ctx.update(extra)
    return ctx


def _charts(bill: dict[str, Any] | None, compare: dict[str, Any] | None) -> dict[str, Any]:
    charts: dict[str, Any] = {}
    if bill:
        charts["months"] = {
            "type": "bar",
            "labels": [m["month"] for m in bill["months"]],
            "series": [[m["total"] for m in bill["months"]]],
            "names": [f"Bill ({bill['currency']})"],
        }
    if compare:
        charts["compare"] = {
            "type": "bar",
            "labels": [t["tariffId"] for t in compare["tariffs"]],
            "series": [[t["total"] for t in compare["tariffs"]]],
            "names": ["Total for these readings"],
        }
    return charts


@router.get("/bills")
def bills_page(page: Page = SignedIn()) -> Response:
    return render(page.request, "bills.html", _ctx(page))


@router.post("/bills")
async def bills_upload(
    file: UploadFile,
    tariff: Annotated[str, Form(max_length=100)] = "",
    region: Annotated[str, Form(max_length=20)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    page: Page = SignedInForm(),
) -> Response:
    from powermeter.cost import bills
    from powermeter.cost.deps import rates_provider

    form = {"tariff": tariff, "region": region, "timezone": timezone}
    data = await file.read(bills.MAX_BODY_BYTES + 1)
    error: str | None = None
    bill: dict[str, Any] | None = None
    compare: dict[str, Any] | None = None
    if len(data) > bills.MAX_BODY_BYTES:
        error = f"The file is larger than {bills.MAX_BODY_BYTES // (1024 * 1024)} MiB."
    elif not data.strip():
        error = "Choose a Green Button file (CSV or XML) to upload."
    else:
        rates = rates_provider(page.request).get()
        ct = "application/xml" if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<" else "text/csv"
        params: dict[str, Any] = {}
        if timezone.strip():
            params["timezone"] = timezone.strip()
        try:
            if tariff:
                bill = bills.bill({**params, "tariffId": tariff}, data, ct, rates)
            if region:
                compare = bills.compare(
                    {**params, "regionCode": region, **({"currentTariffId": tariff} if tariff else {})},
                    data,
                    ct,
                    rates,
                )
        except ApiError as exc:
            error = exc.detail
        if not tariff and not region:
            error = "Choose your tariff, a region to compare, or both."
    ctx = _ctx(
        page,
        form=form,
        bill=bill,
        compare=compare,
        error=error,
        filename=file.filename or "",
        charts=_charts(bill, compare),
    )
    return render(page.request, "bills.html", ctx, status_code=400 if error else 200)
