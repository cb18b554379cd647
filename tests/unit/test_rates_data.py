"""The rates dataset, the device catalog and the URDB import parser."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from powermeter.data.devices import load_catalog
from powermeter.data.rates import (
    UrdbUnsupported,
    import_urdb,
    load_rates,
    tariff_from_urdb,
    urdb_items,
)
from powermeter.methodology.tariff import device_cost, parse_device, round_money

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "urdb"
US_STATES = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
]
NAMED_TARIFFS = {
    "pge-e-tou-c": ("Pacific Gas and Electric Company (PG&E)", "E-TOU-C"),
    "sce-tou-d-4-9pm": ("Southern California Edison (SCE)", "TOU-D-4-9PM"),
    "sdge-tou-dr1": ("San Diego Gas & Electric (SDG&E)", "TOU-DR1"),
    "octopus-go": ("Octopus Energy", "Octopus Go"),
    "ontario-rpp-tou": ("Ontario Energy Board (Regulated Price Plan)", "RPP Time-of-Use"),
    "es-2-0td-som-energia": ("Som Energia", "2.0TD Períodes"),
}


def test_every_us_state_and_dc_has_an_eia_price_and_year() -> None:
    rates = load_rates()
    assert len(US_STATES) == 51
    for st in US_STATES:
        r = rates.region(f"US-{st}")
        assert r is not None, st
        assert r.currency == "USD"
        assert r.flat_rate is not None
        assert D("0.05") < r.flat_rate < D("0.60")
        assert r.year == 2023
        assert "EIA" in r.source


def test_eia_values_are_the_published_ones() -> None:
    rates = load_rates()
    assert rates.region("US-CA").flat_rate == D("0.2951")  # type: ignore[union-attr]
    assert rates.region("US-HI").flat_rate == D("0.4239")  # type: ignore[union-attr]
    assert rates.region("us-wa").flat_rate == D("0.1098")  # type: ignore[union-attr]


def test_at_least_thirty_countries_with_a_currency() -> None:
    rates = load_rates()
    countries = {r.country: r.currency for r in rates.regions.values() if r.country != "EU"}
    assert len(countries) >= 30
    assert all(len(c) == 3 and c.isupper() for c in countries.values())
    assert rates.region("GB").currency == "GBP"  # type: ignore[union-attr]
    assert rates.region("JP").currency == "JPY"  # type: ignore[union-attr]


def test_every_record_names_its_source_period_and_effective_date() -> None:
    rates = load_rates()
    for r in rates.regions.values():
        assert r.source, r.code
        assert r.source_url.startswith("https://"), r.code
        assert r.period, r.code
        assert date(2015, 1, 1) < r.effective_date <= date(2027, 1, 1), r.code
    for t in rates.tariffs.values():
        assert t.source, t.id
        assert t.source_url.startswith("https://"), t.id
        assert date(2015, 1, 1) < t.effective_date <= date(2027, 1, 1), t.id


def test_real_tou_tariffs_are_named_by_utility_and_plan() -> None:
    rates = load_rates()
    for tid, (utility, plan) in NAMED_TARIFFS.items():
        t = rates.tariffs[tid]
        assert (t.utility, t.plan) == (utility, plan)
        resolved = rates.resolve(t.region, tid)
        assert resolved is not None
        assert resolved.rate.has_tou


def test_every_region_and_tariff_compiles() -> None:
    rates = load_rates()
    for code in rates.regions:
        assert rates.resolve(code) is not None, code
    for tid, t in rates.tariffs.items():
        assert rates.resolve(t.region, tid) is not None, tid


def test_pge_e_tou_c_prices_by_season_and_hour() -> None:
    resolved = load_rates().resolve("US-CA")
    assert resolved is not None
    assert resolved.tariff is not None
    assert resolved.tariff.id == "pge-e-tou-c"
    rate = resolved.rate
    july = rate.profile_on(date(2026, 7, 15))
    january = rate.profile_on(date(2026, 1, 15))
    assert july.price_at(D(17)) == D("0.5224")
    assert july.price_at(D(3)) == D("0.3994")
    assert january.price_at(D(20)) == D("0.39757")
    assert january.price_at(D(22)) == D("0.36757")
    assert rate.spec.fixed_daily_charge == D("0.19713")
    assert rate.spec.flat_rate == D("0.2951")  # flat mode answers with the EIA average


def test_ontario_off_peak_wraps_midnight_and_summer_swaps_peaks() -> None:
    rate = load_rates().resolve("CA-ON").rate  # type: ignore[union-attr]
    winter_weekday = rate.profile_on(date(2026, 1, 14))
    summer_weekday = rate.profile_on(date(2026, 7, 15))
    weekend = rate.profile_on(date(2026, 7, 18))
    assert winter_weekday.price_at(D(23)) == winter_weekday.price_at(D(5)) == D("0.098")
    assert winter_weekday.price_at(D(8)) == D("0.203")
    assert summer_weekday.price_at(D(8)) == D("0.157")
    assert summer_weekday.price_at(D(12)) == D("0.203")
    assert weekend.price_at(D(12)) == D("0.098")


def test_region_detail_and_index_shapes() -> None:
    rates = load_rates()
    detail = rates.region_detail("US-CA")
    assert detail is not None
    assert detail["flat_rate"] == 0.2951
    assert detail["default_tariff"] == "pge-e-tou-c"
    assert {t["name"] for t in detail["tou_tiers"]} == {"peak", "off-peak"}
    assert {t["id"] for t in detail["tariffs"]} >= {"pge-e-tou-c", "sce-tou-d-4-9pm", "sdge-tou-dr1"}
    assert detail["dataset_version"].startswith("sha256:")
    index = rates.index()
    assert len(index) == len(rates.regions)
    assert {"regionCode", "currency", "flat_rate", "has_tou"} <= set(index[0])
    assert rates.region_detail("XX-NOPE") is None


def test_block_tariffs_price_a_household() -> None:
    rate = load_rates().resolve("CA-QC").rate  # type: ignore[union-attr]
    c = device_cost(rate, parse_device({"watts": 2500, "hours_per_day": 20}), include_fixed=True)
    assert c.energy.daily == 40 * D("0.06905") + 10 * D("0.10652")
    assert c.total.daily == c.energy.daily + D("0.46154")


def test_uk_standing_charge_comes_with_the_region() -> None:
    rate = load_rates().resolve("GB").rate  # type: ignore[union-attr]
    c = device_cost(rate, parse_device({"watts": 100, "hours_per_day": 24}), include_fixed=True)
    assert round_money(c.total.daily) == round_money(D("2.4") * D("0.2573") + D("0.5137"))


# ---------------------------------------------------------------------------------------------
# device catalog


def test_catalog_has_fifty_common_devices_with_sources() -> None:
    cat = load_catalog()
    assert len(cat.devices) >= 50
    assert {"networking", "entertainment", "kitchen", "climate", "gaming", "computing", "ev"} <= {
        d.category for d in cat.devices
    }
    for d in cat.devices:
        assert d.source
        assert d.typical_watts > 0
    for slug in (
        "synology-ds923",
        "router-fritzbox-6690",
        "tv-flat-screen",
        "refrigerator-16cuft",
        "heat-pump-3-ton",
        "ps5",
        "desktop-pc",
        "ev-charger-wallbox-11kw",
    ):
        assert cat.get(slug) is not None, slug
    assert cat.version.startswith("sha256:")


def test_catalog_entry_shape() -> None:
    ps5 = load_catalog().get("ps5")
    assert ps5 is not None
    d = ps5.as_dict()
    assert d["typical_watts"] == 203.0
    assert d["standby_watts"] == 1.5
    assert d["watts_range"] == [47.0, 203.0]


# ---------------------------------------------------------------------------------------------
# URDB import


def _export() -> Any:
    return json.loads((FIXTURES / "sample_export.json").read_text())


def test_urdb_tou_rate_becomes_tiers_with_rate_plus_adj() -> None:
    sce = urdb_items(_export())[0]
    t = tariff_from_urdb(sce, region="US-CA", timezone="America/Los_Angeles")
    assert t["id"] == "urdb-66ccb7bfa7d4ef64fc07ad6b"
    assert t["effective_date"] == "2024-06-01"
    assert D(t["fixed_daily_charge"]) == D("0.031")
    assert any("Minimum charge" in n for n in t["notes"])
    rates = load_rates().with_tariffs([t])
    rate = rates.resolve("US-CA", t["id"]).rate  # type: ignore[union-attr]
    july_weekday = rate.profile_on(date(2026, 7, 15))
    july_weekend = rate.profile_on(date(2026, 7, 18))
    january = rate.profile_on(date(2026, 1, 15))
    assert july_weekday.price_at(D(17)) == D("0.60484")  # matches the research note's SCE prices
    assert july_weekend.price_at(D(17)) == D("0.49078")
    assert july_weekday.price_at(D(3)) == D("0.37846")
    assert january.price_at(D(10)) == D("0.36788")
    assert january.price_at(D(22)) == january.price_at(D(2)) == D("0.40501")


def test_urdb_daily_tiers_become_day_blocks_and_monthly_fixed_converts() -> None:
    t = tariff_from_urdb(urdb_items(_export())[1], region="US-NV")
    assert t["flat_rate"] == "0.3"
    assert t["block_basis"] == "day"
    assert t["block_tiers"] == [{"up_to_kwh": "9", "adj": "0.0"}, {"up_to_kwh": None, "adj": "0.1"}]
    assert D(t["fixed_daily_charge"]) * 365 == pytest.approx(D("150"))
    assert any("Demand charges" in n for n in t["notes"])


def test_urdb_refuses_what_it_cannot_price() -> None:
    with pytest.raises(UrdbUnsupported, match="kWh/kW"):
        tariff_from_urdb(urdb_items(_export())[2], region="US-NV")
    with pytest.raises(UrdbUnsupported, match="region unknown"):
        tariff_from_urdb(urdb_items(_export())[0])


def test_import_reports_refusals_and_keeps_the_rest() -> None:
    tariffs, errors = import_urdb(_export(), load_rates(), region="US-CA")
    assert [t["id"] for t in tariffs] == ["urdb-66ccb7bfa7d4ef64fc07ad6b", "urdb-tiered-daily-example"]
    assert all(t["timezone"] == "America/Los_Angeles" for t in tariffs)
    assert len(errors) == 1
    assert "kWh/kW" in errors[0]


def test_sdge_tou_dr1_weekday_super_off_peak_10_to_14_only_in_march_and_april() -> None:
    """Issue 15 item 8: the weekday 10:00–14:00 super off-peak of SDG&E TOU-DR1 is a March/April rule;
    the rest of the year that window is off-peak. Weekends keep 00:00–14:00 super off-peak."""
    from datetime import date as _date
    from decimal import Decimal as _D

    rate = load_rates().resolve("US-CA", "sdge-tou-dr1").rate  # type: ignore[union-attr]
    noon = _D(12)
    for month in range(1, 13):
        weekday = next(_date(2027, month, d) for d in range(1, 8) if _date(2027, month, d).weekday() == 2)
        saturday = next(_date(2027, month, d) for d in range(1, 8) if _date(2027, month, d).weekday() == 5)
        expected = "super-off-peak" if month in (3, 4) else "off-peak"
        assert rate.profile_on(weekday).name_at(noon) == expected, month
        assert rate.profile_on(weekday).name_at(_D(3)) == "super-off-peak", month
        assert rate.profile_on(weekday).name_at(_D(17)) == "on-peak", month
        assert rate.profile_on(saturday).name_at(noon) == "super-off-peak", month
    # prices follow the season: March (winter) super off-peak, July (summer) off-peak
    assert rate.profile_on(_date(2027, 3, 3)).price_at(noon) == _D("0.43767")
    assert rate.profile_on(_date(2027, 7, 7)).price_at(noon) == _D("0.46392")
    assert rate.profile_on(_date(2027, 5, 5)).price_at(noon) == _D("0.52843")


def test_sce_tou_d_4_9pm_bills_holidays_as_weekends() -> None:
    from datetime import date as _date
    from decimal import Decimal as _D

    import holidays as _holidays

    ds = load_rates()
    rec = ds.tariffs["sce-tou-d-4-9pm"]
    assert rec.holidays_calendar == "US"
    rate = ds.resolve("US-CA", "sce-tou-d-4-9pm").rate  # type: ignore[union-attr]
    july4 = _date(2027, 7, 5)  # Independence Day observed, a Monday
    assert july4 in _holidays.country_holidays("US", years=2027)
    assert rate.profile_on(july4).name_at(_D(17)) == "on-peak"  # a plain weekday profile…
    assert rate.profile_on(july4, frozenset({july4})).name_at(_D(17)) == "mid-peak"  # …but a holiday is a weekend


def test_every_tou_tariff_records_its_source_effective_date_and_review() -> None:
    for t in load_rates().tariffs.values():
        assert t.source, t.id
        assert t.effective_date, t.id
        if t.raw.get("tou_tiers"):
            assert any("Schedule reviewed" in n for n in t.notes), t.id
