"""Read-model tables, in the ledger's own database (SQLite or PostgreSQL).

Dates are stored as ISO strings (``YYYY-MM-DD``) and record times as UTC ISO strings:
they compare correctly as text on both databases and need no conversion on the hot path.

- ``proj_vintages``: one row per vintage: its current recorded state, its issuance
  baseline (exposure from ``exposure_start`` to ``period_end``; buffer contribution from
  ``issued_on``) and the due dates the scheduler sweeps on (indexed). Its primary key is
  the notification id of the vintage's ``Issued`` event, so rows arrive in key order
  (a rebuild appends rather than scattering a million random ids through a B-tree);
  the vintage id has a unique index of its own.
- ``proj_deltas``: every later change to an as-of figure, as a dated delta, with the
  notification id, record time (for ``known_at``) and business date (for the run-off) of
  the event that caused it.
- ``proj_rollup``: the baseline and deltas summed by day, measure, key, program and pool:
  the fast path for "as of any date" roll-ups (other groupings use the detail path).
- ``proj_rollup_year``: the same summed by calendar year, so an as-of figure reads whole
  years before the date plus the days of its own year: a few thousand rows at most.
- ``proj_failures``: notifications that could not be projected (the projector records
  them and goes on, so one bad event never stops the read models; ``check`` and
  ``projections status`` name them).
- ``proj_tracking``: the last notification id each projection has processed; written in
  the same transaction as the rows above, so processing happens exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from projections.storage.base import (
    CODE_LENGTH,
    DAY_LENGTH,
    ID_LENGTH,
    KEY_LENGTH,
    NAME_LENGTH,
    STAMP_LENGTH,
    metadata,
)

READ_MODEL = {"read_model": True}
"""Marks a table rebuilt from the event log (see :mod:`projections.storage.schema`)."""
FRESH_INFO = "fresh"


def fresh(value: object) -> dict[str, object]:
    """Marks a ``proj_vintages`` column only later events change, with its value for a
    vintage nothing has happened to since its issuance; an issuance fills every other
    column (:mod:`projections.issued`)."""
    return {FRESH_INFO: value}


def record_time_text(ts: datetime) -> str:
    """A record time as the fixed-width UTC text the tables store (compares as text)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

