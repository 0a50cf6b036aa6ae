"""How far the last complete sweep got, so that the next one looks only at what can be new.

Lapse and default candidates clean themselves up (their due-date columns become NULL once
recorded), but period ends and reminders are read from due dates that stay put: a daily
sweep over a decades-old registry would otherwise re-read every vintage whose period has
ended and every long-overdue reassessment, every day. The mark records, after each
complete sweep, the read-model position it started from, its business date and its
reminder horizon. The next sweep then looks at due dates that have come into range since
(the window from the mark to now) plus the vintages whose due dates events may have moved
since the mark (an issuance, possibly back-dated; a verification; a risk assessment; a
cure). That is exactly what a full scan would find new, because nothing else can make a
vintage newly due.

A full scan happens when there is no mark, when the business date goes backwards, or
when too many events arrived since (a bulk import): correctness never rests on the mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.utils import get_topic
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from ledger.application import LedgerApp
from ledger.events import Issued, LapseCured, RiskAssessed, Verified
from projections.projector import NAME as PROJECTION
from projections.tables import tracking
from scheduler.tables import ensure_tables, state

MARK = "sweep"
#: Events that can make a vintage newly due (period end, verification, risk reassessment).
MOVES_DUE_DATES: tuple[type, ...] = (Issued, Verified, RiskAssessed, LapseCured)
#: Above this many such events since the mark, a full scan is cheaper than the lookups.
FULL_SCAN_ABOVE = 50_000
PAGE = 10_000

@dataclass(frozen=True)
class Mark:
    """The last complete sweep: the position it started from, its date and horizon."""

    position: int
    as_of: date
    horizon: date


@dataclass(frozen=True)
class Scope:
    """What a sweep must look at: everything, or the window since ``mark`` plus ``changed``."""

    position: int
    mark: Mark | None = None
    changed: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        return self.mark is None


def projected_position(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(tracking.c.position).where(tracking.c.name == PROJECTION)).scalar()
    return int(value or 0)


def load(engine: Engine) -> Mark | None:
    ensure_tables(engine)
    with engine.connect() as conn:
        row = conn.execute(select(state).where(state.c.name == MARK)).first()
    if row is None:
        return None
    return Mark(int(row.position), date.fromisoformat(row.as_of), date.fromisoformat(row.horizon))


def scope_for(engine: Engine, app: LedgerApp, as_of: date) -> Scope:
    """The scope of a sweep for ``as_of`` (call after the read models caught up)."""
    position = projected_position(engine)
    mark = load(engine)
    if mark is None or as_of < mark.as_of or position < mark.position:
        return Scope(position)
    changed = _moved_since(app, mark.position, position)
    if changed is None:
        return Scope(position)
    return Scope(position, mark, tuple(sorted(changed)))


def _moved_since(app: LedgerApp, after: int, through: int) -> set[str] | None:
    """Vintages with due-date-moving events in (after, through]; None when too many."""
    if through <= after:
        return set()
    topics = [get_topic(cls) for cls in MOVES_DUE_DATES]
    found: set[str] = set()
    seen = 0
    start = after + 1
    while start <= through:
        page = app.recorder.select_notifications(start=start, limit=PAGE, stop=through, topics=topics)
        if not page:
            break
        seen += len(page)
        if seen > FULL_SCAN_ABOVE:
            return None
        found.update(str(n.originator_id) for n in page)
        start = page[-1].id + 1
    return found


def save(engine: Engine, scope: Scope, as_of: date, horizon: date) -> None:
    """Record a complete sweep (only ever called after one)."""
    if scope.mark == Mark(scope.position, as_of, horizon):
        return  # nothing moved: no write, no write lock
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    values: dict[str, Any] = {"name": MARK, "position": scope.position,
                              "as_of": as_of.isoformat(), "horizon": horizon.isoformat()}
    stmt = insert(state).values(values)
    stmt = stmt.on_conflict_do_update(index_elements=[state.c.name], set_=values)
    with engine.begin() as conn:
        conn.execute(stmt)


def chunks(ids: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
