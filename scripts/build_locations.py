"""Build ``src/powermeter/data/locations/locations.csv``, the carbon-intensity locations dataset.

Run once, by hand, when the inputs change; the CSV is committed and is the dataset (its content hash
is the version a receipt records). Nothing here runs at service time.

Inputs (all read locally, nothing is fetched):

* the ``codecarbon`` wheel (MIT) for its data files: ``data/private_infra/global_energy_mix.json``
  (Our World in Data per-country carbon intensity of electricity, CC BY 4.0),
  ``data/private_infra/2023/usa_emissions.json`` (US EPA eGRID2023 state CO2e output rates, public
  domain) and ``data/cloud/impact.csv`` (Google Cloud's published per-region grid carbon intensity);
* ``pycountry`` for ISO 3166 codes and names;
* the tables below, written by hand with their sources: grid-operator figures and the cloud-region
  → place/grid mapping.

Usage (in a scratch virtualenv, not the project's)::

    python -m venv /tmp/cc-venv && /tmp/cc-venv/bin/pip install --no-deps codecarbon pycountry
    /tmp/cc-venv/bin/python scripts/build_locations.py \
        /tmp/cc-venv/lib/python3.11/site-packages/codecarbon/data
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pycountry

OUT = Path(__file__).resolve().parents[1] / "src/powermeter/data/locations/locations.csv"
LB_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh

SRC_OWID = "Our World in Data (Ember/EI) via codecarbon 3.3.2 global_energy_mix.json, CC BY 4.0"
SRC_EGRID = "US EPA eGRID2023 state CO2e total output emission rate (STC2ERTA) via codecarbon 3.3.2"
SRC_EM = (
    "Electricity Maps 2023 yearly average, lifecycle, consumption-based (ODbL), as published in "
    "thegreenwebfoundation/co2.js data/output/electricity-maps/yearly_2023.json (npm @tgwf/co2 0.19.0)"
)
SRC_GCP = (
    "Google Cloud region carbon data (cloud.google.com/sustainability/region-carbon), hourly-average grid "
    "intensity, via codecarbon 3.3.2 data/cloud/impact.csv (year as listed for these values in GSF "
    "real-time-cloud Cloud_Region_Metadata.csv)"
)

# ISO / balancing-authority grid regions: Electricity Maps zone, display name, country, yearly g/kWh.
GRID_REGIONS: list[tuple[str, str, str, float]] = [
    ("CAISO", "US-CAL-CISO", "California ISO", 263.0),
    ("ERCOT", "US-TEX-ERCO", "Electric Reliability Council of Texas", 394.0),
    ("PJM", "US-MIDA-PJM", "PJM Interconnection", 401.0),
    ("BPA", "US-NW-BPAT", "Bonneville Power Administration", 123.0),
    ("MISO", "US-MIDW-MISO", "Midcontinent ISO", 503.0),
    ("NYISO", "US-NY-NYIS", "New York ISO", 286.0),
    ("ISONE", "US-NE-ISNE", "ISO New England", 286.0),
    ("SPP", "US-CENT-SWPP", "Southwest Power Pool", 468.0),
]

# Canadian provinces and territories: Electricity Maps 2023 yearly averages (lifecycle,
# consumption-based), the same source and method as GRID_REGIONS, read from the npm package
# @tgwf/co2 0.19.0, dist/esm/data/electricity-maps/yearly_2023.js (zones CA-AB ... CA-YT).
# They replace a generation-share × per-source-factor estimate (codecarbon's canada_energy_mix.json
# with its gas 743 / coal 995 g/kWh factors), which overstated the fossil provinces by 45-65 %
# (CA-AB 636.6 vs 438, CA-NS 593.0 vs 403, CA-NB 268.7 vs 149; issue 15).
CANADA: list[tuple[str, float]] = [
    ("CA-AB", 438.0), ("CA-BC", 76.0), ("CA-MB", 47.0), ("CA-NB", 149.0), ("CA-NL", 27.0), ("CA-NS", 403.0),
    ("CA-NT", 112.0), ("CA-NU", 649.0), ("CA-ON", 76.0), ("CA-PE", 91.0), ("CA-QC", 31.0), ("CA-SK", 494.0),
    ("CA-YT", 210.0),
]

_EU27 = (
    "AUT BEL BGR HRV CYP CZE DNK EST FIN FRA DEU GRC HUN IRL ITA LVA LTU LUX MLT NLD POL PRT ROU SVK SVN "
    "ESP SWE"
)
EU27 = _EU27.split()

# Cloud regions: (provider, region, place, ISO country alpha-2, subdivision or "", grid region or "").
# Places are the providers' published region locations (AWS "Regions and Availability Zones",
# Google Cloud "Cloud locations", Azure "Azure geographies"); the grid is the balancing area that
# serves the place (cross-checked against GSF real-time-cloud Cloud_Region_Metadata.csv).
CLOUD_REGIONS: list[tuple[str, str, str, str, str, str]] = [
    # --- AWS
    ("aws", "us-east-1", "US East (N. Virginia)", "US", "US-VA", "PJM"),
    ("aws", "us-east-2", "US East (Ohio)", "US", "US-OH", "PJM"),
    ("aws", "us-west-1", "US West (N. California)", "US", "US-CA", "CAISO"),
    ("aws", "us-west-2", "US West (Oregon)", "US", "US-OR", "BPA"),
    ("aws", "af-south-1", "Africa (Cape Town)", "ZA", "", ""),
    ("aws", "ap-east-1", "Asia Pacific (Hong Kong)", "HK", "", ""),
    ("aws", "ap-south-1", "Asia Pacific (Mumbai)", "IN", "", ""),
    ("aws", "ap-south-2", "Asia Pacific (Hyderabad)", "IN", "", ""),
    ("aws", "ap-northeast-1", "Asia Pacific (Tokyo)", "JP", "", ""),
    ("aws", "ap-northeast-2", "Asia Pacific (Seoul)", "KR", "", ""),
    ("aws", "ap-northeast-3", "Asia Pacific (Osaka)", "JP", "", ""),
    ("aws", "ap-southeast-1", "Asia Pacific (Singapore)", "SG", "", ""),
    ("aws", "ap-southeast-2", "Asia Pacific (Sydney)", "AU", "", ""),
    ("aws", "ap-southeast-3", "Asia Pacific (Jakarta)", "ID", "", ""),
    ("aws", "ap-southeast-4", "Asia Pacific (Melbourne)", "AU", "", ""),
    ("aws", "ap-southeast-5", "Asia Pacific (Malaysia)", "MY", "", ""),
    ("aws", "ca-central-1", "Canada (Central, Montreal)", "CA", "CA-QC", ""),
    ("aws", "ca-west-1", "Canada West (Calgary)", "CA", "CA-AB", ""),
    ("aws", "eu-central-1", "Europe (Frankfurt)", "DE", "", ""),
    ("aws", "eu-central-2", "Europe (Zurich)", "CH", "", ""),
    ("aws", "eu-west-1", "Europe (Ireland)", "IE", "", ""),
    ("aws", "eu-west-2", "Europe (London)", "GB", "", ""),
    ("aws", "eu-west-3", "Europe (Paris)", "FR", "", ""),
    ("aws", "eu-north-1", "Europe (Stockholm)", "SE", "", ""),
    ("aws", "eu-south-1", "Europe (Milan)", "IT", "", ""),
    ("aws", "eu-south-2", "Europe (Spain)", "ES", "", ""),
    ("aws", "il-central-1", "Israel (Tel Aviv)", "IL", "", ""),
    ("aws", "me-south-1", "Middle East (Bahrain)", "BH", "", ""),
    ("aws", "me-central-1", "Middle East (UAE)", "AE", "", ""),
    ("aws", "sa-east-1", "South America (Sao Paulo)", "BR", "", ""),
    # --- Google Cloud (intensity: Google's own per-region figure where published)
    ("gcp", "africa-south1", "Johannesburg", "ZA", "", ""),
    ("gcp", "asia-east1", "Changhua County, Taiwan", "TW", "", ""),
    ("gcp", "asia-east2", "Hong Kong", "HK", "", ""),
    ("gcp", "asia-northeast1", "Tokyo", "JP", "", ""),
    ("gcp", "asia-northeast2", "Osaka", "JP", "", ""),
    ("gcp", "asia-northeast3", "Seoul", "KR", "", ""),
    ("gcp", "asia-south1", "Mumbai", "IN", "", ""),
    ("gcp", "asia-south2", "Delhi", "IN", "", ""),
    ("gcp", "asia-southeast1", "Jurong West, Singapore", "SG", "", ""),
    ("gcp", "asia-southeast2", "Jakarta", "ID", "", ""),
    ("gcp", "australia-southeast1", "Sydney", "AU", "", ""),
    ("gcp", "australia-southeast2", "Melbourne", "AU", "", ""),
    ("gcp", "europe-central2", "Warsaw", "PL", "", ""),
    ("gcp", "europe-north1", "Hamina, Finland", "FI", "", ""),
    ("gcp", "europe-southwest1", "Madrid", "ES", "", ""),
    ("gcp", "europe-west1", "St. Ghislain, Belgium", "BE", "", ""),
    ("gcp", "europe-west2", "London", "GB", "", ""),
    ("gcp", "europe-west3", "Frankfurt", "DE", "", ""),
    ("gcp", "europe-west4", "Eemshaven, Netherlands", "NL", "", ""),
    ("gcp", "europe-west6", "Zurich", "CH", "", ""),
    ("gcp", "europe-west8", "Milan", "IT", "", ""),
    ("gcp", "europe-west9", "Paris", "FR", "", ""),
    ("gcp", "europe-west10", "Berlin", "DE", "", ""),
    ("gcp", "europe-west12", "Turin", "IT", "", ""),
    ("gcp", "me-central1", "Doha", "QA", "", ""),
    ("gcp", "me-central2", "Dammam, Saudi Arabia", "SA", "", ""),
    ("gcp", "me-west1", "Tel Aviv", "IL", "", ""),
    ("gcp", "northamerica-northeast1", "Montreal", "CA", "CA-QC", ""),
    ("gcp", "northamerica-northeast2", "Toronto", "CA", "CA-ON", ""),
    ("gcp", "southamerica-east1", "Sao Paulo", "BR", "", ""),
    ("gcp", "southamerica-west1", "Santiago", "CL", "", ""),
    ("gcp", "us-central1", "Council Bluffs, Iowa", "US", "US-IA", "MISO"),
    ("gcp", "us-east1", "Moncks Corner, South Carolina", "US", "US-SC", ""),
    ("gcp", "us-east4", "Ashburn, Northern Virginia", "US", "US-VA", "PJM"),
    ("gcp", "us-east5", "Columbus, Ohio", "US", "US-OH", "PJM"),
    ("gcp", "us-south1", "Dallas, Texas", "US", "US-TX", "ERCOT"),
    ("gcp", "us-west1", "The Dalles, Oregon", "US", "US-OR", "BPA"),
    ("gcp", "us-west2", "Los Angeles, California", "US", "US-CA", "CAISO"),
    ("gcp", "us-west3", "Salt Lake City, Utah", "US", "US-UT", ""),
    ("gcp", "us-west4", "Las Vegas, Nevada", "US", "US-NV", ""),
    # --- Microsoft Azure
    ("azure", "eastus", "East US (Virginia)", "US", "US-VA", "PJM"),
    ("azure", "eastus2", "East US 2 (Virginia)", "US", "US-VA", "PJM"),
    ("azure", "centralus", "Central US (Iowa)", "US", "US-IA", "MISO"),
    ("azure", "northcentralus", "North Central US (Illinois)", "US", "US-IL", "PJM"),
    ("azure", "southcentralus", "South Central US (Texas)", "US", "US-TX", "ERCOT"),
    ("azure", "westcentralus", "West Central US (Wyoming)", "US", "US-WY", ""),
    ("azure", "westus", "West US (California)", "US", "US-CA", "CAISO"),
    ("azure", "westus2", "West US 2 (Washington)", "US", "US-WA", "BPA"),
    ("azure", "westus3", "West US 3 (Arizona)", "US", "US-AZ", ""),
    ("azure", "canadacentral", "Canada Central (Toronto)", "CA", "CA-ON", ""),
    ("azure", "canadaeast", "Canada East (Quebec City)", "CA", "CA-QC", ""),
    ("azure", "brazilsouth", "Brazil South (Sao Paulo State)", "BR", "", ""),
    ("azure", "mexicocentral", "Mexico Central (Queretaro)", "MX", "", ""),
    ("azure", "northeurope", "North Europe (Ireland)", "IE", "", ""),
    ("azure", "westeurope", "West Europe (Netherlands)", "NL", "", ""),
    ("azure", "uksouth", "UK South (London)", "GB", "", ""),
    ("azure", "ukwest", "UK West (Cardiff)", "GB", "", ""),
    ("azure", "francecentral", "France Central (Paris)", "FR", "", ""),
    ("azure", "germanywestcentral", "Germany West Central (Frankfurt)", "DE", "", ""),
    ("azure", "norwayeast", "Norway East (Oslo)", "NO", "", ""),
    ("azure", "swedencentral", "Sweden Central (Gavle)", "SE", "", ""),
    ("azure", "switzerlandnorth", "Switzerland North (Zurich)", "CH", "", ""),
    ("azure", "polandcentral", "Poland Central (Warsaw)", "PL", "", ""),
    ("azure", "italynorth", "Italy North (Milan)", "IT", "", ""),
    ("azure", "spaincentral", "Spain Central (Madrid)", "ES", "", ""),
    ("azure", "eastasia", "East Asia (Hong Kong)", "HK", "", ""),
    ("azure", "southeastasia", "Southeast Asia (Singapore)", "SG", "", ""),
    ("azure", "japaneast", "Japan East (Tokyo)", "JP", "", ""),
    ("azure", "japanwest", "Japan West (Osaka)", "JP", "", ""),
    ("azure", "koreacentral", "Korea Central (Seoul)", "KR", "", ""),
    ("azure", "koreasouth", "Korea South (Busan)", "KR", "", ""),
    ("azure", "centralindia", "Central India (Pune)", "IN", "", ""),
    ("azure", "southindia", "South India (Chennai)", "IN", "", ""),
    ("azure", "westindia", "West India (Mumbai)", "IN", "", ""),
    ("azure", "australiaeast", "Australia East (New South Wales)", "AU", "", ""),
    ("azure", "australiasoutheast", "Australia Southeast (Victoria)", "AU", "", ""),
    ("azure", "australiacentral", "Australia Central (Canberra)", "AU", "", ""),
    ("azure", "southafricanorth", "South Africa North (Johannesburg)", "ZA", "", ""),
    ("azure", "uaenorth", "UAE North (Dubai)", "AE", "", ""),
    ("azure", "qatarcentral", "Qatar Central (Doha)", "QA", "", ""),
    ("azure", "israelcentral", "Israel Central", "IL", "", ""),
]

HEADER = [
    "code", "name", "kind", "intensity_g_per_kwh", "year", "source", "country", "grid_region", "provider",
    "aliases",
]


def main(cc_data: Path) -> None:
    rows: list[dict[str, object]] = []
    by_code: dict[str, dict[str, object]] = {}

    def add(row: dict[str, object]) -> None:
        code = str(row["code"])
        if code.upper() in by_code:
            raise SystemExit(f"duplicate code {code}")
        row.setdefault("aliases", "")
        rows.append(row)
        by_code[code.upper()] = row

    # Aggregates: generation-weighted means of the per-country figures below.
    mix = json.loads((cc_data / "private_infra/global_energy_mix.json").read_text())

    def weighted(keys: list[str]) -> tuple[float, int]:
        twh = sum(mix[k]["total_TWh"] for k in keys)
        ci = sum(mix[k]["carbon_intensity"] * mix[k]["total_TWh"] for k in keys) / twh
        # year carrying the most generation
        by_year: dict[int, float] = {}
        for k in keys:
            by_year[mix[k]["year"]] = by_year.get(mix[k]["year"], 0.0) + mix[k]["total_TWh"]
        return ci, max(by_year, key=lambda y: by_year[y])

    world_ci, world_year = weighted(sorted(mix))
    eu_ci, eu_year = weighted(EU27)
    add({"code": "WORLD", "name": "World", "kind": "aggregate", "intensity_g_per_kwh": round(world_ci, 2),
         "year": world_year, "country": "", "grid_region": "", "provider": "",
         "source": f"Generation-weighted mean of the {len(mix)} country rows ({SRC_OWID})"})
    add({"code": "EU", "name": "European Union (EU-27)", "kind": "aggregate",
         "intensity_g_per_kwh": round(eu_ci, 2), "year": eu_year, "country": "", "grid_region": "",
         "provider": "", "aliases": "EU27",
         "source": f"Generation-weighted mean of the 27 member states ({SRC_OWID})"})

    # Countries.
    for alpha3, rec in sorted(mix.items()):
        c = pycountry.countries.get(alpha_3=alpha3)
        if c is None:
            raise SystemExit(f"unknown ISO alpha-3 {alpha3}")
        add({"code": c.alpha_2, "name": getattr(c, "common_name", c.name), "kind": "country",
             "intensity_g_per_kwh": round(float(rec["carbon_intensity"]), 2), "year": int(rec["year"]),
             "source": SRC_OWID, "country": c.alpha_2, "grid_region": "", "provider": "",
             "aliases": c.alpha_3})

    # US states + DC (eGRID2023).
    usa = json.loads((cc_data / "private_infra/2023/usa_emissions.json").read_text())
    for key, rec in sorted(usa.items()):
        if key.startswith("_") or rec.get("regionCode", "").lower() == "usa":
            continue
        code = f"US-{rec['regionCode'].upper()}"
        sub = pycountry.subdivisions.get(code=code)
        if sub is None:
            raise SystemExit(f"unknown subdivision {code}")
        add({"code": code, "name": sub.name, "kind": "subdivision",
             "intensity_g_per_kwh": round(float(rec["emissions"]) * LB_PER_MWH_TO_G_PER_KWH, 2),
             "year": int(usa["_source"]["year"]), "source": SRC_EGRID, "country": "US",
             "grid_region": "", "provider": ""})

    # Canadian provinces and territories (Electricity Maps 2023, as the grid regions).
    for code, ci in CANADA:
        sub = pycountry.subdivisions.get(code=code)
        if sub is None:
            raise SystemExit(f"unknown subdivision {code}")
        add({"code": code, "name": sub.name, "kind": "subdivision", "intensity_g_per_kwh": ci, "year": 2023,
             "source": f"{SRC_EM} (zone {code})", "country": "CA", "grid_region": "", "provider": ""})

    # Grid regions.
    for code, zone, name, ci in GRID_REGIONS:
        add({"code": code, "name": name, "kind": "grid", "intensity_g_per_kwh": ci, "year": 2023,
             "source": f"{SRC_EM} (zone {zone})", "country": "US", "grid_region": code, "provider": "",
             "aliases": zone})

    # Cloud regions.
    google: dict[str, float] = {}
    with (cc_data / "cloud/impact.csv").open(encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            if r["provider"] == "gcp":
                region = "me-central1" if r["region"] == "me-cenrtal1" else r["region"]  # typo upstream
                google[region] = float(r["impact"])
    for provider, region, place, country, subdivision, grid in CLOUD_REGIONS:
        if provider == "gcp" and region in google:
            ci, year, source = google[region], 2023, SRC_GCP
        else:
            basis = by_code[(grid or subdivision or country).upper()]
            ci = float(str(basis["intensity_g_per_kwh"]))
            year = int(str(basis["year"]))
            source = (
                f"{basis['code']} figure ({basis['source']}); region location: {provider} public region list"
            )
        add({"code": f"{provider}:{region}", "name": f"{provider.upper()} {region} - {place}",
             "kind": "cloud", "intensity_g_per_kwh": ci, "year": year, "source": source,
             "country": country, "grid_region": grid, "provider": provider,
             "aliases": ""})

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=HEADER, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k, "") for k in HEADER})
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
