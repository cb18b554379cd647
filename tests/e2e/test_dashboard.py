"""The dashboard in a real browser against a real server: sign up, create a key, use it, see it
counted, revoke it; CSRF, keyboard use, the JavaScript budget; screenshots of every page."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .conftest import Server, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "e2e passphrase that is long"
JS_BUDGET_BYTES = 100_000


def expect(page: Page) -> Any:
    from playwright.sync_api import expect as _expect

    return _expect(page)


def sign_up(page: Page, email: str) -> None:
    page.goto("/dashboard/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/dashboard/settings?flash=welcome")


def log_in(page: Page, email: str) -> None:
    page.goto("/dashboard/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/dashboard/?$"))


def create_key(page: Page, name: str, scopes: list[str] | None = None) -> str:
    page.goto("/dashboard/settings")
    page.get_by_label("Name", exact=True).fill(name)
    if scopes is None:
        page.get_by_role("button", name="Everything").click()  # no scope is ticked by default
    else:
        for box in page.locator("input[name=scopes]").all():
            box.set_checked(box.get_attribute("value") in scopes)
    page.get_by_role("button", name="Create key").click()
    field = page.get_by_test_id("new-key")
    field.wait_for()
    key = field.input_value()
    assert re.fullmatch(r"pm_live_[0-9A-Za-z]{43}", key)
    return key


def script_bytes(page: Page) -> int:
    """JavaScript bytes the page loaded (decoded sizes of every script resource)."""
    return int(
        page.evaluate(
            "() => performance.getEntriesByType('resource')"
            ".filter(e => e.initiatorType === 'script' || e.name.endsWith('.js') || e.name.includes('.js?'))"
            ".reduce((n, e) => n + (e.decodedBodySize || 0), 0)"
        )
    )


def unlabelled_controls(page: Page) -> list[str]:
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('input, select, textarea'))
             .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) &&
                           !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
             .map(el => el.outerHTML)"""
        )
    )


