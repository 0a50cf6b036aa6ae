"""What a pool holds and insures as of a date, for the stress tester (domain.md section 6).

:func:`pool_contents` builds :class:`risk.engine.PoolContents` from the read models:

- **exposure** per project: the project's exposure borne by the pool as of the date (its
  vintages' baselines plus recorded deltas; ``queries.liabilities`` grouped by project).
  Projects with no exposure left on the date are left out.
- **annual probability** per project: the latest recorded ``RiskAssessed`` (the read model
  holds each vintage's current assessment, so a test as of a past date still uses today's;
  ``assess`` records one assessment on all of a project's vintages, and where they differ
  the highest is taken). A project never assessed gets its program's default: the
  profile's ``buffer_rate``, else its ``minimum_buffer_rate``, else the ICVCM flat 20%, read
  as the risk over the risk tool's 100-year reference period and turned into an annual
  probability ``1 - (1 - rate) ** (1/100)`` (the tool's own score-to-probability rule).
  ``risk_class`` is free text on issuance and is not used.
- **loss fraction**: ``loss_fraction`` (default 1.0: the risk tool's probabilities are of
  losing the credited stock, so an event takes what remains).
- **region codes**: one region per program (default) or per project, or the caller's own
  mapping of project to region (the ledger records no geography).
- **avoidable share**: from the project's assessed category probabilities when given (the
  share of its annual probability from categories that are not natural hazards), else
  ``avoidable_share`` (default 0: every loss counts as unavoidable, the pool's worst case).
- **default probability**, **hazard trend**, **annual contributions**: stated assumptions
  (:class:`ContentsOptions`), published with every run.
- **buffer balance**: ``queries.buffer`` as of the date, less what the pool already owes
  and has not yet cancelled (``due`` to the pool): credits promised are not available.

:func:`pool_losses` lists the pool's historical losses (for the backtest) from the
vintages' own reversals. Everything here reads the ledger's read models (and, for the
assessed categories and the losses, the vintages' events); nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine, and_, select

from ledger.application import LedgerApp
from ledger.errors import InvalidCommand, LedgerError
from ledger.profiles import ProfileCatalog
from ledger.replay import replay
from projections import queries
from projections.tables import deltas, vintages
from risk.assessment import load_risk_tool
from risk.engine import PoolContents
from risk.errors import StressTestRejected, UnknownPool

ProbabilitySource = Literal["assessed", "profile default"]
REGION_BY: tuple[str, ...] = ("program", "project")
DEFAULT_BUFFER_RATE = 0.20
"""The ICVCM flat option: the rate assumed for a program whose profile states none."""
REFERENCE_PERIOD_YEARS = 100
"""The risk tool's reference period: a buffer rate is read as the risk over it."""


