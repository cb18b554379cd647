"""The carbon-intensity locations dataset: schema, coverage and resolution rules."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from powermeter.data.loader import data_path
from powermeter.data.locations import (
    LOCATIONS_CSV,
    Location,
    LocationIndex,
    load_locations,
    load_locations_from,
    parse_locations_csv,
)

CSV_PATH = data_path(*LOCATIONS_CSV)

_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
    "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
)
US_STATES = _STATES.split()
CA_PROVINCES = ["AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"]
GRIDS = ("CAISO", "ERCOT", "PJM", "BPA", "MISO", "NYISO", "ISONE", "SPP")


@pytest.fixture(scope="module")
def index() -> LocationIndex:
    return load_locations()


def test_every_row_has_the_schema_and_a_plausible_figure() -> None:
    with CSV_PATH.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "code",
            "name",
            "kind",
            "intensity_g_per_kwh",
            "year",
            "source",
            "country",
            "grid_region",
            "provider",
            "aliases",
        ]
        rows = list(reader)
    assert len(rows) > 350
    for row in rows:
        assert row["code"], row
        assert row["name"], row
        assert row["source"], row
        assert 0.0 <= float(row["intensity_g_per_kwh"]) <= 1500.0, row
        assert 2000 <= int(row["year"]) <= 2030, row
        assert row["kind"] in {"country", "subdivision", "aggregate", "grid", "cloud"}, row


def test_codes_and_aliases_are_unique_case_insensitively() -> None:
    keys: list[str] = []
    for loc in parse_locations_csv(CSV_PATH):
        keys.append(loc.code.upper())
        keys.extend(a.upper() for a in loc.aliases)
    assert len(keys) == len(set(keys))


def test_countries_resolve_by_alpha2_and_alpha3(index: LocationIndex) -> None:
    countries = [loc for loc in index.all() if loc.kind == "country"]
    assert len(countries) >= 200
    for loc in countries:
        assert len(loc.code) == 2
        assert loc.code.isupper()
        assert len(loc.aliases) == 1
        assert len(loc.aliases[0]) == 3
        assert index.resolve(loc.code.lower()) is loc
        assert index.resolve(loc.aliases[0]) is loc
    de = index.resolve("DEU")
    assert de is not None
    assert de.code == "DE"
    assert de.country == "DE"


def test_every_us_state_dc_and_canadian_province_has_a_figure(index: LocationIndex) -> None:
    for st in US_STATES:
        loc = index.resolve(f"US-{st}")
        assert loc is not None, st
        assert (loc.kind, loc.country) == ("subdivision", "US"), st
        assert "eGRID2023" in loc.source
    for prov in CA_PROVINCES:
        loc = index.resolve(f"ca-{prov.lower()}")
        assert loc is not None, prov
        assert loc.country == "CA", prov
    # Hydro-dominated Quebec is far cleaner than coal/gas-heavy Alberta: a sanity check on the data.
    qc, ab = index.resolve("CA-QC"), index.resolve("CA-AB")
    assert qc is not None
    assert ab is not None
    assert qc.intensity_g_per_kwh < 100 < 400 < ab.intensity_g_per_kwh


def test_eGRID_lb_per_mwh_is_converted_to_g_per_kwh(index: LocationIndex) -> None:
    # codecarbon's usa_emissions.json has California at 394.769 lb/MWh (eGRID2023).
    ca = index.resolve("US-CA")
    assert ca is not None
    assert ca.intensity_g_per_kwh == pytest.approx(394.769 * 0.45359237, abs=0.01)


def test_aggregates_and_grid_regions(index: LocationIndex) -> None:
    world = index.resolve("world")
    eu = index.resolve("EU")
    assert world is not None
    assert world.kind == "aggregate"
    assert eu is not None
    assert eu.kind == "aggregate"
    assert 400 < world.intensity_g_per_kwh < 550
    assert 150 < eu.intensity_g_per_kwh < 350
    for grid in GRIDS:
        loc = index.resolve(grid.lower())
        assert loc is not None
        assert loc.kind == "grid"
        assert loc.grid_region == grid
    assert index.resolve("US-CAL-CISO") is index.resolve("CAISO")


@pytest.mark.parametrize(
    ("spelling", "code", "provider", "grid"),
    [
        ("aws:us-west-1", "aws:us-west-1", "aws", "CAISO"),
        ("AWS:US-EAST-1", "aws:us-east-1", "aws", "PJM"),
        ("aws/us-west-2", "aws:us-west-2", "aws", "BPA"),
        ("gcp:europe-west1", "gcp:europe-west1", "gcp", None),
        ("gcp:us-central1", "gcp:us-central1", "gcp", "MISO"),
        ("azure:westeurope", "azure:westeurope", "azure", None),
        ("southcentralus", "azure:southcentralus", "azure", "ERCOT"),
        ("us-west-1", "aws:us-west-1", "aws", "CAISO"),
        ("europe-west1", "gcp:europe-west1", "gcp", None),
        (" westeurope ", "azure:westeurope", "azure", None),
    ],
)
def test_cloud_regions_resolve(index: LocationIndex, spelling: str, code: str, provider: str, grid: str | None) -> None:
    loc = index.resolve(spelling)
    assert loc is not None
    assert (loc.code, loc.provider, loc.grid_region) == (code, provider, grid)


def test_cloud_regions_in_a_grid_carry_the_grid_figure(index: LocationIndex) -> None:
    caiso = index.resolve("CAISO")
    aws = index.resolve("aws:us-west-1")
    assert caiso is not None
    assert aws is not None
    assert aws.intensity_g_per_kwh == caiso.intensity_g_per_kwh
    # Google publishes its own per-region figure; it is used rather than the grid's.
    gcp = index.resolve("gcp:us-west1")
    assert gcp is not None
    assert gcp.source.startswith("Google Cloud")
    for provider in ("aws", "gcp", "azure"):
        assert sum(1 for loc in index.all() if loc.provider == provider) >= 20


def test_unknown_codes_do_not_resolve(index: LocationIndex) -> None:
    for code in ("XX", "US-ZZ", "aws:mars-1", "", "Narnia", "gcp:"):
        assert index.resolve(code) is None


def _loc(code: str, provider: str | None = None, kind: str = "cloud") -> Location:
    return Location(code, code, kind, 100.0, 2023, "test", None, None, provider)


def test_a_bare_region_name_shared_by_two_providers_is_not_resolved() -> None:
    ix = LocationIndex([_loc("aws:central", "aws"), _loc("gcp:central", "gcp")], "sha256:test")
    assert ix.resolve("central") is None
    assert ix.resolve("aws:central") is not None


def test_duplicate_codes_are_rejected() -> None:
    with pytest.raises(ValueError, match="used by both"):
        LocationIndex([_loc("DE", kind="country"), _loc("de", kind="country")], "sha256:test")


def test_implausible_rows_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    header = "code,name,kind,intensity_g_per_kwh,year,source,country,grid_region,provider,aliases\n"
    bad.write_text(header + "XX,Nowhere,country,2500,2023,made up,XX,,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="implausible"):
        parse_locations_csv(bad)
    bad.write_text(header + "XX,Nowhere,planet,100,2023,made up,XX,,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown kind"):
        parse_locations_csv(bad)


def test_version_is_a_content_hash_and_the_index_is_cached(index: LocationIndex, tmp_path: Path) -> None:
    assert index.version.startswith("sha256:")
    assert len(index.version) == len("sha256:") + 12
    assert load_locations() is index
    copy = tmp_path / "copy.csv"
    copy.write_bytes(CSV_PATH.read_bytes() + b"ZZ,Test,country,1,2023,t,ZZ,,,\n")
    assert load_locations_from(copy).version != index.version


def test_canadian_provinces_are_within_15_percent_of_electricity_maps_2023(index: LocationIndex) -> None:
    """Issue 15 item 7: one consistent, sourced method for every Canadian province and territory,
    checked against Electricity Maps' 2023 yearly figures (co2.js; fixture extracted verbatim)."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parents[1] / "fixtures/reference/electricity_maps_2023_canada.json").read_text())
    zones = ref["zones"]
    assert {"CA-AB", "CA-SK", "CA-NS", "CA-NB"} <= set(zones)
    assert (
        zones["CA-AB"]["carbonIntensity"],
        zones["CA-SK"]["carbonIntensity"],
        zones["CA-NS"]["carbonIntensity"],
        zones["CA-NB"]["carbonIntensity"],
    ) == (438, 494, 403, 149)
    rows = [loc for loc in index.all() if loc.kind == "subdivision" and loc.country == "CA"]
    assert len(rows) == 13
    for loc in rows:
        expected = zones[loc.code]["carbonIntensity"]
        assert abs(loc.intensity_g_per_kwh - expected) <= 0.15 * expected, (loc.code, loc.intensity_g_per_kwh, expected)
        assert loc.source.startswith("Electricity Maps 2023 yearly average"), loc.code
    # every subdivision is built one of two sourced ways, none from generation shares × factors
    for loc in index.all():
        if loc.kind == "subdivision":
            assert "eGRID2023" in loc.source or "Electricity Maps" in loc.source, loc.code
            assert "generation shares" not in loc.source.lower(), loc.code
    # cloud regions located in a province take its figure
    ca_west = index.resolve("aws:ca-west-1")
    assert ca_west is not None
    assert ca_west.intensity_g_per_kwh == 438.0
