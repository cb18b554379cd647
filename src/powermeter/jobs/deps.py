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


async def _compute_jobs(conn: HTTPConnection) -> ComputeJobs:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return compute_jobs(conn)


Jobs = Annotated[ComputeJobs, Depends(_compute_jobs)]


async def _receipt_views(conn: HTTPConnection) -> ReceiptViews:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return receipt_views(conn)


Receipts = Annotated[ReceiptViews, Depends(_receipt_views)]
