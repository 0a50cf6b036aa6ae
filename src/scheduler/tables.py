"""The scheduler's own tables, in the ledger's database beside the read models.

- ``sched_reminders``: reminders raised by sweeps, one per (kind, subject, due_on), so
  raising one again inserts nothing;
- ``sched_state``: the mark of the last complete sweep (see :mod:`scheduler.watermark`);
- ``sched_jobs``: APScheduler's job store (created by APScheduler itself, see
  :mod:`scheduler.jobs`).
"""

from __future__ import annotations

import weakref

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.exc import DBAPIError

metadata = MetaData()

reminders = Table(
    "sched_reminders",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("due_on", String(10), primary_key=True),
    Column("raised_on", String(10), nullable=False),
    Column("raised_at", String(32), nullable=False),
    Column("pool", String(64)),
    Column("project", String(200)),
    Column("detail", Text),
    Index("ix_sr_due", "due_on"),
    Index("ix_sr_kind_due", "kind", "due_on"),
)

state = Table(
    "sched_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("as_of", String(10), nullable=False),
    Column("horizon", String(10), nullable=False),
)

SCHEDULER_TABLES = (reminders, state)
#: Serialises creation of the scheduler's tables across processes (PostgreSQL).
_DDL_LOCK_KEY = 0x7065726D_616E656E  # "permanen"
_ATTEMPTS = 5
_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_tables(engine: Engine) -> None:
    """Create the scheduler's tables once per engine (cheap afterwards).

    Two processes may sweep a new ledger at the same moment; on PostgreSQL concurrent DDL
    fails ("tuple concurrently updated"), so creation is serialised by a transaction-level
    advisory lock; on SQLite the loser of the race finds the tables there and carries on.
    """
    if engine in _ready:
        return
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK_KEY})
                metadata.create_all(conn, tables=list(SCHEDULER_TABLES), checkfirst=True)
            break
        except DBAPIError:
            # another process created some of them between our check and our CREATE
            # (SQLite commits each CREATE on its own); check again
            if attempt == _ATTEMPTS - 1:
                raise
    _ready.add(engine)
