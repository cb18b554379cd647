"""How routes and dashboard pages receive the compute-job services that the composition root built
(``powermeter.composition``); nothing here builds anything."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.jobs.service import ComputeJobs, ReceiptViews


def compute_jobs(conn: HTTPConnection) -> ComputeJobs:
    jobs: ComputeJobs = conn.app.state.services.jobs
    return jobs


def receipt_views(conn: HTTPConnection) -> ReceiptViews:
    views: ReceiptViews = conn.app.state.services.receipts
    return views


Jobs = Annotated[ComputeJobs, Depends(compute_jobs)]
Receipts = Annotated[ReceiptViews, Depends(receipt_views)]
