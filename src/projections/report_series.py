"""Read-model series the trustee report draws: each pool's buffer at the dates it changed,
and the labelled (sandbox) credits.

The buffer series folds the same rule as :func:`projections.queries.buffer` (a draw
larger than the balance cancels what is there; the rest stays owed as the shortfall) over
the cumulative sums at each business date a pool's figures changed, so the report steps
on the day a compensation is dated, never on a sampled 1 January, and its last point is
the headline figure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select

from projections.queries import known_at_text
from projections.tables import deltas, vintages

_MEASURES = ("contributions", "cancelled", "on_hold", "due")


@dataclass(frozen=True)
class BufferStep:
    """A pool's buffer from ``day`` until its next step."""

    day: date
    contributions: int
    drawn: int
    on_hold: int
    due: int

    @property
    def cancelled(self) -> int:
        return min(self.drawn, max(0, self.contributions - self.on_hold))

    @property
    def shortfall(self) -> int:
        """Draws the balance could not cover: still owed by the pool."""
        return self.drawn - self.cancelled

    @property
    def balance(self) -> int:
        return max(0, self.contributions - self.on_hold - self.cancelled)

    @property
    def owed(self) -> int:
        """Everything the pool owes: its due reversals and its shortfall."""
        return self.due + self.shortfall

    @property
    def uncovered(self) -> int:
        """What the pool owes beyond what it holds (zero when the balance covers it)."""
        return max(0, self.owed - self.balance)


def buffer_steps(
    engine: Engine, as_of: date, known_at: datetime | None = None
) -> dict[str, list[BufferStep]]:
    """Per pool, one step at each business date (up to ``as_of``) its buffer or dues changed."""
    t = as_of.isoformat()
    kt = known_at_text(known_at)
    changes: dict[str, dict[str, dict[str, int]]] = {}

    def add(pool: str, day: str, measure: str, amount: int) -> None:
        row = changes.setdefault(pool, {}).setdefault(day, dict.fromkeys(_MEASURES, 0))
        row[measure] += amount

    v, d = vintages, deltas
    issued = [v.c.issued_on <= t, v.c.buffer > 0]
    if kt is not None:
        issued.append(v.c.issued_recorded_at <= kt)
    later = [d.c.measure.in_(_MEASURES), d.c.day <= t]
    if kt is not None:
        later.append(d.c.recorded_at <= kt)
    with engine.connect() as conn:
        stmt = (select(v.c.pool, v.c.issued_on, func.sum(v.c.buffer))
                .where(and_(*issued)).group_by(v.c.pool, v.c.issued_on))
        for pool, day, amount in conn.execute(stmt):
            add(pool, day, "contributions", int(amount))
        stmt = (select(d.c.measure, d.c.key, d.c.pool, d.c.day, func.sum(d.c.amount))
                .where(and_(*later)).group_by(d.c.measure, d.c.key, d.c.pool, d.c.day))
        for measure, key, pool, day, amount in conn.execute(stmt):
            if measure == "due":
                if key == "pool":
                    add(pool, day, "due", int(amount))
            else:  # buffer measures are keyed by the pool they move
                add(key, day, measure, int(amount))
    out: dict[str, list[BufferStep]] = {}
    for pool, days in sorted(changes.items()):
        running = dict.fromkeys(_MEASURES, 0)
        steps: list[BufferStep] = []
        for day in sorted(days):
            for m in _MEASURES:
                running[m] += days[day][m]
            step = BufferStep(date.fromisoformat(day), running["contributions"],
                              running["cancelled"], running["on_hold"], running["due"])
            if steps and _same(steps[-1], step):
                continue
            steps.append(step)
        out[pool] = steps
    return out


def _same(a: BufferStep, b: BufferStep) -> bool:
    return (a.balance, a.owed, a.shortfall) == (b.balance, b.owed, b.shortfall)


@dataclass(frozen=True)
class LabelledCredits:
    """One vintage's credits that carry a disclosed label (CIWP recommendation 6)."""

    label: str
    innovation: str
    vintage_id: str
    program: str
    pool: str
    project: str
    vintage_year: int
    issued_on: str
    quantity: int


def labelled_credits(
    engine: Engine, as_of: date, known_at: datetime | None = None
) -> list[LabelledCredits]:
    """Every label on a vintage issued by ``as_of`` (and recorded by ``known_at``)."""
    v = vintages
    conds = [v.c.labels.is_not(None), v.c.issued_on <= as_of.isoformat()]
    kt = known_at_text(known_at)
    if kt is not None:
        conds.append(v.c.issued_recorded_at <= kt)
    stmt = (select(v.c.vintage_id, v.c.program, v.c.pool, v.c.project, v.c.vintage_year,
                   v.c.issued_on, v.c.quantity, v.c.labels)
            .where(and_(*conds)).order_by(v.c.project, v.c.issued_on, v.c.vintage_id))
    out: list[LabelledCredits] = []
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            for item in _labels(row.labels):
                out.append(LabelledCredits(
                    str(item.get("label", "")), str(item.get("innovation", "")),
                    row.vintage_id, row.program, row.pool, row.project,
                    int(row.vintage_year), row.issued_on, int(row.quantity)))
    return out


def _labels(text: str | None) -> list[Mapping[str, Any]]:
    if not text:
        return []
    found = json.loads(text)
    return [item for item in found if isinstance(item, Mapping)] if isinstance(found, list) else []
