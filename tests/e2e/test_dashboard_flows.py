"""What three real users do in the dashboard, in chromium against a real server (issue 21): the
household user's devices, safe key creation, usage history with the browser's Back button, a
preparer's report downloads, and pages and charts that fit a phone."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .conftest import Server, screenshot
from .test_dashboard import create_key, expect, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Page


def _report_jobs(server: Server, key: str, n: int = 3) -> None:
    for i in range(n):
        job = {
            "job_id": f"flow-job-{i}",
            "duration_minutes": 60 + 30 * i,
            "cpu_cores": 8,
            "memory_gb": 32,
            "gpu_cores": 1,
            "geo_iso": ("US", "DE", "FR")[i % 3],
        }
        r = httpx.post(server.url("/v1/report"), json=job, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code in (200, 201), r.text
    r = httpx.post(
        server.url("/v1/inference"),
        json={"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 900, "completion_tokens": 400},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code in (200, 201), r.text


def test_back_after_switching_usage_views_shows_the_whole_page(page: Page, server: Server) -> None:
    sign_up(page, f"hist-{uuid.uuid4().hex[:8]}@example.com")
    _report_jobs(server, create_key(page, "hist", ["report:write", "inference:write"]), 1)
    page.goto("/dashboard/usage")
    page.get_by_role("link", name="Weekly").click()
    expect(page.get_by_role("link", name="Weekly")).to_have_attribute("aria-current", "true")
    expect(page).to_have_url(re.compile(r"granularity=week"))
    page.get_by_role("link", name="Monthly").click()
    expect(page.get_by_role("link", name="Monthly")).to_have_attribute("aria-current", "true")
    expect(page).to_have_url(re.compile(r"granularity=month"))  # the URL of the view just loaded
    page.go_back()
    expect(page).to_have_url(re.compile(r"granularity=week"))
    expect(page.get_by_role("link", name="Weekly")).to_have_attribute("aria-current", "true")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Usage")
    assert page.locator("header.top").count() == 1
    assert page.locator("#usage-body").count() == 1
    page.go_back()
    expect(page).to_have_url(re.compile(r"/dashboard/usage$"))
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="Daily")).to_have_attribute("aria-current", "true")
    # a reload of an htmx-loaded address is a whole page too
    page.go_forward()
    expect(page).to_have_url(re.compile(r"granularity=week"))
    page.reload()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Usage")


def test_reloading_after_creating_a_key_creates_no_second_key(page: Page, server: Server) -> None:
    sign_up(page, f"prg-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/dashboard/settings")
    assert page.locator("input[name=scopes]:checked").count() == 0  # nothing ticked by default
    page.get_by_role("button", name="CI reporter").click()
    assert [b.get_attribute("value") for b in page.locator("input[name=scopes]:checked").all()] == ["report:write"]
    page.get_by_label("Name", exact=True).fill("ci runner")
    page.get_by_role("button", name="Create key").click()
    field = page.get_by_test_id("new-key")
    key = field.input_value()
    rows = page.locator("#keys tbody tr")
    expect(rows).to_have_count(1)
    page.reload()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    expect(rows).to_have_count(1)
    assert key.startswith("pm_live_")
    page.goto("/dashboard/audit?action=KEY_CREATED")  # the audit log saw one creation, not two
    expect(page.locator("tbody tr")).to_have_count(1)


def test_household_user_sets_a_region_and_adds_edits_and_deletes_a_device(
    page: Page, server: Server, shots: Path
) -> None:
    sign_up(page, f"home-{uuid.uuid4().hex[:8]}@example.com")
    key = create_key(page, "my phone", ["devices:read"])

    def api_devices() -> list[dict[str, Any]]:
        r = httpx.get(server.url("/api/v1/me/devices"), headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        return list(r.json())

    page.goto("/dashboard/devices")
    expect(page.get_by_role("status")).to_contain_text("Choose your region")
    region = page.get_by_label("Region")
    region.fill("California (US-CA)")
    page.get_by_role("button", name="Save rate").click()
    expect(page.get_by_test_id("rate-summary")).to_contain_text("California")
    expect(page.get_by_test_id("rate-price")).to_contain_text("USD/kWh")
    profile = httpx.get(server.url("/api/v1/me/profile"), headers={"Authorization": f"Bearer {key}"}).json()
    assert profile["region_code"] == "US-CA"
    assert api_devices() == []

    # from the catalog: the picker fills the name and watts (and 24 h for an always-on NAS)
    add = page.locator("#add-device")
    add.get_by_label("From the catalog").select_option("synology-ds923")
    expect(add.get_by_label("Watts")).to_have_value("35.5")
    expect(add.get_by_label("Name")).to_have_value("Synology DS923+ NAS (4-bay)")
    expect(add.get_by_label("Hours per day")).to_have_value("24")
    add.get_by_role("button", name="Add device").click()
    device = page.get_by_test_id("device")
    expect(device).to_have_count(1)
    (d,) = api_devices()
    assert (d["name"], d["watts"], d["hours_per_day"], d["catalog_device_slug"]) == (
        "Synology DS923+ NAS (4-bay)",
        35.5,
        24,
        "synology-ds923",
    )
    yearly = device.get_by_test_id("device-annual")
    expect(yearly).to_have_text(re.compile(r"^[0-9][0-9,]*\.[0-9]{2} USD$"))
    first_cost = float(yearly.inner_text().split()[0].replace(",", ""))
    screenshot(page, shots, "devices")

    # edit its hours: half the runtime, half the yearly cost
    device.get_by_text(re.compile("^Edit ")).click()
    device.get_by_label("Hours per day").fill("12")
    device.get_by_role("button", name=re.compile("^Save ")).click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    (d,) = api_devices()
    assert d["hours_per_day"] == 12
    second_cost = float(page.get_by_test_id("device-annual").inner_text().split()[0].replace(",", ""))
    assert abs(second_cost - first_cost / 2) <= 0.01

    # delete (after confirming)
    page.once("dialog", lambda dlg: dlg.accept())
    page.get_by_test_id("device").get_by_role("button", name=re.compile("^Delete ")).click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    expect(page.get_by_test_id("device")).to_have_count(0)
    assert api_devices() == []


def test_reports_page_downloads_last_quarter_in_four_formats(page: Page, server: Server, shots: Path) -> None:
    import datetime as dt

    sign_up(page, f"rep-{uuid.uuid4().hex[:8]}@example.com")
    key = create_key(page, "reporter", ["report:write", "inference:write"])
    _report_jobs(server, key)
    page.goto("/dashboard/reports")
    page.get_by_role("link", name="Last quarter").click()
    today = dt.datetime.now(dt.UTC).date()
    q0 = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last_end = q0 - dt.timedelta(days=1)
    last_start = dt.date(last_end.year, 3 * ((last_end.month - 1) // 3) + 1, 1)
    label = f"{last_start.day} {last_start:%b} – {last_end.day} {last_end:%b} {last_end.year}"
    expect(page.get_by_test_id("report-period")).to_have_text(label)
    expect(page.get_by_role("heading", name="Methodology and limits")).to_be_visible()
    names = {}
    for button, fmt in (
        ("Download signed JSON", "json"),
        ("Download CSV", "csv"),
        ("Download signed HTML", "html"),
        ("Download ESRS (JSON)", "esrs"),
    ):
        with page.expect_download() as info:
            page.get_by_role("link", name=button).click()
        names[fmt] = info.value.suggested_filename
        assert info.value.failure() is None
    stem = f"emissions-report-{last_start.isoformat()}-to-{last_end.isoformat()}-by-month"
    assert names == {"json": stem + ".json", "csv": stem + ".csv", "html": stem + ".html", "esrs": stem + ".esrs.json"}
    page.get_by_role("link", name="Year to date").click()
    expect(page.get_by_test_id("report-kwh")).not_to_have_text("0")
    screenshot(page, shots, "reports")


PHONE_PAGES = (
    "/dashboard/",
    "/dashboard/usage",
    "/dashboard/usage?granularity=week",
    "/dashboard/usage?granularity=month",
    "/dashboard/receipts",
    "/dashboard/audit",
    "/dashboard/devices",
    "/dashboard/calculator",
    "/dashboard/reports",
    "/dashboard/settings",
)

# The text boxes of every chart's axis labels, grouped per chart and axis (rendered glyph extents,
# measured with a Range over each label's text, not the label element's layout box).
LABEL_BOXES_JS = """() => Array.from(document.querySelectorAll('.chart svg')).map(svg => {
  const axes = {x: [], y: []};
  svg.querySelectorAll('.ct-label').forEach(el => {
    if (!el.textContent.trim()) return;
    const r = document.createRange(); r.selectNodeContents(el);
    const b = r.getBoundingClientRect();
    if (b.width === 0) return;
    (el.classList.contains('ct-horizontal') ? axes.x : axes.y).push(
      {text: el.textContent.trim(), left: b.left, right: b.right, top: b.top, bottom: b.bottom});
  });
  return axes;
})"""


def _overlaps(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    bad = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if (
                a["left"] < b["right"] - 0.5
                and b["left"] < a["right"] - 0.5
                and a["top"] < b["bottom"] - 0.5
                and b["top"] < a["bottom"] - 0.5
            ):
                bad.append((a["text"], b["text"]))
    return bad


def test_no_page_scrolls_sideways_on_a_phone_and_chart_labels_do_not_overlap(
    page: Page, server: Server, shots: Path
) -> None:
    sign_up(page, f"phone2-{uuid.uuid4().hex[:8]}@example.com")
    key = create_key(page, "phone key", ["report:write", "inference:write", "receipts:read"])
    _report_jobs(server, key)
    page.goto("/dashboard/receipts")
    receipt_path = page.locator("#receipt-results tbody a").first.get_attribute("href")
    assert receipt_path
    for width, height in ((390, 844), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        year_report = "/dashboard/reports?start=2026-01-01&end=2026-12-31&group_by=location"
        for path in (*PHONE_PAGES, receipt_path, year_report):
            page.goto(path)
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
            if path.startswith("/dashboard/usage"):
                page.wait_for_selector(".chart svg")
                charts = page.evaluate(LABEL_BOXES_JS)
                assert len(charts) == 5, path
                for c in charts:
                    assert len(c["x"]) >= 2, (path, width, c["x"])
                    assert _overlaps(c["x"]) == [], (path, width, _overlaps(c["x"]))
                    assert _overlaps(c["y"]) == [], (path, width, _overlaps(c["y"]))
                    assert not any("-" in b["text"] and len(b["text"]) > 8 for b in c["x"])  # short labels
        if width == 390:
            page.goto("/dashboard/usage")
            page.wait_for_selector(".chart svg")
            screenshot(page, shots, "usage-phone")


def test_calculator_explains_its_rate_and_errors_and_adds_a_device(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"calc2-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/dashboard/calculator")
    page.get_by_label("Rate", exact=True).select_option("region")
    page.get_by_label("Region").fill("XX-NOPE")
    page.get_by_role("button", name="Calculate").click()
    expect(page.get_by_role("alert")).to_have_text("No tariff for XX-NOPE — try US-CA, DE or GB.")
    page.get_by_label("Region").fill("California (US-CA)")
    page.get_by_label("Schedule (optional)").fill("17-21")  # 4 h, but 8 h a day asked
    page.get_by_role("button", name="Calculate").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile(r"^Hours a day 8 h exceeds the schedule's 4 h.*\.$"))
    page.get_by_label("Schedule (optional)").fill("")
    page.get_by_role("button", name="Calculate").click()
    result = page.get_by_test_id("calc-result")
    expect(result).to_contain_text("86.17 USD")  # 0.8 kWh/day × 0.2951 × 365, to 2 decimals
    expect(result).to_contain_text("0.2951 USD/kWh")
    expect(result.locator("#calc-source")).to_contain_text("EIA")
    expect(page.get_by_test_id("calc-fallback")).to_contain_text("no schedule")
    screenshot(page, shots, "calculator")
    page.get_by_label("Name", exact=True).fill("Heater")
    page.get_by_role("button", name="Add to my devices").click()
    page.wait_for_url("**/dashboard/devices?flash=device-added*")
    expect(page.get_by_test_id("device")).to_contain_text("Heater")


def test_phone_navigation_folds_into_a_menu_and_pages_have_a_favicon(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"menu-{uuid.uuid4().hex[:8]}@example.com")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard/")
    expect(page.get_by_test_id("first-report")).to_be_visible()  # a new account: how to start, no empty charts
    nav = page.get_by_role("navigation", name="Main")
    button = page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    screenshot(page, shots, "overview-phone")
    button.click()
    expect(nav).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    screenshot(page, shots, "menu-phone", full_page=False)
    nav.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/dashboard/usage")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon
    assert httpx.get(server.url(icon)).status_code == 200
