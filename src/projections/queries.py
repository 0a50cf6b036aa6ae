"""Trustee queries over the read models: liabilities, buffer, run-off, as of any date.

Two paths give the same numbers. Without ``known_at``, a project filter or a grouping by
project or vintage year, figures come from the roll-ups (whole years from
``proj_rollup_year``, then the days of the as-of year from ``proj_rollup``: a few thousand
rows whatever the ledger's size); one read of them serves every measure, the pools' own
figures (shortfalls) and every grouping they carry. Otherwise they come from each
vintage's issuance baseline plus its recorded deltas, restricted to what had been
recorded by ``known_at``: one grouped scan of each, whatever the grouping, so a grouping
by project costs one pass however many projects there are. Neither replays an aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Engine, and_, case, func, literal, select, text
from sqlalchemy.sql import ColumnElement

from ledger.obligors import OBLIGORS
from projections.tables import (
    deltas,
    record_time_text,
    rollup,
    rollup_year,
    tracking,
    vintages,
)

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


#: (measure, key, pool, group) -> amount: every figure a trustee question needs, by the
#: pool of the vintages it came from (pool rows and shortfalls) and the asked-for group.
Sums = dict[tuple[str, str, str, Any], int]
#: Groupings the roll-ups carry (their rows are keyed by program, pool and key).
ROLLED_GROUPS: tuple[str | None, ...] = (None, "program", "pool", "bearer")
#: The roll-up measure of credits issued that cannot reverse (keyed by pool, dated by
#: issuance). Read models that predate it lack it; their total is read from the vintages.
NON_REVERSIBLE = "non_reversible"
#: The ``proj_tracking`` row a rebuild writes once it rolls up :data:`NON_REVERSIBLE` for
#: every vintage: only then do the roll-ups hold the whole total (read models upgraded in
#: place would hold it for new issuances alone).
NON_REVERSIBLE_ROLLED = "rollup:non_reversible"


def _sums(
    conn: Any, as_of: date, filters: Filters, known_at: datetime | None, group: str | None
) -> Sums:
    """Every measure summed by (measure, key, pool, group) over facts dated by ``as_of``,
    in one pass: the roll-ups when they can answer, else the vintages and their deltas."""
    if known_at is None and filters.project is None and group in ROLLED_GROUPS:
        return _from_rollups(_rolled(conn, as_of, filters.pool), filters, group)
    return _detail(conn, as_of, filters, known_at_text(known_at), group, by_pool=True)


RolledRows = list[tuple[str, str, str, str, int]]


def _rolled(conn: Any, as_of: date, pool: str | None) -> RolledRows:
    """Roll-up amounts by (measure, key, program, pool) up to ``as_of``: whole years
    before its year, then the days of that year (read by the day index: no measure
    condition, every measure is wanted)."""
    t = as_of.isoformat()
    rows: RolledRows = []
    for table, period_cond in (
        (rollup_year, rollup_year.c.year < as_of.year),
        (rollup, and_(rollup.c.day >= f"{as_of.year:04d}-01-01", rollup.c.day <= t)),
    ):
        conds = [period_cond, *([table.c.pool == pool] if pool is not None else [])]
        stmt = (
            select(table.c.measure, table.c.key, table.c.program, table.c.pool,
                   func.sum(table.c.amount))
            .where(and_(*conds))
            .group_by(table.c.measure, table.c.key, table.c.program, table.c.pool)
        )
        rows += [(m, k, prog, p, int(a)) for m, k, prog, p, a in conn.execute(stmt).all()]
    return rows


def _from_rollups(rows: RolledRows, filters: Filters, group: str | None) -> Sums:
    out: Sums = {}
    for m, k, program, pool, amount in rows:
        if filters.program is not None and program != filters.program:
            continue
        g = (program if group == "program" else pool if group == "pool"
             else k if group == "bearer" else None)
        out[(m, k, pool, g)] = out.get((m, k, pool, g), 0) + amount
    return out


def _non_reversible_rolled(conn: Any) -> bool:
    """Whether the roll-ups hold every non-reversible issuance (see
    :data:`NON_REVERSIBLE_ROLLED`)."""
    stmt = select(tracking.c.name).where(tracking.c.name == NON_REVERSIBLE_ROLLED)
    return conn.execute(stmt).first() is not None


def _detail(
    conn: Any, as_of: date, filters: Filters, kt: str | None, group: str | None, by_pool: bool
) -> Sums:
    """One pass over the deltas and one over the vintages' issuance baselines, grouped.

    Without ``by_pool`` the sums carry no pool (``None``; a baseline's key too): enough for
    the liability figures, and a grouping by project then reads one row per project.
    """
    t = as_of.isoformat()
    out: Sums = {}
    gcol = _group_column(deltas, group)
    dpool = deltas.c.pool if by_pool else literal(None).label("p")
    conds = [deltas.c.day <= t, *_filter_conds(deltas, filters)]
    if kt is not None:
        conds.append(deltas.c.recorded_at <= kt)
    stmt = (
        select(deltas.c.measure, deltas.c.key, dpool, gcol, func.sum(deltas.c.amount))
        .where(and_(*conds))
        .group_by(deltas.c.measure, deltas.c.key, *([deltas.c.pool] if by_pool else []), gcol)
    )
    for m, k, pool, g, amount in conn.execute(stmt).all():
        out[(m, k, pool, g)] = out.get((m, k, pool, g), 0) + int(amount)
    for m, pool, g, amount in _baseline(conn, t, filters, kt, group, by_pool):
        k = (m, pool, pool, g)
        out[k] = out.get(k, 0) + int(amount)
    return out


def _baseline(
    conn: Any, t: str, filters: Filters, kt: str | None, group: str | None, by_pool: bool
) -> list[tuple[str, Any, Any, int]]:
    """Issuance baselines in one scan of the vintages issued by ``t``: exposure over
    [exposure_start, period_end) of those that can reverse, the buffer contribution, and
    the quantity of those that cannot (issued, carrying no exposure)."""
    v = vintages
    conds = [v.c.issued_on <= t, *_filter_conds(v, filters)]
    if kt is not None:
        conds.append(v.c.issued_recorded_at <= kt)
    gcol = _group_column(v, group, bearer=v.c.pool)
    pool = v.c.pool if by_pool else literal(None).label("p")
    exposure = case((and_(v.c.exposure_start <= t, v.c.period_end > t, v.c.reversible.is_(True)),
                     v.c.quantity), else_=0)
    contribution = case((v.c.buffer > 0, v.c.buffer), else_=0)
    fixed = case((v.c.reversible.is_(False), v.c.quantity), else_=0)
    stmt = (
        select(pool, gcol, func.sum(exposure), func.sum(contribution), func.sum(fixed))
        .where(and_(*conds))
        .group_by(*([v.c.pool] if by_pool else []), gcol)
    )
    rows: list[tuple[str, Any, Any, int]] = []
    add = rows.append
    for p, g, exposed, contributed, non_reversible in conn.execute(stmt).all():
        if exposed:
            add(("exposure", p, g, exposed))
        if contributed and by_pool:  # the pools' figures alone need it
            add(("contributions", p, g, contributed))
        if non_reversible:
            add((NON_REVERSIBLE, p, g, non_reversible))
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
    cover) when the question is about whole pools: no program or project filter. Every
    grouping is one pass: each sum is read once and added to its group.
    """
    whole_pools = filters.program is None and filters.project is None
    rollable = known_at is None and filters.project is None and by in ROLLED_GROUPS
    kt = known_at_text(known_at)
    with engine.connect() as conn:
        # one read of the roll-ups serves the figures and the pools' own (for shortfalls)
        rolled = _rolled(conn, as_of, filters.pool) if known_at is None else None
        shared = whole_pools and rolled is None  # the detail pass also gives the pools'
        if rolled is not None and rollable:
            sums, has_fixed = _from_rollups(rolled, filters, by), _non_reversible_rolled(conn)
        else:
            sums, has_fixed = _detail(conn, as_of, filters, kt, by, by_pool=shared), True
        if whole_pools and (rollable or shared):
            pool_sums = sums
        elif rolled is not None:
            pool_sums = _from_rollups(rolled, Filters(pool=filters.pool), None)
        else:
            pool_sums = _detail(conn, as_of, Filters(pool=filters.pool), kt, None, by_pool=True)
        non_reversible = (
            sum(a for (m, _, _, _), a in sums.items() if m == NON_REVERSIBLE) if has_fixed
            else _non_reversible(conn, as_of, filters)
        )
    shortfalls = {name: row["shortfall"] for name, row in _pools_of(pool_sums).items()
                  if row["shortfall"]}
    groups: dict[Any, dict[str, Any]] = {}
    total = _empty_figures()
    for (measure, key, _, group), amount in sums.items():
        if measure not in LIABILITY_MEASURES:
            continue
        _add(total, measure, key, amount)
        if by is not None:
            figures = groups.get(group)
            if figures is None:
                figures = groups[group] = _empty_figures()
            _add(figures, measure, key, amount)
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
        "non_reversible_issued": non_reversible,
    }
    if by is not None:
        result["by"] = by
        # by name, the group of no value last (a grouping by project sorts 50,000)
        named = sorted((str(g), f) for g, f in groups.items() if g is not None)
        if None in groups:
            named.append(("None", groups[None]))
        result["groups"] = {name: _finish(f) for name, f in named}
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
    moved = figures["transferred"]  # usually empty: a grouping by project finishes 50,000
    transferred = {k: a for k, a in sorted(moved.items()) if a} if moved else {}
    return {
        "exposure": figures["exposure"],
        "transferred": transferred,
        "due": figures["due"],
        "due_total": sum(figures["due"].values()),
    }