def _due_index(name: str, column: str) -> Index:
    """An index over a due-date column's set values only: the scheduler asks which dates
    fall on or before a day, never for the unset ones (a recorded lapse, a settled default),
    so they need no entries; and a smaller index builds faster in a rebuild."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, column, sqlite_where=where, postgresql_where=where)


tracking = Table(
    "proj_tracking",
    metadata,
    Column("name", String(CODE_LENGTH), primary_key=True),
    Column("position", BigInteger, nullable=False),
    info=READ_MODEL,
)

vintages = Table(
    "proj_vintages",
    metadata,
    Column("vintage_id", String(ID_LENGTH), nullable=False),
    Column("program", String(CODE_LENGTH), nullable=False),
    Column("pool", String(CODE_LENGTH), nullable=False),
    Column("project", String(NAME_LENGTH), nullable=False),
    Column("vintage_year", Integer, nullable=False),  # 0 when unknown
    Column("serial_first", String(NAME_LENGTH)),
    Column("serial_last", String(NAME_LENGTH)),
    Column("source_key", String(KEY_LENGTH)),
    Column("corresponding_adjustment", String(100)),
    Column("quantity", BigInteger, nullable=False),
    Column("buffer", BigInteger, nullable=False),
    Column("issued_on", String(DAY_LENGTH), nullable=False),
    Column("exposure_start", String(DAY_LENGTH), nullable=False),
    Column("period_end", String(DAY_LENGTH), nullable=False),
    Column("issued_recorded_at", String(STAMP_LENGTH), nullable=False),
    # INTEGER on SQLite, so that it is the rowid itself rather than a second key
    Column("issued_nid", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=False),
    Column("verification_due", String(DAY_LENGTH)),
    Column("lapse_arises_on", String(DAY_LENGTH)),
    Column("next_default_on", String(DAY_LENGTH), info=fresh(None)),
    Column("risk_due", String(DAY_LENGTH)),
    Column("lapse_recorded", Boolean, nullable=False, info=fresh(False)),
    Column("period_ended", Boolean, nullable=False, info=fresh(False)),
    Column("bearer", String(NAME_LENGTH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("exposure_now", BigInteger, nullable=False),
    Column("outstanding_credits", BigInteger, nullable=False),
    Column("retired", BigInteger, nullable=False, info=fresh(0)),
    Column("due_proponent", BigInteger, nullable=False, info=fresh(0)),
    Column("due_pool", BigInteger, nullable=False, info=fresh(0)),
    Column("buffer_rate", String(16), info=fresh(None)),
    Column("annual_probability", String(16), info=fresh(None)),
    Column("risk_class", String(CODE_LENGTH)),
    Column("reversible", Boolean, nullable=False),
    # a liability transfer: to whom, from when, recorded when, and a fund's term end
    Column("transfer_to", String(NAME_LENGTH), info=fresh(None)),
    Column("transfer_on", String(DAY_LENGTH), info=fresh(None)),
    Column("transfer_recorded_at", String(STAMP_LENGTH), info=fresh(None)),
    Column("term_end", String(DAY_LENGTH), info=fresh(None)),
    Column("labels", Text, info=fresh(None)),
    Column("version", Integer, nullable=False, info=fresh(1)),
    Index("ux_pv_vintage", "vintage_id", unique=True),
    # covering: a grouping by project reads its issuance baselines from the index alone
    Index("ix_pv_project", "project", "issued_on", "exposure_start", "period_end", "reversible",
          "quantity", "buffer"),
    *(_due_index(name, column) for name, column in (
        ("ix_pv_lapse", "lapse_arises_on"),
        ("ix_pv_default", "next_default_on"),
        ("ix_pv_verification_due", "verification_due"),
        ("ix_pv_risk_due", "risk_due"),
    )),
    Index("ix_pv_period_end", "period_end"),
    Index("ix_pv_pool", "pool"),
    Index("ix_pv_program", "program"),
    # the few vintages that cannot reverse: their issued total is read without a scan
    Index("ix_pv_non_reversible", "issued_on", sqlite_where=text("NOT reversible"),
          postgresql_where=text("NOT reversible")),
    info=READ_MODEL,
)

deltas = Table(
    "proj_deltas",
    metadata,
    Column("nid", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("recorded_at", String(STAMP_LENGTH), nullable=False),
    Column("vintage_id", String(ID_LENGTH), nullable=False),
    Column("measure", String(16), nullable=False),
    Column("key", String(NAME_LENGTH), nullable=False),
    Column("day", String(DAY_LENGTH), nullable=False),
    # the business date of the event that made the change (run-off ignores later facts)
    Column("on", String(DAY_LENGTH), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("program", String(CODE_LENGTH), nullable=False),
    Column("pool", String(CODE_LENGTH), nullable=False),
    Column("project", String(NAME_LENGTH), nullable=False),
    Column("vintage_year", Integer, nullable=False),
    Index("ix_pd_nid", "nid", "seq", unique=True),
    Index("ix_pd_project", "project", "day"),
    Index("ix_pd_vintage", "vintage_id"),
    Index("ix_pd_day", "day"),
    info=READ_MODEL,
)

rollup = Table(
    "proj_rollup",
    metadata,
    Column("measure", String(16), primary_key=True),
    Column("key", String(NAME_LENGTH), primary_key=True),
    Column("day", String(DAY_LENGTH), primary_key=True),
    Column("program", String(CODE_LENGTH), primary_key=True),
    Column("pool", String(CODE_LENGTH), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Index("ix_pr_day", "day"),
    info=READ_MODEL,
)

rollup_year = Table(
    "proj_rollup_year",
    metadata,
    Column("measure", String(16), primary_key=True),
    Column("key", String(NAME_LENGTH), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("program", String(CODE_LENGTH), primary_key=True),
    Column("pool", String(CODE_LENGTH), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    info=READ_MODEL,
)

failures = Table(
    "proj_failures",
    metadata,
    Column("nid", BigInteger, primary_key=True),
    Column("vintage_id", String(ID_LENGTH), nullable=False),
    Column("topic", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", String(STAMP_LENGTH), nullable=False),
    info=READ_MODEL,
)

PROJECTION_TABLES = (vintages, deltas, rollup, rollup_year, failures, tracking)
