"""POST /calc/api/bill and /calc/api/compare over HTTP: JSON, Green Button CSV/ESPI files, errors, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from powermeter.data.rates import load_rates

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meter"
LA = ZoneInfo("America/Los_Angeles")


def fixture_readings() -> list[dict[str, Any]]:
    """The readings every fixture file holds (see tests/fixtures/meter/README.md): 49 hourly values from
    2026-10-31 00:00 PDT through the 25-hour 2026-11-01, kWh = 0.40 + 0.07 × (i mod 9)."""
    t0 = datetime(2026, 10, 31, 7, tzinfo=UTC)
    return [
        {
            "start": (t0 + timedelta(hours=i)).isoformat(),
            "kwh": float(Decimal("0.40") + Decimal(i % 9) * Decimal("0.07")),
        }
        for i in range(49)
    ]


def test_json_bill_has_the_documented_shape(client: TestClient) -> None:
    r = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "readings": fixture_readings()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["currency"] == "USD"
    assert body["kwh"] == 32.62
    assert [m["month"] for m in body["months"]] == ["2026-10", "2026-11"]
    oct_, nov = body["months"]
    # October holds local Oct 31 only (24 readings), November the 25-hour Nov 1
    assert oct_["kwh"] == pytest.approx(sum(0.40 + 0.07 * (i % 9) for i in range(24)))
    assert sum(p["kwh"] for p in nov["by_period"].values()) == pytest.approx(nov["kwh"])
    assert body["total"] == pytest.approx(oct_["total"] + nov["total"], abs=1e-4)
    assert body["total"] == pytest.approx(body["energy_cost"] + body["fixed_cost"], abs=1e-4)
    assert body["period"]["timezone"] == "America/Los_Angeles"  # from the tariff
    assert body["period"]["interval_minutes"] == 60
    assert body["period"]["interval_inferred"] is True
    assert [w["code"] for w in body["warnings"]] == ["dst"]
    assert body["tariff"]["tariff_id"] == "pge-e-tou-c"
    assert r.headers["RateLimit-Limit"] == "60"


@pytest.mark.parametrize(
    ("name", "content_type", "fmt"),
    [
        ("plain.csv", "text/csv", "csv"),
        ("pge_opower.csv", "text/csv", "greenbutton-csv-opower"),
        ("comed_opower.csv", "text/csv; charset=utf-8", "greenbutton-csv-opower"),
        ("sdge.csv", "text/csv", "greenbutton-csv-sdge"),
        ("sce.csv", "text/csv", "greenbutton-csv-sce"),
        ("espi.xml", "application/xml", "greenbutton-espi"),
    ],
)
def test_meter_files_bill_to_the_same_total_as_json(client: TestClient, name: str, content_type: str, fmt: str) -> None:
    ref = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "readings": fixture_readings()}).json()
    r = client.post(
        "/calc/api/bill?tariffId=pge-e-tou-c",
        content=(FIXTURES / name).read_bytes(),
        headers={"Content-Type": content_type},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["input"]["format"] == fmt
    assert body["total"] == ref["total"]
    assert body["kwh"] == ref["kwh"]
    assert body["months"] == ref["months"]


def test_espi_skips_the_demand_reading_type_and_applies_the_multiplier(client: TestClient) -> None:
    r = client.post(
        "/calc/api/bill?regionCode=US-CA",
        content=(FIXTURES / "espi.xml").read_bytes(),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kwh"] == 32.62  # values are deci-Wh (powerOfTenMultiplier −1); the W demand block is not added
    assert body["input"]["notes"] == ["skipped non-energy ReadingType on line 95 (uom 38, kind 8)"]


def test_compare_ranks_every_us_ca_tariff(client: TestClient) -> None:
    r = client.post(
        "/calc/api/compare",
        json={"regionCode": "US-CA", "currentTariffId": "pge-e-tou-c", "readings": fixture_readings()},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [t["tariffId"] for t in body["tariffs"]]
    assert sorted(ids) == sorted(load_rates().region("US-CA").tariff_ids)  # type: ignore[union-attr]
    totals = [t["total"] for t in body["tariffs"]]
    assert totals == sorted(totals)
    assert [t["rank"] for t in body["tariffs"]] == list(range(1, len(ids) + 1))
    cur = next(t for t in body["tariffs"] if t["tariffId"] == "pge-e-tou-c")
    for t in body["tariffs"]:
        single = client.post("/calc/api/bill", json={"tariffId": t["tariffId"], "readings": fixture_readings()})
        assert t["total"] == single.json()["total"]
        saving = cur["total"] - t["total"]
        assert t["savings_vs"]["period"] == pytest.approx(saving, abs=2e-4)
        assert t["savings_vs"]["per_year"] == pytest.approx(saving * 365 / 2, abs=0.05)  # 2 days of readings
    assert body["coverage"]["days"] == 2
    assert body["coverage"]["full_year"] is False
    assert "2 days" in body["coverage"]["annualization"]


def test_compare_with_a_csv_body_and_query_parameters(client: TestClient) -> None:
    r = client.post(
        "/calc/api/compare?regionCode=US-CA",
        content=(FIXTURES / "sdge.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert "savings_vs" not in r.json()["tariffs"][0]


def test_compare_refuses_an_unknown_current_tariff(client: TestClient) -> None:
    r = client.post(
        "/calc/api/compare",
        json={"regionCode": "US-CA", "currentTariffId": "octopus-go", "readings": fixture_readings()},
    )
    assert r.status_code == 400
    assert r.json()["field"] == "currentTariffId"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "timestamp,kwh\n2026-06-01T00:00:00-07:00,0.5\n2026-06-01T01:00:00-07:00,abc\n",
            3,
            "kwh 'abc' is not a number",
        ),
        ("timestamp,kwh\n2026-06-01T00:00:00-07:00,0.5\nyesterday,0.4\n", 3, "not ISO-8601"),
        (
            "Name,X\n\nTYPE,DATE,START TIME,END TIME,USAGE (kWh),COST,NOTES\n"
            "Electric usage,2026-03-08,01:00,01:59,0.5,$0.10,\nElectric usage,2026-03-08,02:00,02:59,0.5,$0.10,\n",
            5,
            "2026-03-08 02:00 does not exist in America/Los_Angeles",
        ),
        (
            "TYPE,DATE,START TIME,END TIME,USAGE (kWh),NOTES\nElectric usage,2026-13-01,00:00,00:59,0.5,\n",
            2,
            "date '2026-13-01'",
        ),
        (
            "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
            "Natural gas usage,2026-01-10,00:00,23:59,3.1,therms,$4,\n",
            2,
            "gas",
        ),
        ("hello,world\n1,2\n", 1, "unrecognised CSV"),
        ("timestamp,kwh\n2026-06-01T00:00:00Z,1e999999\n", 2, "outside ±1,000,000 kWh"),
        ("timestamp,kwh\n2026-06-01T00:00:00-07:00,1\n2026-06-01T00:00:00-07:00,2\n", 3, "same instant as line 2"),
    ],
)
def test_bad_csv_files_give_400_naming_the_line_and_problem(
    client: TestClient, text: str, line: int, needle: str
) -> None:
    r = client.post("/calc/api/bill?tariffId=pge-e-tou-c", content=text.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"].startswith(f"line {line}"), body
    assert needle in body["error"]
    assert body["line"] == line


@pytest.mark.parametrize(
    ("xml", "line", "needle"),
    [
        ("<feed>\n<entry>\n<content>\n</feed>", 4, "not well-formed"),
        ('<?xml version="1.0"?>\n<!DOCTYPE lol [<!ENTITY a "aaaa">]>\n<feed/>', 2, "DOCTYPE"),
        (
            "<espi xmlns='http://naesb.org/espi'>\n<ReadingType><uom>72</uom></ReadingType>\n<IntervalBlock>\n"
            "<IntervalReading>\n<timePeriod><duration>3600</duration><start>1780000000</start></timePeriod>\n"
            "<value>12x</value>\n</IntervalReading>\n</IntervalBlock>\n</espi>",
            6,
            "value '12x' is not an integer",
        ),
        ("<a>" * 40 + "</a>" * 40, 1, "nested deeper than 32"),
        (
            "<espi>\n<ReadingType><uom>72</uom><powerOfTenMultiplier>999999</powerOfTenMultiplier></ReadingType>\n"
            "<IntervalBlock/></espi>",
            2,
            "powerOfTenMultiplier 999999",
        ),
        (
            "<IntervalBlock xmlns='http://naesb.org/espi'>\n<IntervalReading><value>1</value></IntervalReading>\n"
            "</IntervalBlock>",
            1,
            "cannot tell which ReadingType",
        ),
    ],
)
def test_bad_espi_files_give_400_naming_the_line_and_problem(
    client: TestClient, xml: str, line: int, needle: str
) -> None:
    r = client.post(
        "/calc/api/bill?tariffId=pge-e-tou-c", content=xml.encode(), headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["line"] == line
    assert needle in r.json()["error"]


def test_solar_export_needs_an_export_rate(client: TestClient) -> None:
    readings = [{"start": "2026-06-01T12:00:00-07:00", "kwh": 2}, {"start": "2026-06-01T13:00:00-07:00", "kwh": -3}]
    r = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "readings": readings})
    assert r.status_code == 400
    assert r.json()["field"] == "export_rate"
    assert "readings[1] is negative" in r.json()["error"]
    r = client.post(
        "/calc/api/bill",
        json={"rateConfig": {"flat_rate": 0.3}, "timezone": "America/Los_Angeles", "readings": readings},
    )
    assert r.status_code == 400
    assert r.json()["field"] == "rateConfig.export_rate"
    r = client.post(
        "/calc/api/bill",
        json={
            "rateConfig": {"flat_rate": 0.3, "export_rate": 0.05},
            "timezone": "America/Los_Angeles",
            "readings": readings,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["energy_cost"] == 0.45  # 2 × 0.30 − 3 × 0.05
    assert body["export_kwh"] == 3
    assert body["months"][0]["by_period"]["export"] == {"kwh": -3.0, "cost": -0.15}
    assert [w["code"] for w in body["warnings"]] == ["export"]


def test_fixed_monthly_charge_in_rate_config_is_billed_per_month(client: TestClient) -> None:
    # 2026-04-10..2026-04-20 local: 11 of 30 days → 30.00 × 11/30 = 11.00, plus 264 kWh × 0.25 = 66.00
    t0 = datetime(2026, 4, 10, 7, tzinfo=UTC)
    readings = [{"start": (t0 + timedelta(hours=i)).isoformat(), "kwh": 1} for i in range(11 * 24)]
    r = client.post(
        "/calc/api/bill",
        json={
            "rateConfig": {"flat_rate": 0.25, "fixed_monthly_charge": 30, "timezone": "America/Los_Angeles"},
            "readings": readings,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["fixed_cost"] == 11.0
    assert r.json()["total"] == 77.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tariffId": "pge-e-tou-c"}, "readings"),
        ({"tariffId": "pge-e-tou-c", "readings": []}, "readings"),
        ({"tariffId": "pge-e-tou-c", "readings": [{"start": "2026-06-01T00:00:00", "kwh": 1}]}, "readings[0].start"),
        ({"tariffId": "pge-e-tou-c", "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": "x"}]}, "readings[0].kwh"),
        ({"tariffId": "pge-e-tou-c", "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1e9}]}, "readings[0].kwh"),
        ({"tariffId": "pge-e-tou-c", "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}]}, "interval_minutes"),
        (
            {
                "tariffId": "pge-e-tou-c",
                "interval_minutes": 7,
                "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}],
            },
            "interval_minutes",
        ),
        (
            {
                "rateConfig": {"flat_rate": 0.2},
                "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}],
                "interval_minutes": 60,
            },
            "timezone",
        ),
        (
            {
                "tariffId": "pge-e-tou-c",
                "timezone": "Mars/Olympus",
                "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}],
            },
            "timezone",
        ),
        ({"readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}]}, "tariffId"),
        (
            {"tariffId": "pge-e-tou-c", "export_rate": -1, "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}]},
            "export_rate",
        ),
        (
            {
                "rateConfig": {"flat_rate": 0.2, "export_rate": "x"},
                "timezone": "UTC",
                "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}],
            },
            "rateConfig.export_rate",
        ),
        (
            {
                "rateConfig": {"flat_rate": 0.2, "fixed_monthly_charge": -5},
                "timezone": "UTC",
                "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1}],
            },
            "rateConfig.fixed_monthly_charge",
        ),
    ],
)
def test_bad_json_input_gives_400_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/calc/api/bill", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert r.json()["error"].startswith(field)


@pytest.mark.parametrize("price", ["1e999999", "1e999990"])  # overflows compiling the rate / billing the kWh
def test_absurd_rate_magnitudes_are_a_400_not_a_500(client: TestClient, price: str) -> None:
    body = {
        "rateConfig": {"flat_rate": price, "timezone": "UTC"},
        "interval_minutes": 60,
        "readings": [{"start": "2026-06-01T00:00:00Z", "kwh": 1000000}],
    }
    r = client.post("/calc/api/bill", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"].startswith("rateConfig")  # the calculator's bounds name rateConfig.flat_rate


def test_unknown_tariff_is_404_in_the_seed_shape(client: TestClient) -> None:
    r = client.post("/calc/api/bill", json={"tariffId": "nope", "readings": fixture_readings()})
    assert r.status_code == 404
    assert r.json()["error"] == "tariff_not_found"


def test_body_and_reading_count_bounds(client: TestClient) -> None:
    from powermeter.cost import bills
    from powermeter.cost.meter_files import MAX_READINGS

    big = b"timestamp,kwh\n" + b"x" * (bills.MAX_BODY_BYTES + 1)
    r = client.post("/calc/api/bill?tariffId=pge-e-tou-c", content=big, headers={"Content-Type": "text/csv"})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"
    too_many = [{"start": "2026-06-01T00:00:00Z", "kwh": 1}] * (MAX_READINGS + 1)
    r = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "readings": too_many})
    assert r.status_code == 400
    assert "at most 105,408 readings" in r.json()["error"]
    far = [{"start": "2022-01-01T00:00:00Z", "kwh": 1}, {"start": "2026-01-01T00:00:00Z", "kwh": 1}]
    r = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "interval_minutes": 60, "readings": far})
    assert r.status_code == 400
    assert "may span at most 1098 days" in r.json()["error"]
    r = client.post("/calc/api/bill?tariffId=pge-e-tou-c", content=b"x", headers={"Content-Type": "image/png"})
    assert r.status_code == 400
    assert r.json()["field"] == "Content-Type"


def test_openapi_documents_bill_and_compare(client: TestClient) -> None:
    spec = client.get("/calc/api/openapi.json").json()
    for path, op_id in (("/api/bill", "calcBill"), ("/api/compare", "calcCompare")):
        op = spec["paths"][path]["post"]
        assert op["operationId"] == op_id
        assert set(op["requestBody"]["content"]) == {"application/json", "text/csv", "application/xml"}
        assert {"400", "404", "413", "429"} <= set(op["responses"])


def test_sce_fall_back_day_labelled_0200_twice_keeps_all_energy(client: TestClient) -> None:
    # SCE's real exports label the repeated hour of 2021-11-07 as 02:00 twice (research note §3.3); here the
    # 25-hour 2026-11-01 with 25 rows: 00, 01, 02, 02, 03 … 23, each 1 kWh. Nothing may be lost.
    lines = ['"Energy  Delivered time period","Usage Delivered(Real energy in kilowatt-hours)","Reading quality"']
    labels = [0, 1, 2, 2, *range(3, 24)]
    for h in labels:
        end = f"2026-11-01 {h + 1:02d}:00:00" if h < 23 else "2026-11-02 00:00:00"
        lines.append(f'"2026-11-01 {h:02d}:00:00 to {end}","1.000",""')
    r = client.post(
        "/calc/api/bill?tariffId=pge-e-tou-c", content="\n".join(lines).encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kwh"] == 25
    assert "added to the first reading with that label" in body["input"]["notes"][0]
    assert [w["code"] for w in body["warnings"]] == ["gap", "dst"]  # the 01:00 PST slot has no reading of its own


def test_bill_and_compare_share_the_calculator_per_ip_limit(client: TestClient) -> None:
    body = {"battery_wh": 1000, "charge_rate": 0.1, "discharge_rate": 0.2}
    for _ in range(59):
        assert client.post("/calc/api/arbitrage", json=body).status_code == 200
    ok = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-c", "readings": fixture_readings()})
    assert ok.status_code == 200
    r = client.post("/calc/api/compare", json={"regionCode": "US-CA", "readings": fixture_readings()})
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert "Retry-After" in r.headers


def test_a_named_tariffs_holiday_calendar_prices_the_holiday_as_a_weekend(client: TestClient) -> None:
    # PG&E E-TOU-D: summer weekday peak 17–20; weekends and US holidays (treatment "weekend") are off-peak.
    # 18:00 PDT on Thu 2026-07-02, Fri 2026-07-03 (Independence Day observed) and Mon 2026-07-06.
    tariff = load_rates().tariffs["pge-e-tou-d"].raw
    rate = {(t["name"], t["days"]): Decimal(t["rate"]) for t in tariff["tou_tiers"] if t["season"] == "summer"}
    readings = [{"start": f"2026-07-0{d}T18:00:00-07:00", "kwh": 1} for d in (2, 3, 6)]
    r = client.post("/calc/api/bill", json={"tariffId": "pge-e-tou-d", "interval_minutes": 60, "readings": readings})
    assert r.status_code == 200, r.text
    month = r.json()["months"][0]
    assert month["by_period"]["peak"]["kwh"] == 2
    assert month["by_period"]["off-peak"]["kwh"] == 1
    expected = 2 * rate[("peak", "weekday")] + rate[("off-peak", "weekend")]
    assert month["energy_cost"] == float(expected.quantize(Decimal("0.0001")))


ESPI_NET = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<entry><link rel="self" href="/MR/1"/><link rel="related" href="/MR/1/IntervalBlock"/><link rel="related" href="/RT/1"/>
<content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>
<entry><link rel="self" href="/RT/1"/><content><ReadingType xmlns="http://naesb.org/espi">
<flowDirection>1</flowDirection><kind>12</kind><powerOfTenMultiplier>0</powerOfTenMultiplier><uom>72</uom>
</ReadingType></content></entry>
<entry><link rel="self" href="/MR/2"/><link rel="related" href="/MR/2/IntervalBlock"/><link rel="related" href="/RT/2"/>
<content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>
<entry><link rel="self" href="/RT/2"/><content><ReadingType xmlns="http://naesb.org/espi">
<flowDirection>19</flowDirection><kind>12</kind><powerOfTenMultiplier>3</powerOfTenMultiplier><uom>72</uom>
</ReadingType></content></entry>
<entry><link rel="up" href="/MR/1/IntervalBlock"/><content><IntervalBlock xmlns="http://naesb.org/espi">
<IntervalReading><timePeriod><duration>3600</duration><start>1780340400</start></timePeriod><value>2000</value></IntervalReading>
<IntervalReading><timePeriod><duration>3600</duration><start>1780344000</start></timePeriod><value>500</value></IntervalReading>
</IntervalBlock></content></entry>
<entry><link rel="up" href="/MR/2/IntervalBlock"/><content><IntervalBlock xmlns="http://naesb.org/espi">
<IntervalReading><timePeriod><duration>3600</duration><start>1780344000</start></timePeriod><value>3</value></IntervalReading>
</IntervalBlock></content></entry>
</feed>
"""


def test_espi_reverse_flow_is_export_netted_per_interval(client: TestClient) -> None:
    # 1780340400 = 2026-06-01 12:00 PDT. Delivered 2,000 Wh then 500 Wh; received 3 kWh (kWh: multiplier 3) in
    # the second hour → net +2 kWh and −2.5 kWh. 2 × 0.30 − 2.5 × 0.05 = 0.475
    r = client.post(
        "/calc/api/bill?timezone=America/Los_Angeles&rateConfig=" + '{"flat_rate":0.3,"export_rate":0.05}',
        content=ESPI_NET.encode(),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kwh"] == -0.5
    assert body["export_kwh"] == 2.5
    assert body["energy_cost"] == 0.475
