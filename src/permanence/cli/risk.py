"""Risk commands: ``assess`` (CIWP recommendation 4) and ``stress-test`` (recommendation 3).

``assess`` evaluates a project's assessment file with the risk tool and its program's
buffer method and records it on the project's vintages. ``stress-test`` asks whether a
pool can absorb reversals under stated scenarios and records the run (parameters and
results) on the pool's stress-test record; ``stress-tests`` lists the recorded runs.

Exit codes follow the CLI: 2 for malformed input (a missing or malformed file, a bad
number, an unknown model or pool), 1 for a rejected command (an assessment that breaks a
rule: nothing is written); one line names the problem.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from permanence.cli.app import (
    AS_OF,
    JSON,
    KNOWN_AT,
    UsageError,
    app,
    emit,
    guarded,
    runtime,
    to_date,
    today,
)
from permanence.parsing import to_timestamp
from risk.engine import StressTestRejected

ASSESSMENT_FILE = typer.Option(..., "--file", help="Assessment TOML (see tests/fixtures).")
LEVELS = typer.Option(None, "--level", help="VaR/ES level (repeatable; default 0.995).")
ALLOCATIONS = typer.Option(
    None, "--allocation", help="Backtest sub-allocation CAUSE=CREDITS (repeatable)."
)
PLOT = typer.Option(None, "--plot", help="Write ruin probability and losses as PNG.")

# ---------------------------------------------------------------------- assess


@app.command("assess")
def assess(
    file: Path = ASSESSMENT_FILE,
    project: str = typer.Option(None, help="Project (default: the file's project)."),
    on: str = typer.Option(None, help="Business date (default: the file's assessed_on)."),
    as_json: bool = JSON,
) -> None:
    """Evaluate a project risk assessment and record it on the project's vintages."""
    from risk.service import assess_project_document

    def body() -> None:
        document = read_assessment(file)
        day = to_date(on, "on")
        with runtime() as rt:
            rt.refresh()
            data = assess_project_document(rt.app, document, project, day)
        emit(data, as_json, _assessed_text)

    guarded(body)


