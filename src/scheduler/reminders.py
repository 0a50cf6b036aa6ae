"""Reminders: things coming due that a person must act on, recorded so they can be queried.

A reminder is keyed by (kind, subject, due_on), so raising the same reminder again (a
re-run, a second daemon, a catch-up after downtime) inserts nothing. Reminders live in
``sched_reminders`` in the ledger's own database, beside the read models they are derived
from; they are operational records, not ledger facts, so they are not events.

Kinds:

- ``verification_due``: a vintage's verification falls due within the horizon and its
  lapse has not arisen yet (subject: the vintage id);
- ``risk_reassessment_due``: a project's risk reassessment falls due within the horizon
  under its profile's interval (subject: the project);
- ``stress_test_due``: a buffer pool's stress test is due (at least every 5 years; a pool
  never stress-tested is due from its first contribution) (subject: the pool).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, func, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

from ledger.calendar import add_years
from ledger.errors import UnknownProgram
from ledger.profiles import ProfileCatalog
from projections.tables import rollup, vintages
from scheduler.tables import ensure_tables, reminders
from scheduler.watermark import Scope, chunks

VERIFICATION_DUE = "verification_due"
RISK_REASSESSMENT_DUE = "risk_reassessment_due"
STRESS_TEST_DUE = "stress_test_due"
KINDS: tuple[str, ...] = (VERIFICATION_DUE, RISK_REASSESSMENT_DUE, STRESS_TEST_DUE)

#: CIWP recommendation 3: a pool is stress-tested at least this often.
MAX_STRESS_TEST_INTERVAL_YEARS = 5
DEFAULT_HORIZON_DAYS = 90
_INSERT_CHUNK = 500

class StressTestLog(Protocol):
    """When a pool was last stress-tested (the stress-testing issue will record runs)."""

    def last_run(self, pool: str) -> date | None: ...


class NoStressTests:
    """No ``StressTestRun`` records exist yet: every pool counts as never tested."""

    def last_run(self, pool: str) -> date | None:
        return None


@dataclass(frozen=True)
class Reminder:
    """One reminder as raised."""

    kind: str
    subject: str
    due_on: date
    pool: str | None = None
    project: str | None = None
    detail: dict[str, Any] | None = None


def due_reminders(
    engine: Engine,
    catalog: ProfileCatalog,
    as_of: date,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    stress_log: StressTestLog | None = None,
    scope: Scope | None = None,
) -> list[Reminder]:
    """Reminders due within ``horizon_days`` of ``as_of``, from the indexed read model.

    With a ``scope`` from :mod:`scheduler.watermark`, only what can be new since the last
    complete sweep is looked at; without one, everything.
    """
    horizon = as_of + timedelta(days=horizon_days)
    scope = scope or Scope(position=0)
    found = _verification(engine, catalog, as_of, horizon, scope)
    found += _risk(engine, as_of, horizon, scope)
    found += _stress(engine, catalog, horizon, stress_log or NoStressTests())
    return found


def _verification(
    engine: Engine, catalog: ProfileCatalog, as_of: date, horizon: date, scope: Scope
) -> list[Reminder]:
    """Verification due by the horizon, lapse not yet arisen (so still in time or in grace).

    The lower bound keeps the scan to an index range: a vintage whose due date is more than
    the longest grace of any profile in the catalog ago has lapsed, not fallen due.
    """
    grace = max((p.grace_days.value for p in catalog), default=0)
    low = as_of - timedelta(days=grace + 1)
    v = vintages
    query = select(v.c.vintage_id, v.c.project, v.c.pool, v.c.program, v.c.verification_due,
                   v.c.lapse_arises_on)
    due = [
        v.c.verification_due >= low.isoformat(),
        v.c.verification_due <= horizon.isoformat(),
        v.c.lapse_arises_on > as_of.isoformat(),
        v.c.period_ended.is_(False),
    ]
    statements = []
    if scope.mark is None:
        statements.append(query.where(*due))
    else:
        after = scope.mark.horizon.isoformat()
        statements.append(query.where(v.c.verification_due > after, *due))
        statements += [query.where(v.c.vintage_id.in_(c), *due) for c in chunks(scope.changed)]
    found: dict[str, Reminder] = {}
    with engine.connect() as conn:
        for stmt in statements:
            for vid, project, pool, program, day, arises in conn.execute(stmt):
                found[vid] = Reminder(VERIFICATION_DUE, vid, date.fromisoformat(day), pool, project,
                                      {"program": program, "lapse_arises_on": arises})
    return list(found.values())


def _risk(engine: Engine, as_of: date, horizon: date, scope: Scope) -> list[Reminder]:
    """Risk reassessments due by the horizon, per project and due date (vintages counted)."""
    v = vintages
    query = select(v.c.project, v.c.risk_due, func.min(v.c.pool), func.count()).group_by(
        v.c.project, v.c.risk_due)
    due = [
        v.c.risk_due <= horizon.isoformat(),
        v.c.period_ended.is_(False),
        v.c.period_end > as_of.isoformat(),
    ]
    found: dict[tuple[str, str], Reminder] = {}
    with engine.connect() as conn:
        if scope.mark is None:
            statements = [query.where(*due)]
        else:
            statements = [query.where(v.c.risk_due > scope.mark.horizon.isoformat(), *due)]
            projects: set[str] = set()
            for c in chunks(scope.changed):
                ids = select(v.c.project).where(v.c.vintage_id.in_(c)).distinct()
                projects.update(r[0] for r in conn.execute(ids))
            statements += [query.where(v.c.project.in_(c), *due) for c in chunks(sorted(projects))]
        for stmt in statements:
            for project, day, pool, n in conn.execute(stmt):
                found[(project, day)] = Reminder(RISK_REASSESSMENT_DUE, project, date.fromisoformat(day),
                                                 pool, project, {"vintages": int(n)})
    return list(found.values())


def _stress(
    engine: Engine, catalog: ProfileCatalog, horizon: date, log: StressTestLog
) -> list[Reminder]:
    """One stress test per pool holding contributions, read from the small daily roll-up."""
    stmt = (
        select(rollup.c.key, rollup.c.program, func.min(rollup.c.day))
        .where(rollup.c.measure == "contributions")
        .group_by(rollup.c.key, rollup.c.program)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    first: dict[str, date] = {}
    interval: dict[str, int] = {}
    for pool, program, day in rows:
        d = date.fromisoformat(day)
        first[pool] = min(first.get(pool, d), d)
        interval[pool] = min(interval.get(pool, MAX_STRESS_TEST_INTERVAL_YEARS),
                             _stress_interval(catalog, program))
    out = []
    for pool in sorted(first):
        last = log.last_run(pool)
        due = add_years(last, interval[pool]) if last is not None else first[pool]
        if due <= horizon:
            detail = {"interval_years": interval[pool],
                      "last_run": last.isoformat() if last else None}
            out.append(Reminder(STRESS_TEST_DUE, pool, due, pool, None, detail))
    return out


def _stress_interval(catalog: ProfileCatalog, program: str) -> int:
    try:
        years = catalog.get(program).stress_test_interval_years.value
    except UnknownProgram:  # a registry's own profile no longer loaded: the CIWP floor
        return MAX_STRESS_TEST_INTERVAL_YEARS
    return max(1, min(years, MAX_STRESS_TEST_INTERVAL_YEARS))


def record(engine: Engine, found: Sequence[Reminder], raised_on: date) -> int:
    """Insert reminders not yet recorded; returns how many were new."""
    if not found:
        return 0
    ensure_tables(engine)
    found = _not_recorded(engine, found)
    if not found:
        return 0
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    raised_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = [_row(r, raised_on, raised_at) for r in found]
    new = 0
    with engine.begin() as conn:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start:start + _INSERT_CHUNK]
            stmt = insert(reminders).values(chunk).on_conflict_do_nothing().returning(
                reminders.c.kind
            )
            new += len(conn.execute(stmt).all())
    return new


def _not_recorded(engine: Engine, found: Sequence[Reminder]) -> list[Reminder]:
    """Drop reminders already recorded, so a re-run writes nothing (and takes no write lock)."""
    r = reminders
    known: set[tuple[str, str, str]] = set()
    with engine.connect() as conn:
        for kind in sorted({x.kind for x in found}):
            subjects = sorted({x.subject for x in found if x.kind == kind})
            for c in chunks(subjects):
                stmt = select(r.c.kind, r.c.subject, r.c.due_on).where(
                    r.c.kind == kind, r.c.subject.in_(c))
                known.update((k, s, d) for k, s, d in conn.execute(stmt))
    return [x for x in found if (x.kind, x.subject, x.due_on.isoformat()) not in known]


def _row(r: Reminder, raised_on: date, raised_at: str) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "subject": r.subject,
        "due_on": r.due_on.isoformat(),
        "raised_on": raised_on.isoformat(),
        "raised_at": raised_at,
        "pool": r.pool,
        "project": r.project,
        "detail": json.dumps(r.detail, sort_keys=True) if r.detail else None,
    }


def raise_due(
    engine: Engine,
    catalog: ProfileCatalog,
    as_of: date,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    stress_log: StressTestLog | None = None,
    scope: Scope | None = None,
) -> int:
    """Find and record every reminder due within the horizon; returns how many were new."""
    found = due_reminders(engine, catalog, as_of, horizon_days, stress_log, scope)
    return record(engine, found, as_of)


def list_reminders(
    engine: Engine,
    kinds: Iterable[str] | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    limit: int | None = None,
    stress_log: StressTestLog | None = None,
    open_only: bool = False,
) -> list[dict[str, Any]]:
    """Recorded reminders, soonest due first, each saying whether it is still ``open``.

    A reminder ends when what it asked for is recorded: a verification that moved the
    vintage's due date, a risk assessment that moved the project's, a stress test of the
    pool within the interval (with ``stress_log``). ``open_only`` drops ended ones.
    """
    ensure_tables(engine)
    r = reminders
    conds: list[ColumnElement[bool]] = []
    kinds = list(kinds or [])
    if kinds:
        conds.append(r.c.kind.in_(kinds))
    if due_from is not None:
        conds.append(r.c.due_on >= due_from.isoformat())
    if due_to is not None:
        conds.append(r.c.due_on <= due_to.isoformat())
    stmt = select(r).where(and_(true(), *conds)).order_by(r.c.due_on, r.c.kind, r.c.subject)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
        found = [
            {**{k: row[k] for k in ("kind", "subject", "due_on", "raised_on", "raised_at",
                                    "pool", "project")},
             "detail": json.loads(row["detail"]) if row["detail"] else {}}
            for row in rows
        ]
        for item in found:
            item["open"] = _still_open(conn, item, stress_log)
    if open_only:
        found = [item for item in found if item["open"]]
    return found[:limit] if limit is not None else found


def _still_open(conn: Any, item: dict[str, Any], stress_log: StressTestLog | None) -> bool:
    v = vintages
    if item["kind"] == VERIFICATION_DUE:
        stmt = select(v.c.vintage_id).where(
            v.c.vintage_id == item["subject"], v.c.verification_due == item["due_on"],
            v.c.period_ended.is_(False))
        return conn.execute(stmt).first() is not None
    if item["kind"] == RISK_REASSESSMENT_DUE:
        stmt = select(v.c.vintage_id).where(
            v.c.project == item["subject"], v.c.risk_due == item["due_on"]).limit(1)
        return conn.execute(stmt).first() is not None
    if item["kind"] == STRESS_TEST_DUE and stress_log is not None:
        last = stress_log.last_run(item["subject"])
        interval = int(item["detail"].get("interval_years", MAX_STRESS_TEST_INTERVAL_YEARS))
        return last is None or add_years(last, interval) <= date.fromisoformat(item["due_on"])
    return True
