"""Report renderings: CSV (for spreadsheets) and a printable HTML page with inline SVG charts.

The JSON document built by :mod:`powermeter.reports.service` is the source of truth; these
functions only lay it out. The HTML page embeds the whole signed document in a
``<script type="application/json" id="powermeter-report">`` element, so the page itself verifies
with ``powermeter reports verify report.html``. CSV is a plain table (no signature); verify the
JSON or HTML form.

CSV conventions (what a spreadsheet expects): one header row, RFC 4180 quoting and CRLF line ends
(Python's ``csv`` module defaults), UTF-8 without a byte-order mark, ISO 8601 dates, numbers with a
dot as the decimal separator, no thousands separators and no exponent notation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import orjson
from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).with_name("templates")

CSV_COLUMNS = (
    "row_type",
    "report_id",
    "period_start",
    "period_end_exclusive",
    "group_by",
    "group",
    "group_label",
    "ghg_scope",
    "ghg_category",
    "ghg_category_name",
    "accounting_method",
    "records",
    "compute_job_receipts",
    "inference_records",
    "energy_kwh",
    "co2e_kg",
    "water_l",
    "emission_factors",
    "methodology_versions",
    "co2e_usage_kg",
    "co2e_embodied_kg",
    "co2e_min_kg",
    "co2e_max_kg",
    "market_based_co2e_kg",
    "records_with_defaults",
    "market_factors",
    "signed_report_content_sha256",
    "co2e_usage_generation_kg",
    "co2e_usage_upstream_kg",
    "location_factor_basis",
    "dataset_versions",
)


def fixed(x: float | int | None) -> str:
    """A number as a spreadsheet reads it: dot decimal, no exponent, shortest round-trip digits."""
    if x is None:
        return ""
    if isinstance(x, int):
        return str(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    s = format(Decimal(repr(x)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def iso_boundary(ts: str) -> str:
    """``2026-01-01T00:00:00Z`` → ``2026-01-01`` (a date when the boundary is a UTC midnight)."""
    return ts[:10] if ts.endswith("T00:00:00Z") else ts


def _factor_cell(ids: Sequence[str], factors: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for fid in ids:
        f = factors[fid]
        value = "?" if f["value"] is None else fixed(f["value"])
        parts.append(
            f"{fid} {f['location']} {value} {f['unit']} ({f['source'] or 'source not recorded'}; "
            f"dataset {f['dataset_version'] or 'n/a'})"
        )
    return " | ".join(parts)


def csv_rows(doc: Mapping[str, Any]) -> Iterable[list[str]]:
    """The CSV table (header first) of a report document."""
    yield list(CSV_COLUMNS)
    period = doc["period"]
    common = [doc["report_id"], iso_boundary(period["start"]), iso_boundary(period["end"]), doc["group_by"]]
    factors = {f["id"]: f for f in doc["emission_factors"]}

    def figures(item: Mapping[str, Any]) -> list[str]:
        return [
            fixed(item["records"]),
            fixed(item["compute_job_receipts"]),
            fixed(item["inference_records"]),
            fixed(item["energy_kwh"]),
            fixed(item["co2e_kg"]),
            fixed(item["water_l"]),
        ]

    sig = doc.get("signature")
    digest = sig["head"]["content_sha256"] if isinstance(sig, Mapping) and isinstance(sig.get("head"), Mapping) else ""
    markets = {f["id"]: f for f in doc.get("market_factors") or ()}

    def extra(item: Mapping[str, Any], market_ids: Sequence[str] = ()) -> list[str]:
        q = item.get("data_quality") or {}
        cell = " | ".join(
            f"{m} {markets[m]['label']} {fixed(markets[m]['value'])} {markets[m]['unit']} "
            f"({markets[m]['verification']})"
            for m in market_ids
            if m in markets
        )
        basis = item.get("location_factor_basis") or {}
        versions = item.get("dataset_versions") or {}
        return [
            fixed(item.get("co2e_usage_kg")),
            fixed(item.get("co2e_embodied_kg")),
            fixed(item.get("co2e_min_kg")),
            fixed(item.get("co2e_max_kg")),
            fixed(item.get("market_based_co2e_kg")),
            fixed(q.get("records_with_defaults")),
            cell,
            digest,
            fixed(item.get("co2e_usage_generation_kg")),
            fixed(item.get("co2e_usage_upstream_kg")),
            " | ".join(f"{k} {v}" for k, v in basis.items() if v),
            " | ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        ]

    def ghg(item: Mapping[str, Any]) -> list[str]:
        g = item["ghg"]
        return [str(g["scope"]), "" if g["category"] is None else str(g["category"]), g["name"], g["method"]]

    for line in doc["lines"]:
        yield [
            "line",
            *common,
            line["group"],
            line["group_label"],
            *ghg(line),
            *figures(line),
            _factor_cell(line["emission_factor_ids"], factors),
            " | ".join(line["methodology_versions"]),
            *extra(line, line.get("market_factor_ids") or ()),
        ]
    for cat in doc["by_ghg_category"]:
        yield ["category_total", *common, "", "", *ghg(cat), *figures(cat), "", "", *extra(cat)]
    totals = doc["totals"]
    yield [
        "total",
        *common,
        "",
        "",
        "",
        "",
        "",
        "",
        *figures(totals),
        "",
        " | ".join(doc["methodology"]["record_methodology_versions"]),
        *extra(totals),
    ]


def render_csv(doc: Mapping[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)  # excel dialect: comma, double-quote quoting, CRLF
    writer.writerows(csv_rows(doc))
    return buf.getvalue().encode("utf-8")


# --- HTML ----------------------------------------------------------------------------------------

PALETTE = ("#1b6ca8", "#e07a1f", "#2e9e5b", "#c23b3b", "#7b5ea7", "#8c6d46", "#d462a6", "#6f7a85", "#a8a834", "#26a6b8")
OTHER_COLOR = "#b8bec4"
MAX_SERIES = len(PALETTE)


def _nice_max(v: float, ticks: int = 4) -> float:
    """The smallest ``ticks × step`` ≥ ``v`` with a round step (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 7.5 × 10^k)."""
    if v <= 0:
        return float(ticks)
    raw = v / ticks
    base = 10.0 ** Decimal(repr(raw)).adjusted()
    for m in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0):
        if m * base >= raw * (1 - 1e-12):
            return ticks * m * base
    return ticks * 10 * base  # pragma: no cover


def _short(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    return {
        g: PALETTE[i] if i < MAX_SERIES - 1 or len(groups) <= MAX_SERIES else OTHER_COLOR for i, g in enumerate(groups)
    }


def stacked_bars_svg(
    months: Sequence[str],
    groups: Sequence[str],
    values: Mapping[tuple[str, str], float],
    labels: Mapping[str, str],
    unit: str,
    title: str,
) -> Markup:
    """A stacked column chart (one column per month, one colour per group) as inline SVG."""
    w, h, left, bottom, top = 720, 280, 64, 40, 28
    plot_w, plot_h = w - left - 16, h - top - bottom
    colors = group_colors(groups)
    totals = [sum(values.get((m, g), 0.0) for g in groups) for m in months]
    ymax = _nice_max(max(totals, default=0.0))
    n = max(len(months), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.7, 48), 1.0)
    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        yv = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - 16}" y2="{y:.1f}" stroke="#dde1e5" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_short(yv)}</text>')
    out.append(f'<text x="12" y="{top - 10}" font-size="11">{escape(unit)}</text>')
    for i, m in enumerate(months):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for g in groups:
            v = values.get((m, g), 0.0)
            if v <= 0:
                continue
            bh = plot_h * v / ymax
            y -= bh
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{bh:.1f}" fill="{colors[g]}">'
                f"<title>{escape(m)} · {escape(labels.get(g, g))}: {fixed(v)} {escape(unit)}</title></rect>"
            )
        if n <= 24 or i % max(1, n // 12) == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'font-size="11">{escape(m)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every label escaped above


def hbars_svg(items: Sequence[tuple[str, float]], colors: Mapping[str, str], unit: str, title: str) -> Markup:
    """Horizontal bars, one per group, largest first."""
    row, left, w = 22, 220, 720
    h = row * max(len(items), 1) + 30
    vmax = _nice_max(max((v for _, v in items), default=0.0))
    plot_w = w - left - 90
    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, v) in enumerate(items):
        y = 10 + i * row
        bw = plot_w * v / vmax if vmax else 0
        text = label if len(label) <= 32 else label[:31] + "…"
        out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12">{escape(text)}</text>')
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(bw, 0.5):.1f}" height="{row - 6}" '
            f'fill="{colors.get(label, PALETTE[0])}"/>'
        )
        out.append(f'<text x="{left + bw + 6:.1f}" y="{y + 14}" font-size="11">{_short(v)} {escape(unit)}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every label escaped above


def _series_charts(doc: Mapping[str, Any]) -> dict[str, Markup]:
    months = sorted({s["month"] for s in doc["series"]})
    order: list[str] = []
    labels: dict[str, str] = {}
    for line in doc["lines"]:
        if line["group"] not in labels:
            order.append(line["group"])
            labels[line["group"]] = line["group_label"]
    shown = order if len(order) <= MAX_SERIES else [*order[: MAX_SERIES - 1], "(other)"]
    if len(order) > MAX_SERIES:
        labels["(other)"] = f"{len(order) - MAX_SERIES + 1} other groups"
    keep = set(shown)
    energy: dict[tuple[str, str], float] = {}
    co2: dict[tuple[str, str], float] = {}
    for s in doc["series"]:
        g = s["group"] if s["group"] in keep else "(other)"
        energy[(s["month"], g)] = energy.get((s["month"], g), 0.0) + s["energy_kwh"]
        co2[(s["month"], g)] = co2.get((s["month"], g), 0.0) + s["co2e_kg"]
    if doc["group_by"] == "month":  # the groups are the months: stack the GHG categories instead
        shown, labels, energy, co2 = [], {}, {}, {}
        for line in doc["lines"]:
            g = line["ghg"]
            code = g["code"]
            if code not in labels:
                shown.append(code)
                labels[code] = f"Scope {g['scope']}" + (f" Category {g['category']}" if g["category"] else "")
            energy[(line["group"], code)] = line["energy_kwh"]
            co2[(line["group"], code)] = line["co2e_kg"]
        shown.sort()
    colors = group_colors(shown)
    by_group: dict[str, float] = {}
    for line in doc["lines"]:
        by_group[line["group_label"]] = by_group.get(line["group_label"], 0.0) + line["co2e_kg"]
    label_colors = {labels.get(g, g): c for g, c in colors.items()}
    top = sorted(by_group.items(), key=lambda kv: -kv[1])[:25]
    return {
        "energy": stacked_bars_svg(months, shown, energy, labels, "kWh", "Energy by month"),
        "co2": stacked_bars_svg(months, shown, co2, labels, "kg CO2e", "Location-based emissions by month"),
        "by_group": hbars_svg(top, label_colors, "kg CO2e", f"Emissions by {doc['group_by']}"),
        "legend": Markup(  # noqa: S704 - labels escaped
            "".join(
                f'<span class="key"><i style="background:{c}"></i>{escape(labels.get(g, g))}</span>'
                for g, c in colors.items()
            )
        ),
    }


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = _display_number
    env.filters["fixed"] = fixed
    return env


_ENV: jinja2.Environment | None = None


def _display_number(x: float | int | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.1f}"
    return f"{x:.{digits}g}"


def embedded_json(doc: Mapping[str, Any]) -> Markup:
    """The document as JSON safe inside a ``<script>`` element (every ``<`` escaped as ``\\u003c``)."""
    return Markup(orjson.dumps(doc).replace(b"<", b"\\u003c").decode("utf-8"))  # noqa: S704 - no "<" left


def render_html(doc: Mapping[str, Any], esrs: Mapping[str, Any] | None = None) -> bytes:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    generated = datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
    html = _ENV.get_template("report.html").render(
        doc=doc,
        esrs=esrs if esrs is not None else doc.get("esrs_e1"),
        charts=_series_charts(doc),
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        period_start=iso_boundary(doc["period"]["start"]),
        period_end=iso_boundary(doc["period"]["end"]),
        embedded=embedded_json(doc),
    )
    return html.encode("utf-8")


def extract_embedded(html: str) -> Any:
    """The signed document embedded in an HTML report (for ``powermeter reports verify``)."""
    marker = '<script type="application/json" id="powermeter-report">'
    start = html.find(marker)
    if start < 0:
        raise ValueError("no embedded powermeter report in this HTML file")
    start += len(marker)
    end = html.find("</script>", start)
    if end < 0:
        raise ValueError("the embedded report is not terminated")
    return orjson.loads(html[start:end])