def test_sign_up_create_a_key_use_it_see_it_counted_and_revoke_it(page: Page, server: Server, shots: Path) -> None:
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/dashboard")
    page.wait_for_url("**/dashboard/login?next=/dashboard/")
    screenshot(page, shots, "login")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill(email)
    screenshot(page, shots, "signup")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/dashboard/settings?flash=welcome")
    expect(page).to_have_title(re.compile("Settings"))

    key = create_key(page, "e2e laptop")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).not_to_be_empty()
    screenshot(page, shots, "settings-new-key")

    # the key works against the API: report a job, which issues a signed receipt
    job = {
        "job_id": "e2e-train-001",
        "duration_minutes": 120,
        "cpu_cores": 8,
        "memory_gb": 32,
        "gpu_cores": 2,
        "geo_iso": "US",
    }
    reported = httpx.post(server.url("/v1/report"), json=job, headers={"Authorization": f"Bearer {key}"})
    assert reported.status_code in (200, 201), reported.text
    for model, tokens in (("gpt-4o", 1200), ("gemini-3-pro", 800)):  # and AI inference, for the usage page
        inference = httpx.post(
            server.url("/v1/inference"),
            json={
                "provider": "OpenAI" if model.startswith("gpt") else "Google",
                "model": model,
                "prompt_tokens": tokens,
                "completion_tokens": tokens // 2,
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        assert inference.status_code in (200, 201), inference.text
    me = httpx.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["data"]["email"] == email
    stats = httpx.get(server.url("/v1/api-keys/stats"), headers={"Authorization": f"Bearer {key}"})
    assert stats.status_code == 200
    counted = stats.json()["data"]["daily_api_calls"]
    assert counted >= 1

    # ... and the dashboard shows the call counted and the key used
    page.goto("/dashboard/settings")
    expect(page.get_by_test_id("calls-today")).to_have_text(str(counted))
    row = page.locator("tr", has_text="e2e laptop")
    expect(row.locator("td").nth(4)).not_to_have_text("never")  # last used
    expect(page.get_by_test_id("new-key")).to_have_count(0)  # shown once only
    screenshot(page, shots, "settings")

    # ... and the receipt listed, searchable, verified on its page
    page.get_by_role("link", name="Receipts", exact=True).click()
    row = page.locator("tr", has_text="e2e-train-001")
    expect(row).to_have_count(1)
    page.get_by_label("Job id or receipt id").fill("no-such-job")
    expect(page.locator("#receipt-results")).to_contain_text("No receipt matches")
    page.get_by_label("Job id or receipt id").fill("e2e-train-001")
    expect(page.get_by_test_id("receipt-total")).to_contain_text("1 receipt")
    screenshot(page, shots, "receipts")
    page.locator("tr", has_text="e2e-train-001").get_by_role("link").click()
    expect(page.get_by_test_id("verify-result")).to_contain_text("Verified")
    screenshot(page, shots, "receipt")
    # viewing it wrote the audit VIEW entry, shown with the chain's status
    page.goto("/dashboard/audit?action=VIEW")
    expect(page.get_by_test_id("chain-status")).to_contain_text("Chain intact")
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot(page, shots, "audit")
    page.goto("/dashboard/usage?group_by=model")
    expect(page.get_by_test_id("usage-job-kwh")).not_to_have_text("0")
    expect(page.get_by_test_id("usage-breakdown")).to_contain_text("gpt-4o")
    expect(page.locator(".chart svg").first).to_be_visible()
    screenshot(page, shots, "usage")

    # log out and back in
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/dashboard/login?flash=logged-out")
    log_in(page, email)

    # revoke: the API refuses the key from then on
    page.goto("/dashboard/settings")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name=re.compile("Revoke key e2e laptop")).click()
    expect(page.locator("tr", has_text="e2e laptop")).to_contain_text("revoked")
    refused = httpx.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "INVALID_API_KEY"


def test_a_form_without_its_csrf_token_is_refused_in_the_browser(page: Page, server: Server) -> None:
    sign_up(page, f"csrf-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/dashboard/settings")
    page.get_by_label("Name", exact=True).fill("forged")
    page.evaluate("() => document.querySelectorAll('#create-key input[name=csrf_token]').forEach(e => e.remove())")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_contain_text("could not be accepted")
    page.goto("/dashboard/settings")
    expect(page.locator("tr", has_text="forged")).to_have_count(0)


def test_keyboard_only_log_in_and_skip_link(page: Page, server: Server) -> None:
    email = f"kbd-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, email)
    page.context.clear_cookies()
    page.goto("/dashboard/login")
    # the email field has focus on arrival; type, Tab to the password, Enter submits
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/dashboard/?$"))
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


PAGES = [
    ("overview", "/dashboard/"),
    ("usage", "/dashboard/usage"),
    ("receipts", "/dashboard/receipts"),
    ("audit", "/dashboard/audit"),
    ("devices", "/dashboard/devices"),
    ("calculator", "/dashboard/calculator"),
    ("reports", "/dashboard/reports?group_by=location"),
    ("settings-page", "/dashboard/settings"),
]


def test_every_page_renders_labelled_within_the_js_budget(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"pages-{uuid.uuid4().hex[:8]}@example.com")
    key = create_key(page, "pages key")
    for i, geo in enumerate(("US", "DE", "FR")):
        job = {
            "job_id": f"pages-{i}",
            "duration_minutes": 90,
            "cpu_cores": 8,
            "memory_gb": 32,
            "gpu_cores": 1,
            "geo_iso": geo,
        }
        r = httpx.post(server.url("/v1/report"), json=job, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code in (200, 201), r.text
    for name, path in PAGES:
        response = page.goto(path)
        assert response is not None, path
        assert response.status == 200, (path, response.status)
        page.wait_for_load_state("networkidle")
        assert script_bytes(page) <= JS_BUDGET_BYTES, path
        assert unlabelled_controls(page) == [], path
        assert page.locator("h1").count() == 1, path
        if name == "overview":  # the others are taken with more data elsewhere
            screenshot(page, shots, name)


def test_pages_fit_a_phone_screen(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"phone-{uuid.uuid4().hex[:8]}@example.com")
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/dashboard/",
        "/dashboard/settings",
        "/dashboard/usage",
        "/dashboard/receipts",
        "/dashboard/audit",
        "/dashboard/devices",
        "/dashboard/calculator",
        "/dashboard/reports",
    ):
        page.goto(path)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
    page.goto("/dashboard/")
    screenshot(page, shots, "overview-phone")


@pytest.mark.parametrize("path", ["/dashboard/login", "/dashboard/signup"])
def test_public_pages_load_without_errors(page: Page, server: Server, path: str) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert errors == []


def test_calculator_posts_to_the_public_api(page: Page, server: Server, shots: Path) -> None:
    sign_up(page, f"calc-{uuid.uuid4().hex[:8]}@example.com")
    page.goto("/dashboard/calculator")
    page.get_by_label("Power (W)").fill("100")
    page.get_by_label("Hours a day").fill("8")
    page.get_by_label("Flat rate (per kWh)").fill("0.15")
    page.get_by_role("button", name="Calculate").click()
    result = page.get_by_test_id("calc-result")
    expect(result).to_contain_text("0.8 kWh/day")
    expect(result).to_contain_text("43.8")
    screenshot(page, shots, "calculator")