def read_assessment(path: Path) -> dict[str, Any]:
    """The assessment file as a dict; a missing or malformed file is a usage error."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"file: {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"file: {path} is a folder, not an assessment file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"file: {path} is not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise UsageError(f"file: {path} is not UTF-8 text") from None


def _assessed_text(d: dict[str, Any]) -> str:
    return (
        f"assessed project {d['project']} on {d['on']} ({d['program']}, {d['method']}): "
        f"buffer rate {d['buffer_rate']:.4f} ({d['rating']}), annual probability "
        f"{d['combined_annual_probability']:.6f}; recorded on {len(d['vintages_assessed'])} "
        f"vintage(s)"
        + (f", {len(d['vintages_skipped'])} not monitored" if d["vintages_skipped"] else "")
    )


# ---------------------------------------------------------------------- stress-test


@app.command("stress-test")
def stress_test(
    pool: str = typer.Option(None, help="Pool (default: the only pool of the ledger)."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    model: str = typer.Option(
        "independent",
        help="independent|catastrophe|rising|default|combined|backtest|stylised.",
    ),
    scenarios: int = typer.Option(10_000, help="Simulated futures."),
    horizon: int = typer.Option(100, help="Years simulated."),
    seed: int = typer.Option(0, help="Random seed (same seed, same result)."),
    level: list[float] = LEVELS,
    target_ruin: float = typer.Option(
        None, "--target-ruin", help="Find the buffer rate keeping ruin under this probability."
    ),
    loss_fraction: float = typer.Option(
        1.0, "--loss-fraction", help="Share of a project lost per event."
    ),
    avoidable_share: float = typer.Option(
        0.0, "--avoidable-share", help="Avoidable share of a loss, for unassessed projects."
    ),
    default_probability: float = typer.Option(
        0.5, "--default-probability", help="Chance a proponent defaults on an avoidable loss."
    ),
    hazard_trend: float = typer.Option(
        0.02, "--hazard-trend", help="Relative annual rise of hazard (rising, combined)."
    ),
    annual_contributions: int = typer.Option(
        0, "--annual-contributions", help="Credits added to the pool each year."
    ),
    region_by: str = typer.Option("program", "--region-by", help="Regions: program|project."),
    cat_probability: float = typer.Option(
        0.02, "--cat-probability", help="Annual chance a region is struck (catastrophe)."
    ),
    cat_probability_multiplier: float = typer.Option(5.0, "--cat-probability-multiplier"),
    cat_loss_multiplier: float = typer.Option(1.5, "--cat-loss-multiplier"),
    allocation: list[str] = ALLOCATIONS,
    since: str = typer.Option(
        None, help="Backtest: replay from this date's year (default: the first loss's)."
    ),
    pool_size: int = typer.Option(None, "--pool-size", help="Stylised: credits in the pool."),
    event_loss: int = typer.Option(None, "--event-loss", help="Stylised: credits lost per event."),
    annual_probability: float = typer.Option(
        None, "--annual-probability", help="Stylised: chance of an event each year."
    ),
    plot: Path = PLOT,
    record: bool = typer.Option(True, "--record/--no-record", help="Record the run on the pool."),
    as_json: bool = JSON,
) -> None:
    """Stress-test a pool (or the stylised pool); the run is recorded on the pool."""
    from risk.engine import CatastropheParams, plot_result
    from risk.pool_contents import (
        ContentsOptions,
        StressSpec,
        only_pool,
        parse_allocations,
        run_stress_test,
    )
    from risk.service import record_stress_test

    def body() -> None:
        try:
            spec = StressSpec(
                model=model,
                pool=pool,
                as_of=to_date(as_of, "as-of") or today(),
                scenarios=scenarios,
                horizon=horizon,
                seed=seed,
                levels=tuple(level) if level else (0.995,),
                target_ruin=target_ruin,
                options=ContentsOptions(
                    loss_fraction, avoidable_share, default_probability, hazard_trend,
                    annual_contributions, region_by,
                ),
                catastrophe=CatastropheParams(
                    cat_probability, cat_probability_multiplier, cat_loss_multiplier
                ),
                allocations=parse_allocations(allocation or []),
                since=to_date(since, "since"),
                known_at=to_timestamp(known_at),
                pool_size=pool_size,
                event_loss=event_loss,
                annual_probability=annual_probability,
            )
        except StressTestRejected as e:
            raise UsageError(str(e)) from None
        if plot is not None and spec.model == "backtest":
            raise UsageError("plot: the backtest replays history; it has no distribution to plot")
        if plot is not None and not plot.resolve().parent.is_dir():
            raise UsageError(f"plot: folder {plot.resolve().parent} does not exist")
        if spec.model == "stylised":
            outcome = _rejecting(lambda: run_stress_test(spec))
            outcome.output["recorded"] = None
        else:
            with runtime() as rt:
                rt.refresh()
                named = spec if pool is not None else replace(spec, pool=_rejecting(
                    lambda: only_pool(rt.engine)))
                outcome = _rejecting(lambda: run_stress_test(named, rt.engine, rt.app, rt.catalog))
                run_id = None
                if record:
                    assert named.pool is not None and named.as_of is not None
                    run_id = record_stress_test(
                        rt.app, named.pool, named.as_of, outcome.parameters, outcome.results
                    )
                outcome.output["recorded"] = run_id
        if plot is not None and outcome.result is not None:
            plot_result(outcome.result, plot)
            outcome.output["plot"] = str(plot)
        emit(outcome.output, as_json, _stress_text)

    guarded(body)


@app.command("stress-tests")
def stress_tests(
    pool: str = typer.Option(..., help="Pool."),
    limit: int = typer.Option(None, help="Only the newest N runs."),
    as_json: bool = JSON,
) -> None:
    """List a pool's recorded stress-test runs, newest first."""
    from risk.service import latest_stress_tests

    def body() -> None:
        if limit is not None and limit < 1:
            raise UsageError(f"limit: {limit} must be at least 1")
        with runtime() as rt:
            runs = latest_stress_tests(rt.app, pool, limit)
        emit({"pool": pool, "runs": runs}, as_json, lambda d: "\n".join(
            [f"stress tests of pool {pool}: {len(runs)}"]
            + [f"  {r['run_id']:<5} as of {r['on']}  {r['model']:<12} recorded "
               f"{r['recorded_at'][:19]} by {r['recorded_by'] or '-'}" for r in runs]))

    guarded(body)


def _rejecting(run: Any) -> Any:
    """Engine rejections are bad values: exit 2, as for any malformed input."""
    try:
        return run()
    except StressTestRejected as e:
        raise UsageError(str(e)) from None


def _stress_text(d: dict[str, Any]) -> str:
    where = f"pool {d['pool']} as of {d['as_of']}" if d.get("pool") else "stylised pool"
    if d["model"] == "backtest":
        lines = [
            (f"backtest of {where}: {d['total_loss']:,} credits lost from {d['first_year']}, "
             f"{d['share_of_pool_consumed']:.1%} of the pool ({d['balance']:,})"),
            f"  exhausted in year {d['exhausted_year']}" if d["exhausted_year"] is not None
            else "  never exhausted",
        ]
        lines += [
            f"  {name}: {a['losses']:,} of {a['allocation']:,} ({a['share_consumed']:.1%})"
            for name, a in d["allocations"].items()
        ]
    else:
        lines = [
            (f"{d['model']} stress test of {where}: {d['scenarios']:,} scenarios x "
             f"{d['horizon']} years, seed {d['seed']}"),
            f"  P(exhausted) {d['p_exhausted']:.4f} (s.e. {d['standard_error']:.4f})"
            + (f", exact {d['exact_p_exhausted']:.4f}"
               if d.get("exact_p_exhausted") is not None else ""),
            f"  expected loss {d['expected_loss']:,.0f}",
        ]
        lines += [
            f"  VaR {k} {v:,.0f}; expected shortfall {d['expected_shortfall'][k]:,.0f}"
            for k, v in d["var"].items()
        ]
        if d.get("required_contribution_rate") is not None:
            lines.append(f"  buffer rate needed {d['required_contribution_rate']:.4f} "
                         f"(now {d['current_buffer_rate']:.4f})")
    if d.get("recorded"):
        lines.append(f"  recorded as run {d['recorded']}")
    if d.get("plot"):
        lines.append(f"  plot {d['plot']}")
    return "\n".join(lines)
