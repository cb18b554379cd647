"""Server-side cost of billing a year of meter readings (POST /calc/api/bill's work, in-process).

    python benchmarks/bench_bill.py [--repeat 7]

Goals (issue 18): 8,760 hourly readings billed in ≤ 50 ms, 35,040 15-minute readings in ≤ 150 ms.

"Server-side" = what the route does after the body is read: JSON decode, reading validation, billing
(``bills.bill``) and the response dict; the CSV and ESPI rows time the file parsers on the same readings.
The machine is shared, so the script prints the load average and, as a same-process baseline, the time
``orjson.loads`` takes on the same body (every JSON request pays it); the ratio is steadier than the
absolute figure. The median of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson

LA = ZoneInfo("America/Los_Angeles")


def readings(n: int, minutes: int) -> list[dict[str, object]]:
    t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)  # 2026-01-01 00:00 PST
    step = timedelta(minutes=minutes)
    return [
        {"start": (t0 + i * step).isoformat(), "kwh": round(0.1 + (i * 37 % 100) / 250 * minutes / 60, 4)}
        for i in range(n)
    ]


def csv_body(rs: list[dict[str, object]]) -> bytes:
    return ("timestamp,kwh\n" + "".join(f"{r['start']},{r['kwh']}\n" for r in rs)).encode()


def espi_body(rs: list[dict[str, object]], minutes: int) -> bytes:
    parts = [
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><content><ReadingType xmlns="http://naesb.org/espi">'
        "<uom>72</uom><powerOfTenMultiplier>0</powerOfTenMultiplier><kind>12</kind></ReadingType></content></entry>"
        '<entry><content><IntervalBlock xmlns="http://naesb.org/espi">'
    ]
    for r in rs:
        start = int(datetime.fromisoformat(str(r["start"])).timestamp())
        wh = round(float(r["kwh"]) * 1000)  # type: ignore[arg-type]
        parts.append(
            f"<IntervalReading><timePeriod><duration>{minutes * 60}</duration><start>{start}</start></timePeriod>"
            f"<value>{wh}</value></IntervalReading>"
        )
    parts.append("</IntervalBlock></content></entry></feed>")
    return "".join(parts).encode()


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU time (ms) of this process per call: on a shared machine, wall time mostly measures the
    other processes; CPU time is what the call costs (wall medians are printed beside it)."""
    fn()  # warm caches (compiled rate, price splits)
    cpu = []
    wall = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    WALL.append(statistics.median(wall))
    return statistics.median(cpu)


WALL: list[float] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tariff", default="pge-e-tou-c")
    args = ap.parse_args()

    from powermeter.cost import bills
    from powermeter.data.rates import load_rates

    rates = load_rates()
    gc.collect()
    gc.freeze()  # as the server's lifespan does: start-up objects leave the collector's reach
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    for n, minutes, goal in ((8760, 60, 50.0), (35040, 15, 150.0)):
        rs = readings(n, minutes)
        raw = orjson.dumps({"tariffId": args.tariff, "readings": rs})
        decode = median_ms(lambda raw=raw: orjson.loads(raw), args.repeat)  # type: ignore[misc]

        def json_bill(raw: bytes = raw) -> object:
            params, body, ct = bills.split_request("application/json", raw, {})
            return bills.bill(params, body, ct, rates)

        ms = median_ms(json_bill, args.repeat)
        verdict = "meets" if ms <= goal else "MISSES"
        print(
            f"{n:>6} readings × {minutes:>2} min, {args.tariff}: JSON bill {ms:7.1f} ms CPU (wall {WALL[-1]:.1f} ms; "
            f"goal ≤ {goal:.0f} ms: {verdict}); orjson.loads of the same body {decode:5.1f} ms → "
            f"ratio {ms / decode:5.1f}×"
        )
        csv_raw = csv_body(rs)
        ms_csv = median_ms(
            lambda b=csv_raw: bills.bill({"tariffId": args.tariff}, b, "text/csv", rates),  # type: ignore[misc]
            args.repeat,
        )
        xml_raw = espi_body(rs, minutes)
        ms_xml = median_ms(
            lambda b=xml_raw: bills.bill({"tariffId": args.tariff}, b, "application/xml", rates),  # type: ignore[misc]
            args.repeat,
        )
        print(
            f"{'':>6}   CPU: CSV body {len(csv_raw) / 1e6:4.1f} MB: {ms_csv:7.1f} ms;  "
            f"ESPI XML {len(xml_raw) / 1e6:4.1f} MB: {ms_xml:7.1f} ms"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
