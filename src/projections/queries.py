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

from sqlalchemy import Engine, and_, func, literal, select
from sqlalchemy.sql import ColumnElement

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
    """Exposure, transferred exposure and due liability by obligor, as of a date."""
    sums = _sums(engine, LIABILITY_MEASURES, as_of, filters, known_at, by)
    total = _figures(sums, lambda g: True)
    result: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "known_at": known_at.isoformat() if known_at else None,
        "filters": filters.as_dict(),
        **total,
    }
    if by is not None:
        names = sorted({g for (_, _, g) in sums}, key=lambda g: (g is None, str(g)))
        result["by"] = by
        result["groups"] = {
            str(g): _figures(sums, lambda x, g=g: x == g)  # type: ignore[misc]
            for g in names
        }
    return result


def _figures(sums: dict[tuple[str, str, Any], int], pick: Any) -> dict[str, Any]:
    exposure = sum(a for (m, _, g), a in sums.items() if m == "exposure" and pick(g))
    transferred: dict[str, int] = {}
    due = {"proponent": 0, "pool": 0}
    for (m, k, g), a in sums.items():
        if not pick(g):
            continue
        if m == "transferred" and a:
            transferred[k] = transferred.get(k, 0) + a
        elif m == "due":
            due[k] = due.get(k, 0) + a
    return {
        "exposure": exposure,
        "transferred": transferred,
        "due": due,
        "due_total": sum(due.values()),
    }


def buffer(
    engine: Engine, as_of: date, pool: str | None = None, known_at: datetime | None = None
) -> dict[str, Any]:
    """Buffer balance and coverage per pool: contributions - cancelled - on hold."""
    filters = Filters(pool=pool)
    sums = _sums(engine, BUFFER_MEASURES + ("exposure",), as_of, filters, known_at, None)
    pools: dict[str, dict[str, int]] = {}
    for (m, k, _), a in sums.items():
        pools.setdefault(k, {"contributions": 0, "cancelled": 0, "on_hold": 0, "exposure": 0})[m] = (
            pools.get(k, {}).get(m, 0) + a
        )
    rows = [_buffer_row(name, figures) for name, figures in sorted(pools.items())]
    totals = _buffer_row(pool or "all", {
        m: sum(r[m] for r in rows) for m in ("contributions", "cancelled", "on_hold", "exposure")
    })
    return {"as_of": as_of.isoformat(), **totals, "pools": rows}


def _buffer_row(name: str, f: dict[str, int]) -> dict[str, Any]:
    balance = f.get("contributions", 0) - f.get("cancelled", 0) - f.get("on_hold", 0)
    exposure = f.get("exposure", 0)
    return {
        "pool": name,
        "contributions": f.get("contributions", 0),
        "cancelled": f.get("cancelled", 0),
        "on_hold": f.get("on_hold", 0),
        "balance": balance,
        "exposure": exposure,
        "coverage_ratio": round(balance / exposure, 6) if exposure else None,
    }


def runoff(engine: Engine, as_of: date, pool: str | None = None) -> dict[str, Any]:
    """Exposure (as recorded now) ending in each future year: the ladder of period ends."""
    v = vintages
    t = as_of.isoformat()
    year = func.substr(v.c.period_end, 1, 4).label("year")
    conds = [v.c.exposure_start <= t, v.c.period_end > t, v.c.exposure_now > 0]
    if pool is not None:
        conds.append(v.c.pool == pool)
    stmt = select(year, func.sum(v.c.exposure_now)).where(and_(*conds)).group_by(year).order_by(year)
    with engine.connect() as conn:
        years = [{"year": int(y), "exposure_ending": int(a)} for y, a in conn.execute(stmt)]
    return {
        "as_of": t,
        "pool": pool,
        "years": years,
        "total": sum(y["exposure_ending"] for y in years),
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
