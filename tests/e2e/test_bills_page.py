"""The Bills page in a real browser: upload a Green Button file, see the monthly bill and the comparison drawn."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .conftest import Server, screenshot
from .test_dashboard import script_bytes, sign_up, unlabelled_controls

if TYPE_CHECKING:
    from playwright.sync_api import Page

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meter"


def test_upload_a_green_button_file_and_see_bill_and_comparison(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"bills-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/dashboard/bills")
    assert unlabelled_controls(page) == []
    page.get_by_label("Meter file (at most 16 MiB)").set_input_files(str(FIXTURES / "espi.xml"))
    page.get_by_label("Your tariff").select_option("pge-e-tou-c")
    page.get_by_label("Compare every tariff of region").fill("US-CA")
    page.get_by_role("button", name="Bill it").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id("bill-total").inner_text().endswith("USD")
    # Chartist drew both charts (an SVG inside each chart container)
    page.wait_for_selector('[data-chart="chart-months-data"] svg')
    page.wait_for_selector('[data-chart="chart-compare-data"] svg')
    assert page.locator('[data-testid="compare-result"] tbody tr').count() >= 6
    assert page.locator("h1").count() == 1
    assert script_bytes(page) <= 100_000
    screenshot(page, shots, "bills")
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the Bills page scrolls sideways by {overflow}px on a phone"
