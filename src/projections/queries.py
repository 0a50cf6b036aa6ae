"""Trustee queries over the read models: liabilities, buffer, run-off, as of any date.

Two paths give the same numbers. Without ``known_at`` or a project filter, figures come
from the roll-ups (whole years from ``proj_rollup_year``, then the days of the as-of year
from ``proj_rollup``: a few thousand rows whatever the ledger's size).
Otherwise they come from each vintage's issuance baseline plus its recorded deltas,
restricted to what had been recorded by ``known_at``. Neither replays an aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Engine, and_, case, func, literal, select, text
from sqlalchemy.sql import ColumnElement

from ledger.obligors import OBLIGORS
from projections.tables import deltas, record_time_text, rollup, rollup_year, vintages

GroupBy = Literal["program", "project", "pool", "vintage-year", "bearer"]
GROUP_BY_CHOICES: tuple[str, ...] = ("program", "project", "pool", "vintage-year", "bearer")
LIABILITY_MEASURES = ("exposure", "transferred", "due")
BUFFER_MEASURES = ("contributions", "cancelled", "on_hold")


@dataclass(frozen=True)
class Filters:
    """Which vintages a question is about."""

    program: str | None = None
    project: str | None = None
    pool: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


def known_at_text(known_at: datetime | None) -> str | None:
    """Record times are compared as fixed-width UTC text (see ``projections.tables``)."""
    return None if known_at is None else record_time_text(known_at)


def _sums(
    engine: Engine,
    measures: tuple[str, ...],
    as_of: date,
    filters: Filters,
    known_at: datetime | None,
    group: str | None,
) -> dict[tuple[str, str, Any], int]:
    """Sum (measure, key, group) over deltas dated on or before ``as_of``."""
    t = as_of.isoformat()
    detail = known_at is not None or filters.project is not None or group in ("project", "vintage-year")
    out: dict[tuple[str, str, Any], int] = {}
    if not detail:
        # whole years before the as-of year, then the days of that year up to the date
        year_start = f"{as_of.year:04d}-01-01"
        parts = []
        for table, period_cond in (
            (rollup_year, rollup_year.c.year < as_of.year),
            (rollup, and_(rollup.c.day >= year_start, rollup.c.day <= t)),
        ):
            gcol = _group_column(table, group)
            conds = [table.c.measure.in_(measures), period_cond, *_filter_conds(table, filters)]
            parts.append(
                select(table.c.measure, table.c.key, gcol, func.sum(table.c.amount))
                .where(and_(*conds))
                .group_by(table.c.measure, table.c.key, gcol)
            )
        with engine.connect() as conn:
            for stmt in parts:
                for m, k, g, amount in conn.execute(stmt):
                    out[(m, k, g)] = out.get((m, k, g), 0) + int(amount)
        return out
    kt = known_at_text(known_at)
    with engine.connect() as conn:
        gcol = _group_column(deltas, group)
        conds = [deltas.c.measure.in_(measures), deltas.c.day <= t, *_filter_conds(deltas, filters)]
        if kt is not None:
            conds.append(deltas.c.recorded_at <= kt)
        stmt = (
            select(deltas.c.measure, deltas.c.key, gcol, func.sum(deltas.c.amount))
            .where(and_(*conds))
            .group_by(deltas.c.measure, deltas.c.key, gcol)
        )
        for m, k, g, amount in conn.execute(stmt):
            out[(m, k, g)] = out.get((m, k, g), 0) + int(amount)
        for m, k, g, amount in _baseline(conn, measures, t, filters, kt, group):
            out[(m, k, g)] = out.get((m, k, g), 0) + int(amount)
    return out


def _baseline(
    conn: Any, measures: tuple[str, ...], t: str, filters: Filters, kt: str | None, group: str | None
) -> list[tuple[str, str, Any, int]]:
    """Issuance baselines: exposure over [exposure_start, period_end), contribution from issuance."""
    v = vintages
    base = list(_filter_conds(v, filters))
    if kt is not None:
        base.append(v.c.issued_recorded_at <= kt)
    gcol = _group_column(v, group, bearer=v.c.pool)
    rows: list[tuple[str, str, Any, int]] = []
    if "exposure" in measures:
        stmt = (
            select(v.c.pool, gcol, func.sum(v.c.quantity))
            .where(and_(v.c.exposure_start <= t, v.c.period_end > t, *base))
            .group_by(v.c.pool, gcol)
        )
        rows += [("exposure", p, g, a) for p, g, a in conn.execute(stmt)]
    if "contributions" in measures:
        stmt = (
            select(v.c.pool, gcol, func.sum(v.c.buffer))
            .where(and_(v.c.issued_on <= t, v.c.buffer > 0, *base))
            .group_by(v.c.pool, gcol)
        )
        rows += [("contributions", p, g, a) for p, g, a in conn.execute(stmt)]
    return rows


def _group_column(table: Any, group: str | None, bearer: Any = None) -> ColumnElement[Any]:
    if group is None:
        return literal(None).label("g")
    if group == "bearer":
        return (bearer if bearer is not None else table.c.key).label("g")
    column = {"vintage-year": "vintage_year"}.get(group, group)
    return table.c[column].label("g")


def _filter_conds(table: Any, filters: Filters) -> list[ColumnElement[bool]]:
    conds = []
    for name in ("program", "project", "pool"):
        value = getattr(filters, name)
        if value is not None and name in table.c:
            conds.append(table.c[name] == value)
    return conds


def liabilities(
    engine: Engine,
    as_of: date,
    filters: Filters = Filters(),
    known_at: datetime | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Exposure, transferred exposure and due liability by obligor, as of a date.

    ``due.pool`` includes each pool's shortfall (buffer draws its balance could not
    cover) when the question is about whole pools: no program or project filter.
    """
    sums = _sums(engine, LIABILITY_MEASURES, as_of, filters, known_at, by)
    shortfalls = {
        name: row["shortfall"]
        for name, row in _pool_rows(engine, as_of, filters.pool, known_at).items()
        if row["shortfall"]
    }
    whole_pools = filters.program is None and filters.project is None
    groups: dict[Any, dict[str, Any]] = {}
    total = _empty_figures()
    for (measure, key, group), amount in sums.items():
        _add(total, measure, key, amount)
        if by is not None:
            _add(groups.setdefault(group, _empty_figures()), measure, key, amount)
    if whole_pools:
        total["due"]["pool"] += sum(shortfalls.values())
        if by == "pool":
            for name, amount in shortfalls.items():
                groups.setdefault(name, _empty_figures())["due"]["pool"] += amount
    result: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "known_at": known_at.isoformat() if known_at else None,
        "filters": filters.as_dict(),
        **_finish(total),
        "shortfall": sum(shortfalls.values()),
        "shortfall_by_pool": shortfalls,
        "non_reversible_issued": _non_reversible(engine, as_of, filters, known_at),
    }
    if by is not None:
        result["by"] = by
        result["groups"] = {
            str(g): _finish(groups[g]) for g in sorted(groups, key=lambda g: (g is None, str(g)))
        }
    return result


