"""Retention: delete compute-job receipts and AI inference records older than a number of whole months.

Off by default (``POWERMETER_RETENTION_MONTHS`` unset). When set to ``N``, the cut-off is the first day
(UTC) of the month ``N`` months before the current one: with ``N = 12`` on 2026-12-03, everything before
2025-12-01 goes. What goes, in bounded transactions of about ``POWERMETER_RETENTION_BATCH_ROWS`` records
each (the same statements on SQLite and PostgreSQL; see docs/partitioning.md for why the tables are not
partitioned):

* receipt trees created before the cut-off, whole, with their receipts (a receipt's time is its tree's);
* inference records booked (``log_date``) before the cut-off, with their details and signatures, and
  the inference rollup days before it.

Never touched: the audit chain (its ``TREE_SIGNED`` anchors stay: a report over a period before the
cut-off then names the deleted records as missing, which is the truth), the factor profiles (shared,
deduplicated) and, unless ``POWERMETER_RETENTION_INCLUDE_CLOSED_PERIODS`` is set, any record of an
account from the first day of its earliest closed reporting year on: a closed year's signed report can
then always be rebuilt and verified against the rows it covers (late arrivals included).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from powermeter.infra.clock import Clock, utc_iso
from powermeter.infra.db import Database
from powermeter.reports import repository as repo

log = logging.getLogger("powermeter.retention")

#: Receipt trees read per page while looking for old ones (a tree holds 1 to 10,000 receipts).
TREE_PAGE = 1000
#: The first run of the background task, after start-up (then every ``interval_s``).
FIRST_RUN_DELAY_S = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    months: int
    include_closed_periods: bool = False
    batch_rows: int = 5000


@dataclass(slots=True)
class Result:
    cutoff: datetime
    receipts: int = 0
    receipt_trees: int = 0
    inference_records: int = 0
    inference_daily_rows: int = 0
    transactions: int = 0
    kept_from: dict[str, datetime] = field(default_factory=dict)  # account → its closed periods' start

    def as_json(self) -> dict[str, Any]:
        return {
            "cutoff": utc_iso(self.cutoff),
            "deleted": {
                "receipts": self.receipts,
                "receipt_trees": self.receipt_trees,
                "inference_records": self.inference_records,
                "inference_daily_rows": self.inference_daily_rows,
            },
            "transactions": self.transactions,
            "kept_for_closed_periods": {a: utc_iso(t) for a, t in sorted(self.kept_from.items())},
        }


def cutoff(now: datetime, months: int) -> datetime:
    """The first instant (UTC) retention keeps: the first day of the month ``months`` before ``now``'s."""
    n = now.astimezone(UTC)
    k = n.year * 12 + (n.month - 1) - months
    return datetime(k // 12, k % 12 + 1, 1, tzinfo=UTC)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def apply(db: Database, now: datetime, policy: Policy) -> Result:
    """Delete what ``policy`` lets go, in transactions of about ``policy.batch_rows`` records each."""
    cut = cutoff(now, policy.months)
    res = Result(cut)
    if not policy.include_closed_periods:
        with db.begin() as conn:
            closes = repo.earliest_closed_years(conn)
        for account, year in closes.items():
            start = datetime(year, 1, 1, tzinfo=UTC)
            if start < cut:
                res.kept_from[account] = start
    limits = res.kept_from
    batch = max(1, policy.batch_rows)
    _receipts(db, cut, limits, batch, res)
    _inference(db, cut, limits, batch, res)
    with db.begin() as conn:
        others = list(limits)
        res.inference_daily_rows += repo.delete_daily_before(conn, cut.date(), other_than=others)
        for account, start in limits.items():
            res.inference_daily_rows += repo.delete_daily_before(conn, start.date(), account_id=account)
    return res


def _receipts(db: Database, cut: datetime, limits: dict[str, datetime], batch: int, res: Result) -> None:
    after = 0
    while True:
        with db.begin() as conn:
            page = repo.trees_created_before(conn, cut, after, min(batch, TREE_PAGE))
            if not page:
                return
            chosen: list[int] = []
            size = 0
            for seq, account, tree_size, created in page:
                after = int(seq)
                if _aware(created) >= limits.get(str(account), cut):
                    continue
                chosen.append(after)
                size += int(tree_size)
                if size >= batch:
                    break
            if chosen:
                res.receipts += repo.delete_trees(conn, chosen)
                res.receipt_trees += len(chosen)
                res.transactions += 1


def _inference(db: Database, cut: datetime, limits: dict[str, datetime], batch: int, res: Result) -> None:
    after = 0
    while True:
        with db.begin() as conn:
            page = repo.inference_before(conn, cut, after, batch)
            if not page:
                return
            after = int(page[-1][0])
            ids = [str(rid) for _seq, rid, account, logged in page if _aware(logged) < limits.get(str(account), cut)]
            if ids:
                res.inference_records += repo.delete_inference(conn, ids)
                res.transactions += 1


async def retention_task(db: Database, clock: Clock, policy: Policy, interval_s: float) -> None:
    """Background task: a first run shortly after start-up, then one every ``interval_s``."""
    delay = min(FIRST_RUN_DELAY_S, float(interval_s))
    while True:
        await asyncio.sleep(delay)
        delay = max(60.0, float(interval_s))
        try:
            res = await asyncio.to_thread(apply, db, clock.now(), policy)
            if res.receipts or res.inference_records:
                log.info("retention: %s", res.as_json())
        except Exception:  # keep the schedule going; the next run retries
            log.exception("retention: run failed")