@dataclass(frozen=True)
class ContentsOptions:
    """The assumptions a stress test states beside the ledger's own figures."""

    loss_fraction: float = 1.0
    avoidable_share: float = 0.0
    default_probability: float = 0.5
    hazard_trend: float = 0.02
    annual_contributions: int = 0
    region_by: str = "program"

    def __post_init__(self) -> None:
        for name in ("loss_fraction", "avoidable_share", "default_probability"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise StressTestRejected(f"{name}: {value} is not within [0, 1]")
        if not (math.isfinite(self.hazard_trend) and self.hazard_trend > -1.0):
            raise StressTestRejected(f"hazard_trend: {self.hazard_trend} must be greater than -1")
        if self.annual_contributions < 0:
            raise StressTestRejected("annual_contributions: must not be negative")
        if self.region_by not in REGION_BY:
            raise StressTestRejected(
                f"region_by: {self.region_by!r} is not one of {', '.join(REGION_BY)}"
            )


@dataclass(frozen=True)
class ProjectFigures:
    """One project's row of the pool, with where its probability came from."""

    project: str
    program: str
    exposure: int
    annual_probability: float
    probability_source: ProbabilitySource
    avoidable_share: float
    region: str


@dataclass(frozen=True)
class PoolFigures:
    """The contents handed to the engine, and the table behind them (for publishing)."""

    pool: str
    as_of: date
    contents: PoolContents
    projects: list[ProjectFigures]
    balance: dict[str, int]

    def summary(self) -> dict[str, Any]:
        """Published parameters: the engine's summary plus where the figures came from."""
        assessed = sum(1 for p in self.projects if p.probability_source == "assessed")
        return {
            **self.contents.summary(),
            "balance": dict(self.balance),
            "projects_assessed": assessed,
            "projects_on_profile_default": len(self.projects) - assessed,
        }


# --------------------------------------------------------------------------- contents


def pool_contents(
    engine: Engine,
    pool: str,
    as_of: date,
    catalog: ProfileCatalog | None = None,
    options: ContentsOptions | None = None,
    categories: Mapping[str, Mapping[str, float]] | None = None,
    regions: Mapping[str, str] | None = None,
    known_at: datetime | None = None,
) -> PoolFigures:
    """Build the pool's :class:`PoolContents` as of ``as_of`` (see the module docstring).

    ``categories`` maps a project to its assessed annual probability by risk category (see
    :func:`assessed_categories`); ``regions`` maps a project to a region name.
    """
    opts = options or ContentsOptions()
    check_pool(engine, pool)
    exposure = _exposure_by_project(engine, pool, as_of, known_at)
    if not exposure:
        raise InvalidCommand(f"pool: {pool!r} bears no exposure on {as_of}")
    rows = _vintage_rows(engine, pool)
    figures = [
        _project_figures(project, amount, rows[project], catalog, opts, categories, regions)
        for project, amount in sorted(exposure.items())
    ]
    balance = pool_balance(engine, pool, as_of, known_at)
    codes = {name: i for i, name in enumerate(sorted({f.region for f in figures}))}
    contents = PoolContents(
        buffer_balance=max(0, balance["available"]),
        exposure=np.array([f.exposure for f in figures], dtype=np.int64),
        annual_probability=np.array([f.annual_probability for f in figures]),
        loss_fraction=np.full(len(figures), opts.loss_fraction),
        region=np.array([codes[f.region] for f in figures], dtype=np.int64),
        avoidable_share=np.array([f.avoidable_share for f in figures]),
        default_probability=opts.default_probability,
        hazard_trend=opts.hazard_trend,
        annual_contributions=opts.annual_contributions,
    )
    return PoolFigures(pool, as_of, contents, figures, balance)


def only_pool(engine: Engine) -> str:
    """The ledger's only pool, for a request that names none; else reject, naming the pools."""
    known = queries.pools(engine)
    if len(known) != 1:
        raise StressTestRejected(f"pool: name the pool (pools: {', '.join(known) or 'none yet'})")
    return known[0]


def check_pool(engine: Engine, pool: str) -> None:
    """Reject a pool the ledger does not know (:class:`UnknownPool`), naming the ones it does."""
    known = queries.pools(engine)
    if pool not in known:
        raise UnknownPool(
            f"pool: no pool named {pool!r} (pools: {', '.join(known) or 'none yet'})"
        )


def projects_bearing_exposure(
    engine: Engine, pool: str, as_of: date, known_at: datetime | None = None
) -> int:
    """How many of the pool's projects bear exposure on the date (the engine's width)."""
    return len(_exposure_by_project(engine, pool, as_of, known_at))


def _exposure_by_project(
    engine: Engine, pool: str, as_of: date, known_at: datetime | None = None
) -> dict[str, int]:
    result = queries.liabilities(engine, as_of, queries.Filters(pool=pool), known_at, "project")
    return {
        name: int(group["exposure"])
        for name, group in result.get("groups", {}).items()
        if int(group["exposure"]) > 0
    }


@dataclass
class _Rows:
    program: str = ""
    assessed: list[float] = field(default_factory=list)


def _vintage_rows(engine: Engine, pool: str) -> dict[str, _Rows]:
    v = vintages
    stmt = select(v.c.project, v.c.program, v.c.annual_probability).where(v.c.pool == pool)
    out: dict[str, _Rows] = {}
    with engine.connect() as conn:
        for project, program, probability in conn.execute(stmt):
            row = out.setdefault(project, _Rows(program=program))
            row.program = min(row.program, program)
            if probability is not None:
                row.assessed.append(float(probability))
    return out


def _project_figures(
    project: str,
    exposure: int,
    rows: _Rows,
    catalog: ProfileCatalog | None,
    opts: ContentsOptions,
    categories: Mapping[str, Mapping[str, float]] | None,
    regions: Mapping[str, str] | None,
) -> ProjectFigures:
    source: ProbabilitySource = "assessed" if rows.assessed else "profile default"
    if rows.assessed:
        probability = max(rows.assessed)
    else:
        probability = default_annual_probability(rows.program, catalog)
    share = opts.avoidable_share
    if categories and project in categories:
        share = avoidable_share_of(categories[project], share)
    if regions and project in regions:
        region = f"region:{regions[project]}"
    else:
        region = f"{opts.region_by}:{rows.program if opts.region_by == 'program' else project}"
    return ProjectFigures(project, rows.program, exposure, probability, source, share, region)


def default_annual_probability(program: str, catalog: ProfileCatalog | None) -> float:
    """A program's default annual reversal probability, from its profile's buffer rate."""
    rate = DEFAULT_BUFFER_RATE
    if catalog is not None:
        try:
            profile = catalog.get(program)
        except LedgerError:  # an unknown program keeps the flat 20%
            profile = None
        if profile is not None:
            stated = profile.buffer_rate.value
            if stated is None:
                stated = profile.minimum_buffer_rate.value
            rate = DEFAULT_BUFFER_RATE if stated is None else stated
    return -math.expm1(math.log1p(-min(rate, 0.999999)) / REFERENCE_PERIOD_YEARS)


def avoidable_share_of(category_probabilities: Mapping[str, float], fallback: float) -> float:
    """Share of a project's annual probability from categories within human control."""
    tool = load_risk_tool()
    natural = {c.id for c in tool.categories if c.natural}
    total = math.fsum(category_probabilities.values())
    if total <= 0:
        return fallback
    avoidable = math.fsum(p for c, p in category_probabilities.items() if c not in natural)
    return min(1.0, max(0.0, avoidable / total))


def assessed_categories(app: LedgerApp, engine: Engine, pool: str) -> dict[str, dict[str, float]]:
    """Each assessed project's category probabilities, from one assessed vintage of it.

    The read model keeps only the combined probability; the categories live in the
    ``RiskAssessed`` event, so this loads one vintage per assessed project.
    """
    v = vintages
    stmt = (
        select(v.c.project, v.c.vintage_id)
        .where(and_(v.c.pool == pool, v.c.annual_probability.is_not(None)))
        .order_by(v.c.project, v.c.vintage_id)
    )
    chosen: dict[str, str] = {}
    with engine.connect() as conn:
        for project, vid in conn.execute(stmt):
            chosen.setdefault(project, vid)
    out: dict[str, dict[str, float]] = {}
    for project, vid in chosen.items():
        risk = app.vintage(vid).risk
        if risk is not None and risk.category_probabilities:
            out[project] = dict(risk.category_probabilities)
    return out


def pool_balance(
    engine: Engine, pool: str, as_of: date, known_at: datetime | None = None
) -> dict[str, int]:
    """The buffer's figures as of the date, and what of it is available (not yet owed)."""
    figures = queries.buffer(engine, as_of, pool, known_at)
    owed = queries.liabilities(engine, as_of, queries.Filters(pool=pool), known_at)["due"].get(
        "pool", 0)
    return {
        "contributions": int(figures["contributions"]),
        "cancelled": int(figures["cancelled"]),
        "on_hold": int(figures["on_hold"]),
        "balance": int(figures["balance"]),
        "owed_by_pool": int(owed),
        "available": int(figures["balance"]) - int(owed),
    }


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class PoolLoss:
    """A loss the pool bore: the day the pool became liable, credits, cause, where."""

    on: date
    quantity: int
    cause: str
    vintage_id: str
    reversal_id: str


def pool_losses(
    app: LedgerApp, engine: Engine, pool: str, as_of: date, known_at: datetime | None = None
) -> list[PoolLoss]:
    """The pool's historical losses up to ``as_of``, from its vintages' reversals.

    An unavoidable reversal is the pool's on the day it happened; an avoidable one becomes
    the pool's the day after the proponent's deadline passes, for what was still owed then.
    Compensation of an unavoidable reversal by another route (insurance, a fund) reduces
    the pool's loss; buffer cancellation is the pool paying, so it does not.
    """
    d = deltas
    stmt = (
        select(d.c.vintage_id)
        .where(and_(d.c.pool == pool, d.c.measure == "due", d.c.day <= as_of.isoformat()))
        .distinct()
    )
    with engine.connect() as conn:
        ids = sorted(r[0] for r in conn.execute(stmt))
    losses: list[PoolLoss] = []
    for vid in ids:
        vintage, _ = replay(app.stream(vid), as_of, known_at)
        if vintage is None:
            continue
        for r in vintage.reversals.values():
            if not r.active:
                continue
            if vintage.obligor_at(r, as_of) != "pool":
                continue
            deadline = vintage.surrender_deadline(r)
            if r.obligor == "pool" or deadline is None:
                liable_on = r.on
                other = sum(q for day, route, q in r.compensations
                            if route != "buffer" and day <= as_of)
                quantity = r.quantity - other
            else:
                liable_on = date.fromordinal(deadline.toordinal() + 1)
                quantity = r.outstanding_at(deadline)
            if liable_on <= as_of and quantity > 0:
                losses.append(PoolLoss(liable_on, quantity, r.cause, vid, r.reversal_id))
    return sorted(losses, key=lambda x: (x.on, x.vintage_id, x.reversal_id))


__all__ = [
    "ContentsOptions",
    "PoolFigures",
    "PoolLoss",
    "ProjectFigures",
    "assessed_categories",
    "avoidable_share_of",
    "check_pool",
    "default_annual_probability",
    "only_pool",
    "pool_balance",
    "pool_contents",
    "pool_losses",
    "projects_bearing_exposure",
]