def _empty_figures() -> dict[str, Any]:
    return {"exposure": 0, "transferred": {}, "due": dict.fromkeys(OBLIGORS, 0)}


def _add(figures: dict[str, Any], measure: str, key: str, amount: int) -> None:
    if measure == "exposure":
        figures["exposure"] += amount
    elif measure == "transferred":
        figures["transferred"][key] = figures["transferred"].get(key, 0) + amount
    elif measure == "due":
        figures["due"][key] = figures["due"].get(key, 0) + amount


def _finish(figures: dict[str, Any]) -> dict[str, Any]:
    transferred = {k: a for k, a in sorted(figures["transferred"].items()) if a}
    return {
        "exposure": figures["exposure"],
        "transferred": transferred,
        "due": figures["due"],
        "due_total": sum(figures["due"].values()),
    }


def _non_reversible(
    engine: Engine, as_of: date, filters: Filters, known_at: datetime | None
) -> int:
    """Credits issued by ``as_of`` of project types that cannot reverse: counted as
    issued, carrying no exposure."""
    v = vintages
    # written as the partial index's own condition, so both stores use that index
    conds: list[Any] = [text("NOT reversible"), v.c.issued_on <= as_of.isoformat(),
                        *_filter_conds(v, filters)]
    kt = known_at_text(known_at)
    if kt is not None:
        conds.append(v.c.issued_recorded_at <= kt)
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(v.c.quantity)).where(and_(*conds))).scalar() or 0)


