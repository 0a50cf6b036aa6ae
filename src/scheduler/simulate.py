"""The trustee's what-if: play scheduler time forward on a copy of the ledger.

The copy is always a temporary SQLite file, so the real ledger is never written to:

- from SQLite, the file is copied with SQLite's online backup API (a consistent snapshot
  even while a daemon writes; read models come along, already caught up);
- from PostgreSQL, the stored events are replayed, as stored, into the temporary file
  (same ids, versions, topics and payloads, so record times survive) and its read models
  are built from them. This needs no rights to create schemas and works the same against
  any PostgreSQL the ledger runs on.

Each step sweeps the copy for that business date and reports what arose: lapses,
defaults, period ends, due liability by obligor (and its change since the previous step),
exposure, buffer balance and coverage.
"""

from __future__ import annotations

import calendar
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from ledger.application import LedgerApp
from ledger.calendar import add_days, add_years
from ledger.obligors import OBLIGORS
from projections.queries import buffer, liabilities
from projections.tables import rollup
from scheduler.leader import StoreInfo
from scheduler.sweep import Ledger, sweep

_STEP = re.compile(r"^\s*(\d+)\s*([ymwd])\s*$", re.IGNORECASE)
MAX_STEPS = 10_000
REPLAY_PAGE = 10_000


@dataclass(frozen=True)
class Step:
    """A calendar step: N years, months, weeks or days."""

    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Step:
        m = _STEP.match(text)
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"step: {text!r} is not a step such as 1y, 6m, 2w or 30d")
        return cls(int(m.group(1)), m.group(2).lower())

    def after(self, day: date, times: int = 1) -> date:
        n = self.count * times
        if self.unit == "y":
            return add_years(day, n)
        if self.unit == "m":
            return add_months(day, n)
        return add_days(day, n * (7 if self.unit == "w" else 1))


def add_months(day: date, months: int) -> date:
    """Calendar month addition; the day falls back to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def schedule(start: date, end: date, step: Step) -> list[date]:
    """start, start + step, ... up to ``end``; ``end`` itself is always the last date."""
    if end < start:
        raise ValueError(f"to: {end} is before from: {start}")
    days = []
    i = 0
    while True:
        day = step.after(start, i)
        if day >= end:
            break
        days.append(day)
        i += 1
        if len(days) > MAX_STEPS:
            raise ValueError(f"step: more than {MAX_STEPS} steps between {start} and {end}")
    days.append(end)
    return days


# ---------------------------------------------------------------------- copying


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent snapshot of an SQLite ledger (events and read models) into ``target``."""
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def replay_events(source: LedgerApp, target: LedgerApp, page: int = REPLAY_PAGE) -> int:
    """Copy every stored event, as stored, from one ledger into an empty one."""
    copied = 0
    start = 1
    while True:
        notifications = source.recorder.select_notifications(start=start, limit=page)
        if not notifications:
            return copied
        target.recorder.insert_events(list(notifications))
        copied += len(notifications)
        start = notifications[-1].id + 1


@contextmanager
def ledger_copy(
    source: Ledger,
    store: StoreInfo,
    open_ledger: Callable[[str], AbstractContextManager[Ledger]],
) -> Iterator[Ledger]:
    """A throwaway SQLite copy of ``source``, opened with ``open_ledger(path)``."""
    with tempfile.TemporaryDirectory(prefix="permanence-sim-") as tmp:
        path = Path(tmp) / "what-if.db"
        if store.kind == "sqlite" and store.sqlite_path is not None:
            copy_sqlite(store.sqlite_path, path)
            with open_ledger(str(path)) as copy:
                yield copy
        else:
            with open_ledger(str(path)) as copy:
                replay_events(source.app, copy.app)
                copy.refresh()
                yield copy


# ---------------------------------------------------------------------- playing


def arisen(engine: Engine, after: date, through: date) -> dict[str, int]:
    """Due liability that arose by obligor on days in (after, through]: lapses and reversals
    for their obligor, and a proponent's default for the pool it moves to."""
    stmt = (
        select(rollup.c.key, func.sum(rollup.c.amount))
        .where(rollup.c.measure == "due", rollup.c.day > after.isoformat(),
               rollup.c.day <= through.isoformat(), rollup.c.amount > 0)
        .group_by(rollup.c.key)
    )
    with engine.connect() as conn:
        found = {k: int(a) for k, a in conn.execute(stmt)}
    return {k: found.get(k, 0) for k in (*OBLIGORS, *sorted(found.keys() - set(OBLIGORS)))}


def _fixed(day: date) -> Callable[[], date]:
    return lambda: day


def play(
    ledger: Ledger, days: list[date], step: Step, reminder_days: int = 90
) -> list[dict[str, Any]]:
    """Sweep ``ledger`` on each business date in turn; one row of figures per date.

    ``arose`` covers the step ending on the row's date (the first row: one step before it).
    """
    ledger.refresh()
    previous = liabilities(ledger.engine, days[0])["due"] if days else {}
    rows = []
    for i, day in enumerate(days):
        since = days[i - 1] if i else step.after(day, -1)
        ledger.app.today = _fixed(day)  # the copy's clock moves with the play
        result = sweep(ledger, day, reminder_days=reminder_days)
        owed = liabilities(ledger.engine, day)
        pool = buffer(ledger.engine, day)
        due = dict(owed["due"])
        rows.append({
            "as_of": day.isoformat(),
            "lapses_recorded": result.lapses_recorded,
            "defaults_recorded": result.defaults_recorded,
            "periods_ended": result.periods_ended,
            "reminders_raised": result.reminders_raised,
            "due": due,
            "arose": arisen(ledger.engine, since, day),
            "due_change": {k: due.get(k, 0) - previous.get(k, 0) for k in sorted(due.keys() | previous.keys())},
            "exposure": owed["exposure"],
            "buffer_balance": pool["balance"],
            "coverage_ratio": pool["coverage_ratio"],
            "pools": {p["pool"]: {"balance": p["balance"], "exposure": p["exposure"],
                                  "coverage_ratio": p["coverage_ratio"]} for p in pool["pools"]},
        })
        previous = due
    return rows


def what_if(
    source: Ledger,
    store: StoreInfo,
    open_ledger: Callable[[str], AbstractContextManager[Ledger]],
    start: date,
    end: date,
    step: str | Step = "1y",
    reminder_days: int = 90,
) -> list[dict[str, Any]]:
    """Play scheduler time from ``start`` to ``end`` on a copy; the real ledger is untouched."""
    parsed = step if isinstance(step, Step) else Step.parse(step)
    days = schedule(start, end, parsed)
    with ledger_copy(source, store, open_ledger) as copy:
        return play(copy, days, parsed, reminder_days)
