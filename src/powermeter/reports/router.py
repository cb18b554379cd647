"""GET /v1/reports/emissions: GHG Protocol / ESRS E1 emissions reports (JSON, CSV, HTML, ESRS)."""

from __future__ import annotations

from typing import Literal

import orjson
from fastapi import APIRouter, Query, Response

from powermeter.accounts.deps import Auth, Tx
from powermeter.infra.errors import error_responses
from powermeter.reports import service

router = APIRouter(tags=["reports"])

_DESCRIPTION = """\
Energy (kWh), location-based emissions (kg CO2e) and water (L) of the account's compute-job receipts and
AI inference records over a period, grouped by month, location, provider, model or API key, each line
booked in its GHG Protocol category (Scope 2 location-based for jobs on the account's own hardware,
Scope 3 Category 1 for purchased cloud compute and AI services), with the emission factors, datasets and
methodology versions used.

The report lists every record it covers (id and hash) and carries an Ed25519-signed head binding the
RFC 6962 Merkle root of that list and a SHA-256 of every figure: `powermeter reports verify FILE` checks
it offline (JSON, ESRS and HTML formats; CSV is a plain spreadsheet table). `format=esrs` gives the
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
    start: str | None = Query(None, description="ISO date (inclusive) or date-time, UTC; default 1 January",
                              examples=["2026-01-01"]),
    end: str | None = Query(None, description="ISO date (inclusive) or date-time (exclusive), UTC; default today",
                            examples=["2026-12-31"]),
    group_by: Literal["month", "location", "provider", "model", "key"] = Query("month", alias="groupBy"),
    format: Literal["json", "csv", "html", "esrs"] = Query("json"),
    tx: Tx = Auth("receipts:read"),
) -> Response:
    p = tx.principal
    period = service.parse_period(start, end, tx.now)
    with service.snapshot(tx.state.db, tx.conn) as conn:
        doc = service.build_document(
            conn, tx.state.signer, account_id=p.account_id, email=p.email, period=period, group_by=group_by,
            view="esrs" if format == "esrs" else "report", now=tx.now, db=tx.state.db,
            with_coverage=format != "csv",
        )
    service.record_download(tx.conn, doc, format, tx.now, actor_key_id=p.key_id, actor_masked_key=p.masked_key,
                            via="api")
    headers = {"X-Report-Id": doc["report_id"], "X-Report-Records": str(doc["coverage"]["tree_size"])}
    if doc["coverage"]["merkle_root_sha256"] is not None:
        headers["X-Report-Merkle-Root"] = doc["coverage"]["merkle_root_sha256"]
    if format in ("json", "esrs"):
        return Response(orjson.dumps({"status": "success", "data": doc}), media_type="application/json",
                        headers=headers)
    body, media_type, filename = service.render_document(doc, format)
    disposition = "attachment" if format == "csv" else "inline"
    headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return Response(body, media_type=media_type, headers=headers)
