"""Devices & costs: the rate profile (region, tariff or a custom rate) and the account's devices.

Every write goes through the devices capability's service (the same functions ``/api/v1/me/*``
uses), so the page and the API always agree. Each form posts, then redirects (post/redirect/get);
a refused form is shown again with its error and what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form
from starlette.responses import RedirectResponse, Response

from powermeter.infra.errors import ApiError
from powermeter.web.deps import Page, SignedIn, SignedInForm
from powermeter.web.render import render

router = APIRouter()

# Catalog categories whose devices run around the clock: the picker suggests 24 hours a day.
ALWAYS_ON_CATEGORIES = frozenset({"networking", "smart-home"})
_CODE_IN_PARENS = re.compile(r"\(([A-Za-z]{2}(?:-[A-Za-z0-9]{1,4})?)\)\s*$")
_HOURS_RANGE = re.compile(r"^\s*(\d{1,2}(?:\.\d+)?)\s*[-–]\s*(\d{1,2}(?:\.\d+)?)\s*$")


class FormError(Exception):
    """A field of a dashboard form that cannot be used as typed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _rates(page: Page) -> Any:
    from powermeter.cost.deps import rates_provider

    return rates_provider(page.request).get_with(page.conn)


def _tariff_key(cfg: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(dict(cfg), option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value JSON cannot carry exactly (an integer past 64 bits): matches no tariff
        return b""


def tariff_configs(rates: Any) -> dict[bytes, Any]:
    """Each tariff's inline rate configuration (what the profile stores for a non-default tariff)."""
    from powermeter.data.rates import _rate_config

    return {_tariff_key(_rate_config(t.raw)): t for t in rates.tariffs.values()}


def region_code_of(raw: str, rates: Any) -> str | None:
    """``US-CA`` from ``US-CA``, ``us-ca`` or ``California (US-CA)`` (what the searchable list shows)."""
    text = raw.strip()
    if not text:
        return None
    m = _CODE_IN_PARENS.search(text)
    code = (m.group(1) if m else text).upper()
    if rates.region(code) is not None:
        return str(rates.region(code).code)
    by_name = [r for r in rates.regions.values() if r.name.lower() == text.lower()]
    if len(by_name) == 1:
        return str(by_name[0].code)
    examples = ", ".join(c for c in ("US-CA", "DE", "GB") if rates.region(c) is not None)
    raise FormError(
        "region_code",
        f"There is no region “{text}” in the rates dataset. Pick one from the list (for example {examples}).",
    )


def parse_schedule(raw: str) -> list[list[float]] | None:
    """``22-6, 12-14`` → ``[[22, 30], [12, 14]]`` (a window past midnight ends after 24, as the API wants)."""
    text = raw.strip()
    if not text:
        return None
    out: list[list[float]] = []
    for part in text.split(","):
        m = _HOURS_RANGE.match(part)
        if not m:
            raise FormError(
                "schedule",
                f"“{part.strip()}” is not a time window; write hours as start-end, "
                "e.g. 22-6 or 9-17, separated by commas.",
            )
        start, end = float(m.group(1)), float(m.group(2))
        if not (0 <= start < 24 and 0 <= end <= 24):
            raise FormError("schedule", f"“{part.strip()}”: hours go from 0 to 24.")
        if end <= start:
            end += 24
        out.append([start, end])
    return out


def schedule_text(sched: list[list[float]] | None) -> str:
    if not sched:
        return ""

    def h(x: float) -> str:
        x = x % 24 if x > 24 else x
        return f"{x:g}"

    return ", ".join(f"{h(a)}-{h(b)}" for a, b in sched)


def _number(raw: str, field: str, label: str, *, lo: float, hi: float, required: bool) -> float | None:
    text = raw.strip().replace(",", ".")
    if not text:
        if required:
            raise FormError(field, f"{label} is required.")
        return None
    try:
        v = float(Decimal(text))
    except InvalidOperation:
        raise FormError(field, f"{label} must be a number (you typed “{raw.strip()}”).") from None
    if not (lo <= v <= hi):
        raise FormError(field, f"{label} must be between {lo:g} and {hi:g}.")
    return v


# --- reading ----------------------------------------------------------------------------------------


def rate_summary(profile: Mapping[str, Any], rates: Any) -> dict[str, Any] | None:
    """What the profile's rate is, in words: region, tariff name and year, price per kWh, source."""
    region_code = profile.get("region_code")
    cfg = profile.get("rate_config")
    region = rates.region(region_code) if region_code else None
    out: dict[str, Any] = {
        "region": region,
        "tariff": None,
        "custom": None,
        "price": None,
        "currency": None,
        "year": None,
        "source": None,
        "has_tou": False,
    }
    if cfg is not None:
        tariff = tariff_configs(rates).get(_tariff_key(cfg))
        if tariff is not None:
            out["tariff"] = tariff
        else:
            out["custom"] = cfg
        from powermeter.cost import service as cost_service

        try:
            compiled = cost_service.compile_inline(cfg, "rate_config")
        except ApiError:
            return out
        out["currency"] = compiled.spec.currency
        out["has_tou"] = compiled.has_tou
        out["price"] = compiled.spec.flat_rate if compiled.spec.flat_rate is not None else compiled.average_price
        if tariff is not None:
            out["year"] = tariff.effective_date.year
            out["source"] = tariff.source
        return out
    if region is None:
        return None
    resolved = rates.resolve(region.code)
    out["currency"] = region.currency
    if resolved is not None and resolved.tariff is not None:
        t = resolved.tariff
        out["tariff"] = t
        out["year"] = t.effective_date.year
        out["source"] = t.source
        out["has_tou"] = resolved.rate.has_tou
        out["price"] = resolved.rate.average_price if resolved.rate.has_tou else resolved.rate.spec.flat_rate
        out["flat_rate"] = region.flat_rate
    else:
        out["price"] = region.flat_rate
        out["year"] = region.year
        out["source"] = region.source
    return out


def devices_context(page: Page) -> dict[str, Any]:
    from powermeter.data.devices import load_catalog
    from powermeter.devices import service as devices

    rates = _rates(page)
    rows = devices.list_devices(page.conn, page.account_id)
    profile = devices.get_profile(page.conn, page.account_id)
    costs: dict[str, Any] | None = None
    cost_error: str | None = None
    if rows and profile:
        try:
            costs = devices.costs(page.conn, page.account_id, rates)
        except ApiError as e:
            cost_error = e.detail
    catalog = load_catalog()
    by_slug = {d.slug: d for d in catalog.devices}
    summary = rate_summary(profile, rates) if profile else None
    tariff_now = ""
    if profile.get("rate_config") is not None and summary and summary["tariff"] is not None:
        tariff_now = summary["tariff"].id
    elif profile.get("rate_config") is not None:
        tariff_now = "custom"
    regions = sorted(rates.regions.values(), key=lambda r: r.name)
    tariffs_by_region: dict[str, list[Any]] = {}
    for t in sorted(rates.tariffs.values(), key=lambda t: t.name):
        tariffs_by_region.setdefault(t.region, []).append(t)
    region_obj = rates.region(profile["region_code"]) if profile.get("region_code") else None
    cfg = profile.get("rate_config") or {}
    return {
        "page_title": "Devices & costs",
        "devices": rows,
        "profile": profile,
        "rate": summary,
        "costs": costs,
        "cost_by_id": {d["id"]: d for d in (costs or {}).get("devices", [])},
        "cost_error": cost_error,
        "catalog": catalog.devices,
        "catalog_by_slug": by_slug,
        "always_on": ALWAYS_ON_CATEGORIES,
        "regions": regions,
        "tariffs_by_region": tariffs_by_region,
        "region_label": f"{region_obj.name} ({region_obj.code})" if region_obj else "",
        "pricing_now": tariff_now or "region",
        "custom_rate": cfg.get("flat_rate", "") if tariff_now == "custom" else "",
        "custom_currency": cfg.get("currency", "") if tariff_now == "custom" else "",
        "schedule_text": schedule_text,
        "errors": {},
        "form": {},
        "editing": None,
    }


@router.get("/devices")
def devices_page(page: Page = SignedIn()) -> Response:
    return render(page.request, "devices.html", devices_context(page))


def _refused(
    page: Page, where: str, field: str, message: str, form: dict[str, Any], editing: str | None = None
) -> Response:
    ctx = devices_context(page)
    ctx["errors"] = {"where": where, "field": field, "message": message}
    ctx["form"] = form
    ctx["editing"] = editing
    return render(page.request, "devices.html", ctx, status_code=400)


def _done(flash: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/dashboard/devices?flash={flash}{anchor}", status_code=303)


# --- writing ----------------------------------------------------------------------------------------


@router.post("/devices/profile")
def save_profile(
    region: Annotated[str, Form(max_length=120)] = "",
    pricing: Annotated[str, Form(max_length=100)] = "region",
    flat_rate: Annotated[str, Form(max_length=40)] = "",
    currency: Annotated[str, Form(max_length=8)] = "",
    page: Page = SignedInForm(),
) -> Response:
    from powermeter.data.rates import _rate_config
    from powermeter.devices import service as devices
    from powermeter.devices.schemas import ProfileIn

    form = {"region": region, "pricing": pricing, "flat_rate": flat_rate, "currency": currency}
    rates = _rates(page)
    try:
        code = region_code_of(region, rates)
        rate_config: dict[str, Any] | None = None
        if pricing == "custom":
            rate = _number(flat_rate, "flat_rate", "The custom rate", lo=0, hi=100, required=True)
            cur = (currency.strip() or (rates.region(code).currency if code else "USD")).upper()
            if not (3 <= len(cur) <= 4 and cur.isalpha()):
                raise FormError("currency", "The currency is a three-letter code such as USD, EUR or GBP.")
            rate_config = {"flat_rate": rate, "currency": cur}
        elif pricing not in ("", "region"):
            tariff = rates.tariffs.get(pricing)
            if tariff is None or code is None or tariff.region != code:
                raise FormError(
                    "pricing",
                    "That tariff is not offered in the chosen region; pick the region's "
                    "tariff or one listed under the region.",
                )
            if rates.region(code).default_tariff != tariff.id:
                rate_config = _rate_config(tariff.raw)
        elif code is None:
            raise FormError("region_code", "Choose your region (or a custom rate) so costs can be worked out.")
        devices.put_profile(
            page.conn, page.account_id, ProfileIn(region_code=code, rate_config=rate_config), rates, page.now
        )
    except FormError as e:
        return _refused(page, "profile", e.field, e.message, form)
    except ApiError as e:
        return _refused(page, "profile", "", e.detail, form)
    return _done("profile-saved", "#rate")


def _device_values(
    name: str, catalog_slug: str, watts: str, hours: str, schedule: str, shiftable: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": name.strip() or None,
        "catalog_device_slug": catalog_slug.strip() or None,
        "watts": _number(watts, "watts", "Watts", lo=0, hi=1_000_000, required=False),
        "hours_per_day": _number(hours, "hours_per_day", "Hours per day", lo=0, hi=24, required=False),
        "schedule": parse_schedule(schedule),
        "shiftable": shiftable is not None,
    }
    return values


@router.post("/devices")
def add_device(
    name: Annotated[str, Form(max_length=200)] = "",
    catalog_device_slug: Annotated[str, Form(max_length=100)] = "",
    watts: Annotated[str, Form(max_length=40)] = "",
    hours_per_day: Annotated[str, Form(max_length=40)] = "",
    schedule: Annotated[str, Form(max_length=200)] = "",
    shiftable: Annotated[str | None, Form(max_length=10)] = None,
    page: Page = SignedInForm(),
) -> Response:
    from powermeter.data.devices import load_catalog
    from powermeter.devices import service as devices
    from powermeter.devices.schemas import DeviceIn

    form = {
        "name": name,
        "catalog_device_slug": catalog_device_slug,
        "watts": watts,
        "hours_per_day": hours_per_day,
        "schedule": schedule,
        "shiftable": shiftable is not None,
    }
    try:
        values = _device_values(name, catalog_device_slug, watts, hours_per_day, schedule, shiftable)
        if values["hours_per_day"] is None and values["schedule"] is None:
            raise FormError("hours_per_day", "Hours per day is required (or give a schedule).")
        created = devices.create_device(page.conn, page.account_id, DeviceIn(**values), load_catalog(), page.now)
    except FormError as e:
        return _refused(page, "add", e.field, e.message, form)
    except ApiError as e:
        return _refused(page, "add", "", e.detail, form)
    return _done("device-added", f"#device-{created['id']}")


@router.post("/devices/{device_id}")
def edit_device(
    device_id: str,
    name: Annotated[str, Form(max_length=200)] = "",
    watts: Annotated[str, Form(max_length=40)] = "",
    hours_per_day: Annotated[str, Form(max_length=40)] = "",
    schedule: Annotated[str, Form(max_length=200)] = "",
    shiftable: Annotated[str | None, Form(max_length=10)] = None,
    page: Page = SignedInForm(),
) -> Response:
    from powermeter.data.devices import load_catalog
    from powermeter.devices import service as devices
    from powermeter.devices.schemas import DevicePatch

    form = {
        "name": name,
        "watts": watts,
        "hours_per_day": hours_per_day,
        "schedule": schedule,
        "shiftable": shiftable is not None,
    }
    try:
        values = _device_values(name, "", watts, hours_per_day, schedule, shiftable)
        if values["name"] is None:
            raise FormError("name", "Name is required.")
        if values["watts"] is None:
            raise FormError("watts", "Watts is required.")
        if values["hours_per_day"] is None and values["schedule"] is None:
            raise FormError("hours_per_day", "Hours per day is required (or give a schedule).")
        patch = {k: values[k] for k in ("name", "watts", "schedule", "shiftable")}
        if values["hours_per_day"] is not None:
            patch["hours_per_day"] = values["hours_per_day"]
        devices.update_device(page.conn, page.account_id, device_id, DevicePatch(**patch), load_catalog(), page.now)
    except FormError as e:
        return _refused(page, device_id, e.field, e.message, form, editing=device_id)
    except ApiError as e:
        if e.status == 404:
            return _done("device-not-found")
        return _refused(page, device_id, "", e.detail, form, editing=device_id)
    return _done("device-saved", f"#device-{device_id}")


@router.post("/devices/{device_id}/delete")
def delete_device(device_id: str, page: Page = SignedInForm()) -> Response:
    from powermeter.devices import service as devices

    try:
        devices.delete_device(page.conn, page.account_id, device_id)
    except ApiError:
        return _done("device-not-found")
    return _done("device-deleted")
