"""Application services for risk assessment and stress-test records, over a ``LedgerApp``.

They keep the rules of CIWP recommendations 3 and 4 in one place for every face (CLI,
HTTP): which buffer method a program's profile implies, which of a project's vintages an
assessment is recorded on, and how a pool's stress-test runs are stored and read back.
Rejections raise :class:`~ledger.errors.LedgerError` subclasses (an assessment that breaks a
rule is a :class:`~risk.errors.RiskAssessmentRejected`, an ``InvalidCommand``), so the faces
turn them into one line and exit 1 (CLI) or a 4xx (HTTP), and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from ledger.application import LedgerApp, retry_on_conflict
from ledger.calendar import add_years
from ledger.errors import InvalidCommand, UnknownVintage
from ledger.profiles import ProgramProfile
from ledger.vintage import Vintage
from risk.assessment import (
    BufferMethod,
    RiskResult,
    evaluate,
    load_risk_tool,
    parse_assessment,
)
from risk.record import StressTest, StressTestRun, run_summary, stress_test_id

# --------------------------------------------------------------------------- risk assessment


def buffer_method_for(profile: ProgramProfile) -> tuple[BufferMethod, float | None]:
    """The buffer method a profile implies, and the minimum rate below which we reject.

    - ``flat``: the profile's ``buffer_rate`` (0.20, the ICVCM flat option, when unset).
    - ``additive`` (Verra NPRT): the profile's minimum and maximum bound the rate inside
      the method (the NPRT floors at its minimum and FAILS above its maximum).
    - ``multiplicative`` (CARB) and ``per_method``/``none`` (the program leaves the rate to
      each methodology, or states no method): ``1 - prod(1 - r_i)``, the conservative
      combination of independent categories, capped by the profile's maximum if any.

    For every method but additive, a rate below the profile's ``minimum_buffer_rate`` is
    rejected rather than silently raised: the assessment, not the software, must justify
    the rate. Returns ``(method, minimum_rate)``.
    """
    kind = profile.buffer_method.value
    minimum = profile.minimum_buffer_rate.value
    maximum = profile.maximum_buffer_rate.value
    if kind == "flat":
        rate = profile.buffer_rate.value
        return BufferMethod.flat(0.20 if rate is None else rate), minimum
    if kind == "additive":
        return (
            BufferMethod.additive(
                minimum=0.12 if minimum is None else minimum,
                maximum=0.60 if maximum is None else maximum,
            ),
            None,
        )
    return BufferMethod.multiplicative(maximum=maximum), minimum


def assess_project(
    app: LedgerApp, vintage_ids: Sequence[str], result: RiskResult, on: date
) -> list[str]:
    """Record an evaluated assessment on the given vintages, in one transaction."""
    if not vintage_ids:
        raise InvalidCommand("vintages: an assessment must be recorded on at least one vintage")
    return app.assess_risk(
        vintage_ids,
        on,
        tool=result.tool,
        tool_version=result.tool_version,
        buffer_rate=result.buffer_rate,
        annual_probability=result.combined_annual_probability,
        category_probabilities=dict(result.annual_probability),
        passed=result.passed,
    )


def assess_project_document(
    app: LedgerApp,
    document: Mapping[str, Any],
    project: str | None = None,
    on: date | None = None,
) -> dict[str, Any]:
    """Evaluate an assessment document (parsed TOML) and record it on the project's vintages.

    The project defaults to the document's; ``on`` defaults to its ``assessed_on``. The
    assessment is recorded on every vintage of the project under monitoring on ``on``
    (issued by then, period not ended); the others are listed as skipped, because the
    ledger accepts no new risk facts outside a vintage's monitoring period.
    """
    assessment = parse_assessment(document)  # a RiskAssessmentRejected is an InvalidCommand
    name = project or assessment.project
    if assessment.project != name:
        raise InvalidCommand(
            f"project: the assessment is for {assessment.project!r}, not {name!r}"
        )
    day = on or assessment.assessed_on
    vintages = _project_vintages(app, name)
    profile = _one_profile(app, name, vintages)
    method, minimum = buffer_method_for(profile)
    tool = load_risk_tool(assessment.tool)
    result = evaluate(assessment, tool, method, minimum_rate=minimum, strict=True)
    monitored = [str(v.id) for v in vintages if _monitored(v, day)]
    if not monitored:
        raise InvalidCommand(f"on: no vintage of project {name!r} is under monitoring on {day}")
    assessed = assess_project(app, monitored, result, day)
    interval = profile.risk_reassessment_years.value
    return {
        "project": name,
        "program": profile.name,
        "on": day.isoformat(),
        "tool": result.tool,
        "tool_version": result.tool_version,
        "method": profile.buffer_method.value,
        "evaluated_as": result.method,
        "minimum_buffer_rate": minimum,
        "buffer_rate": result.buffer_rate,
        "rating": result.rating,
        "combined_annual_probability": result.combined_annual_probability,
        "combined_period_risk": result.combined_period_risk,
        "annual_probability": dict(result.annual_probability),
        "period_risk": dict(result.period_risk),
        "reassessment_due": _reassessment_due(day, interval),
        "vintages_assessed": assessed,
        "vintages_skipped": [str(v.id) for v in vintages if str(v.id) not in set(assessed)],
    }


def _project_vintages(app: LedgerApp, project: str) -> list[Vintage]:
    if app.index is None:
        raise InvalidCommand("assess by project needs the vintage index")
    ids = app.index.vintage_ids_of_project(project)
    if not ids:
        raise UnknownVintage(f"project: no vintages of project {project!r}")
    return [app.vintage(vid) for vid in sorted(ids)]


def _one_profile(app: LedgerApp, project: str, vintages: Iterable[Vintage]) -> ProgramProfile:
    """A project's vintages share one program; an assessment under two would be ambiguous."""
    programs = sorted({v.program for v in vintages})
    if len(programs) != 1:
        raise InvalidCommand(
            f"project: {project!r} has vintages under programs {', '.join(programs)}; "
            "one assessment cannot follow two programs' buffer methods"
        )
    return app.catalog.get(programs[0])


