"""The run-off ladder: exposure that leaves each bearer in each future year (domain.md
section 4), from the facts dated by the as-of date and recorded by the known-at time."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, literal, select
from sqlalchemy.sql import ColumnElement

from projections.queries import known_at_text
from projections.tables import deltas, vintages


def runoff(
    engine: Engine,
    as_of: date,
    pool: str | None = None,
    known_at: datetime | None = None,
) -> dict[str, Any]:
    """Exposure that leaves each bearer in each future year, from the facts dated by
    ``as_of`` and recorded by ``known_at``: the ladder of period ends, and of fund terms.

    With no fact dated after ``as_of``, nothing but the clock changes the exposure after
    it: each vintage's exposure at ``as_of`` leaves its bearer at the period end, or at the
    end of a permanence fund's term. A year's ``exposure_ending`` is what leaves the books;
    ``by_bearer`` also shows moves between bearers (a fund taking a vintage on at its
    period end shows as a negative amount, exposure arriving, in that year).
    """
    v, d = vintages, deltas
    t = as_of.isoformat()
    kt = known_at_text(known_at)
    ladder: dict[tuple[int, str], int] = {}

    def add(day: str, bearer: str, amount: int) -> None:
        key = (int(day[:4]), bearer)
        ladder[key] = ladder.get(key, 0) + amount

    ends_later = _unindexed(v.c.period_end) > t  # most vintages: a scan beats the index
    term_visible = and_(v.c.term_end.is_not(None), v.c.transfer_on <= t,
                        *([v.c.transfer_recorded_at <= kt] if kt is not None else []))
    issued = [v.c.exposure_start <= t, v.c.reversible.is_(True)]
    if kt is not None:
        issued.append(v.c.issued_recorded_at <= kt)
    mine = [v.c.pool == pool] if pool is not None else []
    changes = [d.c.measure.in_(("exposure", "transferred")), d.c.day <= t,
               *([d.c.recorded_at <= kt] if kt is not None else []),
               *([d.c.pool == pool] if pool is not None else [])]
    with engine.connect() as conn:
        # issuance baselines: Q leaves the pool at the period end
        year = func.substr(v.c.period_end, 1, 4)
        stmt = (select(year, v.c.pool, func.sum(v.c.quantity))
                .where(ends_later, *issued, *mine).group_by(year, v.c.pool))
        for y, bearer, amount in conn.execute(stmt):
            add(y, bearer, int(amount))
        # later changes, each leaving with its vintage: at the period end, or a fund's term end
        visible = case((term_visible, v.c.term_end), else_=None).label("term")
        stmt = (
            select(d.c.measure, d.c.key, v.c.period_end, visible, func.sum(d.c.amount))
            .select_from(d.join(v, v.c.vintage_id == d.c.vintage_id))
            .where(*changes)
            .group_by(d.c.measure, d.c.key, v.c.period_end, visible)
        )
        for measure, key, end, term, amount in conn.execute(stmt):
            leaves = term if measure == "transferred" and term else end
            if leaves > t:
                add(leaves, key, int(amount))
        # a fund's term ahead: the pool's exposure moves to the fund at the period end
        base = case((and_(*issued), v.c.quantity), else_=0)
        stmt = (
            select(v.c.vintage_id, v.c.period_end, v.c.term_end, v.c.transfer_to, base)
            .where(term_visible, ends_later, *mine)
        )
        for vid, end, term_end, fund, quantity in conn.execute(stmt).all():
            later = select(func.sum(d.c.amount)).where(
                d.c.vintage_id == vid, d.c.measure == "exposure", *changes)
            moved = int(quantity) + int(conn.execute(later).scalar() or 0)
            add(end, fund, -moved)
            add(term_end, fund, moved)
    years: dict[int, dict[str, int]] = {}
    for (y, bearer), amount in sorted(ladder.items()):
        if amount:
            years.setdefault(y, {})[bearer] = amount
    rows = [{"year": y, "exposure_ending": sum(b.values()), "by_bearer": b}
            for y, b in sorted(years.items())]
    return {
        "as_of": t,
        "known_at": known_at.isoformat() if known_at else None,
        "pool": pool,
        "years": rows,
        "total": sum(r["exposure_ending"] for r in rows),
    }


def _unindexed(column: Any) -> ColumnElement[Any]:
    """``column`` as an expression no index matches (``column || ''``, the same text on
    both stores): for conditions most rows meet, where walking an index and fetching each
    row costs several times a plain scan of the table."""
    return column.op("||")(literal(""))
