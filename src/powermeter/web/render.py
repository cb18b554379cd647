"""Templates (Jinja2, autoescaped), versioned static URLs and number/date formatting."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from powermeter import __version__
from powermeter.infra.clock import utc_iso

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/dashboard"

# (path, label) of the main navigation
NAV: tuple[tuple[str, str], ...] = (
    ("/dashboard/", "Overview"),
    ("/dashboard/usage", "Usage"),
    ("/dashboard/receipts", "Receipts"),
    ("/dashboard/audit", "Audit log"),
    ("/dashboard/devices", "Devices & costs"),
    ("/dashboard/calculator", "Calculator"),
    ("/dashboard/bills", "Bills"),
    ("/dashboard/reports", "Reports"),
    ("/dashboard/settings", "Settings"),
)

# Messages shown after a redirect (``?flash=<code>``): only these texts, never text from the URL.
FLASHES: dict[str, str] = {
    "welcome": "Your account is ready. Create an API key below to start calling the API.",
    "logged-out": "You have been logged out.",
    "revoked": "The key has been revoked: calls made with it are now refused.",
    "key-not-found": "There is no such key on this account.",
    "profile-saved": "Your rate has been saved.",
    "device-added": "The device has been added.",
    "device-saved": "The device has been saved.",
    "device-deleted": "The device has been deleted.",
    "device-not-found": "There is no such device on this account.",
}


@lru_cache(maxsize=256)
def _static_version(name: str) -> str:
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file():
        return "0"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    """``/dashboard/static/<name>?v=<content hash>``: cacheable forever, busted on change."""
    return f"{PREFIX}/static/{name}?v={_static_version(name)}"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A readable number: thousands separators, ``digits`` significant figures for small values."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value) if not isinstance(value, float) else value
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(a)))
    s = f"{v:,.{min(decimals, 9)}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def fmt_money(value: Any, currency: str = "") -> str:
    if value is None:
        return "–"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    s = f"{d.quantize(Decimal('0.01')):,}"
    return f"{s} {currency}".strip()


def fmt_rate(value: Any, currency: str = "") -> str:
    """A price per kWh: up to 4 decimals (tariffs are quoted to the tenth of a cent)."""
    if value is None:
        return "–"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    s = f"{d.quantize(Decimal('0.0001')):f}".rstrip("0")
    if len(s.partition(".")[2]) < 2:
        s = f"{d.quantize(Decimal('0.01')):f}"
    return f"{s} {currency}/kWh".strip() if currency else f"{s}/kWh"


# Units named by a key's suffix, and words that are acronyms: ``cpu_kwh`` → ``CPU energy (kWh)``.
_UNIT_SUFFIXES = (
    ("_kwh", "energy", "kWh"),
    ("_wh", "energy", "Wh"),
    ("_grams", "", "g"),
    ("_g", "", "g"),
    ("_kg", "", "kg"),
    ("_gb", "", "GB"),
    ("_minutes", "", "min"),
    ("_hours", "", "h"),
    ("_ml", "", "mL"),
    ("_l", "", "L"),
    ("_w", "power", "W"),
)
_WORDS = {
    "cpu": "CPU",
    "gpu": "GPU",
    "pue": "PUE (power usage effectiveness)",
    "co2": "CO₂e",
    "iso": "",
    "kwh": "Energy",
    "geo": "Location",
    "id": "ID",
    "tdp": "TDP",
    "wue": "WUE",
}
_LABELS = {
    "kwh": ("Energy", "kWh"),
    "co2_grams": ("Emissions", "g CO₂e"),
    "overhead_kwh": ("Overhead energy", "kWh"),
    "geo_iso": ("Location", ""),
    "gpu_cores": ("GPUs", ""),
    "cpu_cores": ("CPU cores", ""),
    "memory_gb": ("Memory", "GB"),
    "duration_minutes": ("Duration", "min"),
}


def human_label(key: str) -> tuple[str, str]:
    """A key of a receipt as words and a unit: ``cpu_kwh`` → (``CPU energy``, ``kWh``)."""
    if key in _LABELS:
        return _LABELS[key]
    unit, noun, base = "", "", key
    for suffix, n, u in _UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            base, noun, unit = key[: -len(suffix)], n, u
            break
    words = [_WORDS.get(w, w) for w in base.split("_")]
    text = " ".join(w for w in words if w)
    if noun and noun not in text.lower():
        text = f"{text} {noun}"
    return (text[:1].upper() + text[1:]) if text else key, unit


def co2_subscript(value: Any) -> str:
    """``CO2e`` as the dashboard spells it everywhere: ``CO₂e``."""
    return str(value).replace("CO2", "CO₂")


def fmt_dt(value: Any) -> str:
    """``2026-11-22 12:00 UTC`` from a datetime or ISO string."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        text: str = value
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if isinstance(value, datetime):
        return utc_iso(value).replace("T", " ").replace("Z", " UTC")[:-7] + " UTC"
    return str(value)


def fmt_pct(used: float | int | None, limit: float | int | None) -> int:
    if not limit or used is None:
        return 0
    return max(0, min(100, round(100 * float(used) / float(limit))))


def to_json(value: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">`` (``<`` escaped)."""
    raw = orjson.dumps(value, default=str).decode().replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(raw)  # noqa: S704 (escaped above; never executed: type=application/json)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.globals.update(static=static_url, version=__version__, nav=NAV, flashes=FLASHES, human_label=human_label)
    env.filters.update(num=fmt_num, money=fmt_money, rate=fmt_rate, co2=co2_subscript, dt=fmt_dt, tojson_safe=to_json)
    return env


def wants_fragment(request: Request) -> bool:
    """An htmx swap asks for a fragment; a history restore (Back after an htmx swap), a reload or a
    plain link asks for the whole page."""
    h = request.headers
    return h.get("hx-request") == "true" and h.get("hx-history-restore-request") != "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "request": request,
        "path": request.url.path,
        "session": getattr(request.state, "web_session", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "signup_enabled": getattr(request.state, "signup_enabled", True),
        "page_title": "",
        "flash": request.query_params.get("flash"),
    }
    if context:
        ctx.update(context)
    html: str = environment().get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