def _non_reversible(conn: Any, as_of: date, filters: Filters) -> int:
    """Credits issued by ``as_of`` that cannot reverse, for read models whose roll-ups
    predate that measure: read through the partial index over those vintages alone,
    summed by program and pool and filtered here (a program's or pool's own index would
    tempt the planner into fetching every vintage of it); a project is selective enough
    to ask for by its index."""
    v = vintages
    # written as the partial index's own condition, so both stores use that index
    conds: list[Any] = [text("NOT reversible"), v.c.issued_on <= as_of.isoformat()]
    if filters.project is not None:
        conds.append(v.c.project == filters.project)
    stmt = (select(v.c.program, v.c.pool, func.sum(v.c.quantity))
            .where(*conds).group_by(v.c.program, v.c.pool))
    return sum(
        int(amount) for program, pool, amount in conn.execute(stmt).all()
        if filters.program in (None, program) and filters.pool in (None, pool)
    )


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
    with engine.connect() as conn:
        sums = _sums(conn, as_of, Filters(pool=pool), known_at, None)
    return _pools_of(sums)


def _pools_of(sums: Sums) -> dict[str, dict[str, int]]:
    pools: dict[str, dict[str, int]] = {}
    for (measure, key, pool, _), amount in sums.items():
        if measure == "due":
            if key != "pool":
                continue
            name = pool
        elif measure in BUFFER_MEASURES or measure == "exposure":
            name = key
        else:
            continue
        row = pools.get(name)
        if row is None:
            row = pools[name] = dict.fromkeys(
                ("contributions", "drawn", "on_hold", "exposure", "due"), 0)
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
