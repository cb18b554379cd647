"""GET /v1/reports/emissions: GHG Protocol / ESRS E1 emissions reports (JSON, CSV, HTML, ESRS)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from powermeter.accounts.deps import Auth, Tx
from powermeter.infra.clock import utc_iso
from powermeter.infra.errors import NotFound, ValidationFailed, error_responses
from powermeter.reports import boundary, service

router = APIRouter(tags=["reports"])

_DESCRIPTION = """\
Energy (kWh), emissions (kg CO2e: Scope 2 location- and market-based) and water (L) of the account's
compute-job receipts and AI inference records that occurred in a period, grouped by month, location,
provider, model, API key, site or application, each line booked in its GHG Protocol bucket (Scope 2 for
jobs on owned/leased/co-located hardware, Scope 3 Category 1 for cloud compute and AI services,
unclassified for jobs sent with neither ownership nor provider), with usage and embodied CO2e apart,
min/max, data quality, the emission factors, datasets and methodology versions used, and every entry's
figures so each line re-performs.

The report proves it covers every leaf of every signed tree head anchored in the audit chain for the
period and carries an Ed25519-signed head binding the RFC 6962 Merkle root of its records and a SHA-256
of every figure: `powermeter reports verify FILE` checks it offline and names any missing, altered or
extra record (JSON, ESRS and HTML formats; the CSV carries the signed digest). `recompute=latest` adds a
restatement under the current datasets. `format=esrs` gives the
ESRS E1-5 / E1-6 figures the data support, with the limits of the data stated. Each download writes a
DOWNLOAD entry in the account's audit log.
"""


@router.get(
    "/v1/reports/emissions",
    operation_id="emissionsReport",
    summary="Emissions report (GHG Protocol / ESRS E1)",
    description=_DESCRIPTION,
    responses={
        **error_responses("v1", 400, 401, 403, 429),
        200: {
            "description": "The signed report (JSON/ESRS wrapped in {status, data}), a CSV table or an HTML page",
            "content": {"text/csv": {}, "text/html": {}},
        },
    },
)
def emissions_report(
    start: str | None = Query(
        None, description="ISO date (inclusive) or date-time, UTC; default 1 January", examples=["2026-01-01"]
    ),
    end: str | None = Query(
        None, description="ISO date (inclusive) or date-time (exclusive), UTC; default today", examples=["2026-12-31"]
    ),
    group_by: Literal["month", "location", "provider", "model", "key", "site", "application"] = Query(
        "month", alias="groupBy"
    ),
    format: Literal["json", "csv", "html", "esrs"] = Query("json"),
    recompute: Literal["latest"] | None = Query(
        None,
        description="'latest': add a restatement of the period under the current datasets beside the "
        "as-recorded figures",
    ),
    tx: Tx = Auth("receipts:read"),
) -> Response:
    p = tx.principal
    period = service.parse_period(start, end, tx.now)
    with service.snapshot(tx.state.db, tx.conn) as conn:
        doc = service.build_document(
            conn,
            tx.state.signer,
            account_id=p.account_id,
            email=p.email,
            period=period,
            group_by=group_by,
            view="esrs" if format == "esrs" else "report",
            now=tx.now,
            db=tx.state.db,
            recompute=recompute,
        )
    service.record_download(
        tx.conn, doc, format, tx.now, actor_key_id=p.key_id, actor_masked_key=p.masked_key, via="api"
    )
    headers = {"X-Report-Id": doc["report_id"], "X-Report-Records": str(doc["coverage"]["tree_size"])}
    if doc["coverage"]["merkle_root_sha256"] is not None:
        headers["X-Report-Merkle-Root"] = doc["coverage"]["merkle_root_sha256"]
    if format in ("json", "esrs"):
        return Response(
            orjson.dumps({"status": "success", "data": doc}), media_type="application/json", headers=headers
        )
    body, media_type, filename = service.render_document(doc, format)
    disposition = "attachment" if format == "csv" else "inline"
    headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return Response(body, media_type=media_type, headers=headers)


# --- reporting boundary, site instruments, period close ---------------------------------------------------


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consolidation_approach: Literal["operational_control", "financial_control", "equity_share"] = Field(
        description="GHG Protocol Corporate Standard ch. 3 consolidation approach the reports state"
    )
    entity: str | None = Field(None, min_length=1, max_length=200, description="Reporting entity name")


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["supplier_rate", "energy_attribute_certificates", "ppa"] = Field(
        description="Contractual instrument (GHG Protocol Scope 2 Guidance hierarchy)"
    )
    rate_g_per_kwh: float = Field(
        ge=0, le=2000, description="Emission rate of the instrument, gCO2e/kWh (0 for renewable certificates)"
    )
    covered_share: float = Field(
        1.0, gt=0, le=1, description="Share of the site's electricity covered; the rest uses the residual mix"
    )
    year: int = Field(ge=2000, le=2100, description="Vintage / contract year")
    source: str = Field(min_length=1, max_length=200, description="Contract, supplier disclosure or registry id")
    note: str | None = Field(None, max_length=500)


def _site_name(site: str) -> str:
    if not (1 <= len(site) <= 64) or any(c in site for c in "/\\\x00"):
        raise ValidationFailed([{"field": "site", "message": "a site tag is 1-64 characters, no slashes"}])
    return site


@router.get(
    "/v1/reports/settings",
    operation_id="getReportSettings",
    summary="Reporting boundary settings",
    responses=error_responses("v1", 401, 403, 429),
)
def get_settings(tx: Tx = Auth("receipts:read")) -> dict[str, Any]:
    b = boundary.load(tx.conn, tx.principal.account_id)
    return {
        "status": "success",
        "data": {
            "consolidation_approach": b.consolidation_approach,
            "entity": b.entity,
            "set": b.approach_set,
            "sites": [i.as_dict() for _, i in sorted(b.sites.items())],
            "closed_periods": boundary.closes_json(b),
        },
    }


@router.put(
    "/v1/reports/settings",
    operation_id="putReportSettings",
    summary="Set the consolidation approach and entity",
    responses=error_responses("v1", 400, 401, 403, 429),
)
def put_settings(body: SettingsIn, tx: Tx = Auth("report:write")) -> dict[str, Any]:
    boundary.save_settings(tx.conn, tx.principal.account_id, body.consolidation_approach, body.entity, tx.now)
    return {"status": "success", "data": body.model_dump()}


@router.put(
    "/v1/reports/sites/{site}",
    operation_id="putSiteInstrument",
    summary="Set a site's market-based instrument (supplier-specific rate, certificates, PPA)",
    responses=error_responses("v1", 400, 401, 403, 429),
)
def put_site(site: str, body: SiteIn, tx: Tx = Auth("report:write")) -> dict[str, Any]:
    inst = boundary.Instrument(
        _site_name(site), body.type, body.rate_g_per_kwh, body.covered_share, body.year, body.source, body.note
    )
    boundary.save_site(tx.conn, tx.principal.account_id, inst, tx.now)
    return {"status": "success", "data": inst.as_dict()}


@router.delete(
    "/v1/reports/sites/{site}",
    operation_id="deleteSiteInstrument",
    summary="Remove a site's instrument",
    responses=error_responses("v1", 401, 403, 404, 429),
)
def delete_site(site: str, tx: Tx = Auth("report:write")) -> dict[str, Any]:
    if not boundary.delete_site(tx.conn, tx.principal.account_id, site):
        raise NotFound(f"no instrument for site {site!r}", code="SITE_NOT_FOUND")
    return {"status": "success", "data": {"site": site, "deleted": True}}


@router.post(
    "/v1/reports/periods/{year}/close",
    operation_id="closePeriod",
    summary="Close a reporting year: later arrivals booked in it are listed as late",
    responses=error_responses("v1", 400, 401, 403, 429),
)
def close_period(year: str, tx: Tx = Auth("report:write")) -> dict[str, Any]:
    if not (len(year) == 4 and year.isdigit() and 2000 <= int(year) <= tx.now.year):
        raise ValidationFailed([{"field": "year", "message": f"a year YYYY from 2000 to {tx.now.year}"}])
    closed_at, new = boundary.close_period(tx.conn, tx.principal.account_id, int(year), tx.now)
    return {"status": "success", "data": {"year": int(year), "closed_at": utc_iso(closed_at), "newly_closed": new}}


@router.get(
    "/v1/reports/sci",
    operation_id="sciScore",
    summary="Software Carbon Intensity (ISO/IEC 21031) of an application over a period",
    responses=error_responses("v1", 400, 401, 403, 429),
)
def sci_score(
    application: str = Query(min_length=1, max_length=128, description="The application tag sent with the records"),
    start: str | None = Query(None, description="ISO date (inclusive) or date-time, UTC; default 1 January"),
    end: str | None = Query(None, description="ISO date (inclusive) or date-time (exclusive), UTC; default today"),
    functional_unit: str = Query(
        "request",
        alias="functionalUnit",
        min_length=1,
        max_length=64,
        description="What R counts (request, user, job…)",
    ),
    functional_units: float = Query(
        alias="functionalUnits", description="R: number of functional units in the period (> 0)"
    ),
    tx: Tx = Auth("receipts:read"),
) -> dict[str, Any]:
    period = service.parse_period(start, end, tx.now)
    data = service.sci(
        tx.conn,
        account_id=tx.principal.account_id,
        period=period,
        application=application,
        functional_unit=functional_unit,
        units=functional_units,
    )
    return {"status": "success", "data": data}
