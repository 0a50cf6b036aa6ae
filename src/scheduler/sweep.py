"""The sweep: everything time makes happen by a business date, recorded once.

A sweep is a function of the business date, not of how often it ran: each step records
what has arisen by ``as_of`` and is not yet recorded, dated the day it arose. What it
records follows from the facts' business dates (:mod:`ledger.lapses`); a fact recorded
later that changes it makes the aggregate withdraw or revise it, so the figures never
depend on when the sweep ran. ``as_of`` is never after today. Running it
twice, late, or from two processes at once records the same facts once (the aggregate
refuses a second lapse; optimistic concurrency turns a race into a reload and a skip).

Candidates come from the indexed due-date columns of ``proj_vintages``, never from loading
every aggregate; they are acted on in chunks, one transaction each, so an interrupted
sweep leaves whole chunks behind and the next sweep finishes the rest. Period ends and
reminders are read within the scope of :mod:`scheduler.watermark` (what can be new since
the last complete sweep), so a sweep with nothing due stays cheap however old the ledger.

Order matters for catch-up after downtime: lapses first (a lapse that arose before the
period end must be recorded before the period is closed), then proponent defaults (a lapse
recorded late may already be past its surrender deadline), then period ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, select

from ledger.application import LedgerApp
from projections.queries import due_for
from projections.tables import vintages
from scheduler import reminders, watermark
from scheduler.reminders import StressTestLog
from scheduler.watermark import Scope

ACTOR = "scheduler"
CHUNK_SIZE = 1_000
log = logging.getLogger("scheduler.sweep")


class Ledger(Protocol):
    """What a sweep needs: the application, the read-model engine, and a catch-up."""

    @property
    def app(self) -> LedgerApp: ...

    @property
    def engine(self) -> Engine: ...

    def refresh(self) -> int: ...


@dataclass
class SweepResult:
    """What one sweep recorded (counts only: a catch-up may record many thousands)."""

    as_of: date
    lapses_recorded: int = 0
    periods_ended: int = 0
    defaults_recorded: int = 0
    reminders_raised: int = 0
    candidates: dict[str, int] = field(default_factory=dict)
    scan: str = "full"
    complete: bool = True
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["duration_ms"] = round(self.duration_ms, 3)
        return data


@dataclass
class _Run:
    """One sweep in progress."""

    ledger: Ledger
    as_of: date
    scope: Scope
    chunk_size: int
    should_stop: Callable[[], bool]
    result: SweepResult

    def chunks(self, ids: Sequence[str]) -> list[Sequence[str]]:
        return [ids[i:i + self.chunk_size] for i in range(0, len(ids), self.chunk_size)]


def sweep(
    ledger: Ledger,
    as_of: date,
    *,
    chunk_size: int = CHUNK_SIZE,
    reminder_days: int = reminders.DEFAULT_HORIZON_DAYS,
    stress_log: StressTestLog | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Record every lapse, default and period end arisen by ``as_of``, and raise reminders."""
    started = time.perf_counter()
    result = SweepResult(as_of)
    ledger.refresh()
    scope = watermark.scope_for(ledger.engine, ledger.app, as_of)
    result.scan = "full" if scope.full else "since-mark"
    run = _Run(ledger, as_of, scope, chunk_size, should_stop, result)
    with ledger.app.acting_as(ACTOR):
        for step in STEPS:
            before = result.lapses_recorded + result.defaults_recorded + result.periods_ended
            if not step(run):
                result.complete = False
                break
            if result.lapses_recorded + result.defaults_recorded + result.periods_ended > before:
                ledger.refresh()  # the next step reads what this one recorded
    if result.complete and not should_stop():
        result.reminders_raised = reminders.raise_due(
            ledger.engine, ledger.app.catalog, as_of, reminder_days, stress_log, scope
        )
        watermark.save(ledger.engine, scope, as_of, as_of + timedelta(days=reminder_days))
    else:
        result.complete = False
    result.duration_ms = (time.perf_counter() - started) * 1000
    log.debug("sweep", extra={"fields": result.to_dict()})
    return result


def _not_ended() -> Any:
    return vintages.c.period_ended.is_(False)


def _lapses(run: _Run) -> bool:
    """Lapse candidates leave the index once recorded (``lapse_arises_on`` becomes NULL)."""
    ids = sorted(due_for(run.ledger.engine, "lapse_arises_on", run.as_of, _not_ended()))
    run.result.candidates["lapses"] = len(ids)
    for chunk in run.chunks(ids):
        if run.should_stop():
            return False
        run.result.lapses_recorded += len(run.ledger.app.record_lapses(chunk, run.as_of))
    return True


def _defaults(run: _Run) -> bool:
    """Default candidates leave the index once defaulted or settled (``next_default_on``)."""
    ids = sorted(due_for(run.ledger.engine, "next_default_on", run.as_of))
    run.result.candidates["defaults"] = len(ids)
    for chunk in run.chunks(ids):
        if run.should_stop():
            return False
        run.result.defaults_recorded += len(run.ledger.app.record_defaults(chunk, run.as_of))
    return True


def _periods(run: _Run) -> bool:
    ids = period_candidates(run.ledger.engine, run.as_of, run.scope)
    run.result.candidates["periods"] = len(ids)
    for chunk in run.chunks(ids):
        if run.should_stop():
            return False
        run.result.periods_ended += len(run.ledger.app.end_periods(chunk, run.as_of))
    return True


def period_candidates(engine: Engine, as_of: date, scope: Scope) -> list[str]:
    """Vintages whose period has ended by ``as_of`` and is not recorded, within ``scope``."""
    v = vintages
    due = [v.c.period_end <= as_of.isoformat(), _not_ended()]
    if scope.mark is None:
        return sorted(due_for(engine, "period_end", as_of, _not_ended()))
    statements = [select(v.c.vintage_id).where(v.c.period_end > scope.mark.as_of.isoformat(), *due)]
    statements += [select(v.c.vintage_id).where(and_(v.c.vintage_id.in_(c), *due))
                   for c in watermark.chunks(scope.changed)]
    found: set[str] = set()
    with engine.connect() as conn:
        for stmt in statements:
            found.update(r[0] for r in conn.execute(stmt))
    return sorted(found)


Step = Callable[[_Run], bool]
#: In this order (see the module docstring).
STEPS: tuple[Step, ...] = (_lapses, _defaults, _periods)