def _monitored(v: Vintage, day: date) -> bool:
    return v.issued_on <= day < v.period_end


def _reassessment_due(day: date, interval: int | None) -> str | None:
    """The profile's interval governs (as the projector's ``risk_due``), even beyond 1..5."""
    return None if interval is None else add_years(day, interval).isoformat()


# --------------------------------------------------------------------------- stress tests

STRESS_TEST_INTERVAL_YEARS = 5
"""CIWP recommendation 3: stress-test the pool at least every five years."""


def record_stress_test(
    app: LedgerApp,
    pool: str,
    on: date,
    parameters: Mapping[str, Any],
    results: Mapping[str, Any],
    model: str | None = None,
) -> str:
    """Record one stress-test run on the pool's record; returns its run id (``ST1``, ...).

    ``model`` defaults to ``parameters["model"]``. A concurrent run on the same pool is
    retried on a fresh copy, so run ids stay one sequence per pool.
    """
    name = model if model is not None else parameters.get("model")
    if not isinstance(name, str):
        raise InvalidCommand("model: name the stress-test model of the run")

    def attempt() -> str:
        test = _stress_test(app, pool)
        if test is None:
            test = StressTest.first_run(pool, on, name, parameters, results)
            run_id = "ST1"
        else:
            run_id = test.record_run(on, name, parameters, results)
        app.save(test)
        return run_id

    return retry_on_conflict(attempt)


def latest_stress_tests(
    app: LedgerApp, pool: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The pool's recorded runs as plain values, newest recorded first (none: empty)."""
    test = _stress_test(app, pool)
    runs = test.listing() if test is not None else []
    return runs if limit is None else runs[:limit]


def latest_stress_summary(
    app: LedgerApp,
    pools: Iterable[str],
    as_of: date | None = None,
    interval_years: int = STRESS_TEST_INTERVAL_YEARS,
    known_at: datetime | None = None,
) -> dict[str, Any] | None:
    """The most recently recorded run over the given pools, flattened for the trustee report.

    With ``as_of``, only runs that tested the pool as of that date or earlier (a report as
    of a past date does not show a later test); with ``known_at``, only runs recorded by then. Keys: pool, run_id, on, recorded_at,
    next_due (``interval_years`` after ``on``), model (with scenarios, horizon and seed when
    simulated), then the run's headline results: scalars and small tables of scalars
    (p_exhausted, var, expected_shortfall, allocations...). None when there is no such run.
    """
    latest: StressTestRun | None = None
    for pool in pools:
        test = _stress_test(app, pool)
        for run in test.runs if test is not None else []:
            if as_of is not None and run.on > as_of:
                continue
            if known_at is not None and run.timestamp > known_at:
                continue
            if latest is None or run.timestamp > latest.timestamp:
                latest = run
    if latest is None:
        return None
    summary = run_summary(latest)
    head = {k: summary[k] for k in ("pool", "run_id", "on", "recorded_at")}
    head["next_due"] = add_years(latest.on, interval_years).isoformat()
    head["model"] = summary["model"]
    parameters = summary["parameters"]
    for key in ("scenarios", "horizon", "seed"):
        if key in parameters:
            head[key] = parameters[key]
    headline = {k: v for k, v in summary["results"].items() if _headline(v)}
    return {**head, **headline}


def _headline(value: Any) -> bool:
    """Scalars and small tables of scalars; per-year series stay in the full listing."""
    if isinstance(value, Mapping):
        return len(value) <= HEADLINE_TABLE_SIZE and all(_headline(v) for v in value.values())
    return not isinstance(value, (list, tuple))


HEADLINE_TABLE_SIZE = 8


class RecordedStressTests:
    """When each pool was last stress-tested, from its ``StressTestRun`` records.

    The scheduler's stress-test reminder asks this (its ``StressTestLog``).
    """

    def __init__(self, app: LedgerApp) -> None:
        self.app = app

    def last_run(self, pool: str) -> date | None:
        test = _stress_test(self.app, pool)
        if test is None or not test.runs:
            return None
        return max(run.on for run in test.runs)


def _stress_test(app: LedgerApp, pool: str) -> StressTest | None:
    try:
        found: object = app.repository.get(stress_test_id(pool))
    except AggregateNotFoundError:
        return None
    if not isinstance(found, StressTest):
        raise InvalidCommand(f"pool: the record of {pool!r} is not a stress-test record")
    return found


__all__ = [
    "RecordedStressTests",
    "assess_project",
    "assess_project_document",
    "buffer_method_for",
    "latest_stress_summary",
    "latest_stress_tests",
    "record_stress_test",
]
