"""The scheduled jobs, and the APScheduler that runs them while this process leads.

The daily sweep lives in a persistent job store in the ledger's own database
(``sched_jobs``; on PostgreSQL in the ledger's schema), so its schedule survives restarts
and shows in the database beside the ledger. A job store keeps jobs by textual reference
and pickled arguments, so the persisted job is the module-level :func:`run_sweep_job`
with a key; the running daemon registers the callable behind that key while it leads.

One-off sweeps (the catch-up at start, a sweep after new events) go to an in-memory store:
they mean nothing to a later process, which runs its own catch-up anyway. A single worker
thread runs every job, so two sweeps never overlap within a process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, create_engine

from scheduler.leader import StoreInfo

JOB_TABLE = "sched_jobs"
DAILY_SWEEP = "daily-sweep"
START_SWEEP = "start-sweep"
CHANGE_SWEEP = "change-sweep"
PERSISTENT = "default"
VOLATILE = "volatile"

log = logging.getLogger("scheduler.jobs")
_runners: dict[str, Callable[[str], None]] = {}


def register(key: str, runner: Callable[[str], None]) -> None:
    """Make ``runner`` the body of jobs scheduled with ``key`` (while this process leads)."""
    _runners[key] = runner


def unregister(key: str) -> None:
    _runners.pop(key, None)


def run_sweep_job(key: str, reason: str) -> None:
    """The persisted job: hand over to the daemon that registered ``key``."""
    runner = _runners.get(key)
    if runner is None:
        log.warning("no daemon for scheduled job", extra={"fields": {"key": key, "reason": reason}})
        return
    runner(reason)


def job_store_engine(store: StoreInfo, lock_timeout: int = 10) -> Engine:
    """The job store's own engine (APScheduler disposes it at shutdown)."""
    if store.kind == "sqlite":
        return create_engine(store.sqlalchemy_url, connect_args={"timeout": lock_timeout})
    return create_engine(store.sqlalchemy_url, pool_pre_ping=True, pool_size=1)


def build_scheduler(store: StoreInfo, tz: tzinfo) -> BackgroundScheduler:
    """A scheduler whose persistent jobs live in ``sched_jobs`` in the ledger's database."""
    jobstores: dict[str, Any] = {
        PERSISTENT: SQLAlchemyJobStore(
            engine=job_store_engine(store), tablename=JOB_TABLE, tableschema=store.schema
        ),
        VOLATILE: MemoryJobStore(),
    }
    return BackgroundScheduler(
        jobstores=jobstores,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=tz,
    )


def install(scheduler: BackgroundScheduler, key: str, sweep_at: time, tz: tzinfo) -> None:
    """The daily sweep at ``sweep_at``, and one sweep straight away to catch up."""
    scheduler.add_job(
        run_sweep_job,
        CronTrigger(hour=sweep_at.hour, minute=sweep_at.minute, timezone=tz),
        args=[key, "daily"],
        id=DAILY_SWEEP,
        name="daily sweep",
        jobstore=PERSISTENT,
        replace_existing=True,
    )
    request(scheduler, key, "start", START_SWEEP)


def request(scheduler: BackgroundScheduler, key: str, reason: str, job_id: str = CHANGE_SWEEP) -> None:
    """Run one sweep as soon as the worker is free (a pending request absorbs repeats)."""
    scheduler.add_job(
        run_sweep_job,
        DateTrigger(run_date=datetime.now(scheduler.timezone)),
        args=[key, reason],
        id=job_id,
        name=f"{reason} sweep",
        jobstore=VOLATILE,
        replace_existing=True,
    )
