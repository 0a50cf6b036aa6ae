"""The scheduler's own tables, in the ledger's database beside the read models.

- ``sched_reminders``: reminders raised by sweeps, one per (kind, subject, due_on), so
  raising one again inserts nothing;
- ``sched_state``: the mark of the last complete sweep (see :mod:`scheduler.watermark`);
- ``sched_jobs``: APScheduler's job store (created by APScheduler itself, see
  :mod:`scheduler.jobs`).

Their shape changes only through a migration (``projections/storage/migrations``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, Index, String, Table, Text

from projections.storage.base import (
    CODE_LENGTH,
    DAY_LENGTH,
    NAME_LENGTH,
    STAMP_LENGTH,
    metadata,
)
from projections.storage.schema import ensure_durable

reminders = Table(
    "sched_reminders",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("subject", String(NAME_LENGTH), primary_key=True),
    Column("due_on", String(DAY_LENGTH), primary_key=True),
    Column("raised_on", String(DAY_LENGTH), nullable=False),
    Column("raised_at", String(STAMP_LENGTH), nullable=False),
    Column("pool", String(CODE_LENGTH)),
    Column("project", String(NAME_LENGTH)),
    Column("detail", Text),
    Index("ix_sr_due", "due_on"),
    Index("ix_sr_kind_due", "kind", "due_on"),
)

state = Table(
    "sched_state",
    metadata,
    Column("name", String(CODE_LENGTH), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("as_of", String(DAY_LENGTH), nullable=False),
    Column("horizon", String(DAY_LENGTH), nullable=False),
)

SCHEDULER_TABLES = (reminders, state)


def ensure_tables(engine: Engine) -> None:
    """Make sure the scheduler's tables exist and are migrated (cheap after the first call
    per engine). They hold what no event records, so they are never rebuilt: Alembic
    migrates them (:mod:`projections.storage.schema`), under the schema lock that
    serialises two processes sweeping a new ledger at once."""
    ensure_durable(engine)
