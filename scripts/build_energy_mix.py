"""Build ``data/energy_mix/generation_shares.csv`` from codecarbon 3.3.2's ``global_energy_mix.json``
(Our World in Data / Ember / Energy Institute electricity data, CC BY 4.0; codecarbon MIT).

Usage: ``pip download codecarbon==3.3.2 --no-deps -d /tmp/cc && python scripts/build_energy_mix.py /tmp/cc/*.whl``

Shares are of the country's electricity generation (production mix) in the row's year: fossil, nuclear,
renewable, and the rest (``other``). ISO 3166 alpha-3 codes are mapped to alpha-2 with the locations
dataset's aliases.
"""

from __future__ import annotations

import csv
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "powermeter" / "data"


def main(wheel: str) -> None:
    data = json.loads(zipfile.ZipFile(wheel).read("codecarbon/data/private_infra/global_energy_mix.json"))
    iso3_to_2: dict[str, str] = {}
    with (ROOT / "locations" / "locations.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "country":
                for alias in row["aliases"].split("|"):
                    if len(alias) == 3:
                        iso3_to_2[alias] = row["code"]
    out = ROOT / "energy_mix" / "generation_shares.csv"
    rows = []
    for iso3, d in sorted(data.items()):
        code = iso3_to_2.get(iso3)
        total = float(d.get("total_TWh") or 0.0)
        if code is None or total <= 0:
            continue
        fossil, nuclear, renewable = (float(d.get(k) or 0.0) / total for k in ("fossil_TWh", "nuclear_TWh",
                                                                               "renewables_TWh"))
        other = max(0.0, 1.0 - fossil - nuclear - renewable)
        rows.append([code, d["year"], f"{fossil:.6f}", f"{nuclear:.6f}", f"{renewable:.6f}", f"{other:.6f}"])
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["country", "year", "fossil_share", "nuclear_share", "renewable_share", "other_share"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} countries")


if __name__ == "__main__":
    main(sys.argv[1])
