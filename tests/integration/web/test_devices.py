"""Devices & costs in the dashboard: set the rate, add (from the catalog), edit and delete devices;
the API sees every change (the page writes through the devices service)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from .helpers import create_key, csrf_of, signup


def _api_devices(client: TestClient, key: str) -> list[dict[str, object]]:
    r = client.get("/api/v1/me/devices", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return list(r.json())


def test_profile_devices_add_edit_delete_agree_with_the_api(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["devices:read"])
    page = client.get("/dashboard/devices")
    assert page.status_code == 200
    assert "Choose your region" in page.text
    assert 'list="region-list"' in page.text

    r = client.post(
        "/dashboard/devices/profile",
        data={"csrf_token": csrf, "region": "California (US-CA)", "pricing": "region"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    prof = client.get("/api/v1/me/profile", headers={"Authorization": f"Bearer {key}"}).json()
    assert prof["region_code"] == "US-CA"
    page = client.get("/dashboard/devices")
    assert "/kWh" in page.text

    # a region that does not exist is refused in a sentence, and the profile is unchanged
    bad = client.post("/dashboard/devices/profile", data={"csrf_token": csrf, "region": "XX-NOPE"})
    assert bad.status_code == 400
    assert "There is no region" in bad.text

    r = client.post(
        "/dashboard/devices",
        data={
            "csrf_token": csrf,
            "catalog_device_slug": "synology-ds923",
            "name": "",
            "watts": "",
            "hours_per_day": "24",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    devices = _api_devices(client, key)
    assert [(d["name"], d["watts"], d["hours_per_day"]) for d in devices] == [("Synology DS923+ NAS (4-bay)", 35.5, 24)]
    did = devices[0]["id"]
    page = client.get("/dashboard/devices")
    assert re.search(r'data-testid="device-annual">[0-9.,]+ USD', page.text)

    r = client.post(
        f"/dashboard/devices/{did}",
        data={
            "csrf_token": csrf,
            "name": "NAS",
            "watts": "35.5",
            "hours_per_day": "12",
            "schedule": "",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert [(d["name"], d["hours_per_day"]) for d in _api_devices(client, key)] == [("NAS", 12)]

    bad = client.post(
        f"/dashboard/devices/{did}", data={"csrf_token": csrf, "name": "NAS", "watts": "35.5", "hours_per_day": "30"}
    )
    assert bad.status_code == 400
    assert "Hours per day must be between 0 and 24" in bad.text

    r = client.post(f"/dashboard/devices/{did}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert _api_devices(client, key) == []


def test_custom_rate_and_schedule_and_csrf(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["devices:read"])
    r = client.post(
        "/dashboard/devices/profile",
        data={"csrf_token": csrf, "region": "", "pricing": "custom", "flat_rate": "0.25", "currency": "eur"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    prof = client.get("/api/v1/me/profile", headers={"Authorization": f"Bearer {key}"}).json()
    assert prof["rate_config"] == {"flat_rate": 0.25, "currency": "EUR"}
    r = client.post(
        "/dashboard/devices",
        data={
            "csrf_token": csrf,
            "name": "Dishwasher",
            "watts": "1800",
            "hours_per_day": "1.5",
            "schedule": "22-6",
            "shiftable": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    (d,) = _api_devices(client, key)
    assert d["schedule"] == [[22, 30]]
    assert d["shiftable"] is True
    page = client.get("/dashboard/devices")
    assert "0.25 EUR/kWh" in page.text
    forged = client.post("/dashboard/devices", data={"name": "x", "watts": "1", "hours_per_day": "1"})
    assert forged.status_code == 403
    assert len(_api_devices(client, key)) == 1
    assert csrf_of(page.text) == csrf