def buffer(
    engine: Engine, as_of: date, pool: str | None = None, known_at: datetime | None = None
) -> dict[str, Any]:
    """Buffer balance and coverage per pool.

    A pool's balance is its contributions less credits on hold and less the draws made to
    compensate reversals; it never goes below zero: a draw larger than the balance cancels
    what is there, and the rest stays owed by the pool as its ``shortfall`` (met from
    later contributions as they arrive). ``owed`` is what the pool owes in all (its due
    reversals and its shortfall); the coverage ratio is (balance - owed) / the exposure
    the pool bears.
    """
    rows = [_buffer_row(name, f) for name, f in sorted(_pool_rows(engine, as_of, pool, known_at).items())]
    keys = ("contributions", "drawn", "on_hold", "exposure", "due", "cancelled", "shortfall")
    totals = {m: sum(r[m] for r in rows) for m in keys}
    head = _buffer_row(pool or "all", totals)
    head["balance"] = sum(r["balance"] for r in rows)  # each pool's is at least zero
    head["coverage_ratio"] = _ratio(head["balance"] - head["owed"], totals["exposure"])
    return {"as_of": as_of.isoformat(), "known_at": known_at.isoformat() if known_at else None,
            **head, "pools": rows}


def _pool_rows(
    engine: Engine, as_of: date, pool: str | None, known_at: datetime | None
) -> dict[str, dict[str, int]]:
    """Per pool: contributions, draws, holds, exposure borne, due by the pool; and from
    them the credits actually cancelled and the shortfall."""
    sums = _sums(engine, BUFFER_MEASURES + ("exposure", "due"), as_of, Filters(pool=pool),
                 known_at, "pool")
    pools: dict[str, dict[str, int]] = {}
    for (measure, key, group), amount in sums.items():
        if measure == "due" and key != "pool":
            continue
        name = group if measure == "due" else key
        row = pools.setdefault(name, dict.fromkeys(
            ("contributions", "drawn", "on_hold", "exposure", "due"), 0))
        row["drawn" if measure == "cancelled" else measure] += amount
    for row in pools.values():
        available = max(0, row["contributions"] - row["on_hold"])
        row["cancelled"] = min(row["drawn"], available)
        row["shortfall"] = row["drawn"] - row["cancelled"]
    return pools


def _buffer_row(name: str, f: dict[str, int]) -> dict[str, Any]:
    contributions, on_hold, exposure = f["contributions"], f["on_hold"], f["exposure"]
    cancelled, shortfall = f["cancelled"], f["shortfall"]
    balance = max(0, contributions - on_hold - cancelled)
    owed = f["due"] + shortfall
    return {
        "pool": name,
        "contributions": contributions,
        "drawn": f["drawn"],
        "cancelled": cancelled,
        "on_hold": on_hold,
        "balance": balance,
        "shortfall": shortfall,
        "due": f["due"],
        "owed": owed,
        "exposure": exposure,
        "coverage_ratio": _ratio(balance - owed, exposure),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


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
                .where(v.c.period_end > t, *issued, *mine).group_by(year, v.c.pool))
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
            .where(term_visible, v.c.period_end > t, *mine)
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


def vintage_ids_of_project(engine: Engine, project: str) -> list[str]:
    with engine.connect() as conn:
        stmt = select(vintages.c.vintage_id).where(vintages.c.project == project)
        return [r[0] for r in conn.execute(stmt)]


def due_for(engine: Engine, column: str, as_of: date, extra: Any = None) -> list[str]:
    """Vintage ids whose indexed due date ``column`` falls on or before ``as_of``."""
    col = vintages.c[column]
    conds = [col.is_not(None), col <= as_of.isoformat()]
    if extra is not None:
        conds.append(extra)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(vintages.c.vintage_id).where(and_(*conds)))]


def pools(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(vintages.c.pool).distinct().order_by(vintages.c.pool))]


def programs(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0] for r in conn.execute(select(vintages.c.program).distinct().order_by(vintages.c.program))
        ]


class ReadModelIndex:
    """The ledger's :class:`~ledger.application.VintageIndex`, answered by the read model."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def vintage_ids_of_project(self, project: str) -> list[str]:
        return vintage_ids_of_project(self.engine, project)

    def vintage_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        from projections.listings import vintage_ids_with_prefix

        return vintage_ids_with_prefix(self.engine, prefix, limit)
