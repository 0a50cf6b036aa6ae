"""Risk commands: ``assess`` (CIWP recommendation 4) and ``stress-test`` (recommendation 3).

``assess`` evaluates a project's assessment file with the risk tool and its program's
buffer method and records it on the project's vintages. ``stress-test`` asks whether a
pool can absorb reversals under stated scenarios and records the run (parameters and
results) on the pool's stress-test record; ``stress-tests`` lists the recorded runs.

Exit codes follow the CLI: 2 for malformed input (a missing or malformed file, a bad
number, an unknown model or pool, a stress-test parameter out of range), 1 for a rejected
command (an assessment that breaks a rule, a pool bearing no exposure on the date: nothing
is written); one line names the problem.

Module-level imports stay light (no numpy, no store): each command imports what it runs.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from risk.choices import MODEL_HELP, RegionBy, StressModel

ASSESSMENT_FILE = typer.Option(..., "--file", help="Assessment TOML (see tests/fixtures).")
LEVELS = typer.Option(None, "--level", help="VaR/ES level (repeatable; default 0.995).")
ALLOCATIONS = typer.Option(
    None, "--allocation", help="Backtest sub-allocation CAUSE=CREDITS (repeatable)."
)
PLOT = typer.Option(
    None, "--plot", help="Write the ruin curve and the horizon loss distribution (PNG; .svg: SVG)."
)
MODEL = typer.Option(
    StressModel.independent, "--model", case_sensitive=False,
    help="The loss model: " + "; ".join(f"{name}: {text}" for name, text in MODEL_HELP.items())
    + ".",
)
REGION_BY = typer.Option(
    RegionBy.program, "--region-by", case_sensitive=False,
    help="What a catastrophe region is: each program, or each project.",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar (shown only on a terminal).")

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
    model: StressModel = MODEL,
    scenarios: int = typer.Option(10_000, help="Simulated futures."),
    horizon: int = typer.Option(100, help="Years simulated, numbered from 1."),
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
    region_by: RegionBy = REGION_BY,
    cat_probability: float = typer.Option(
        0.02, "--cat-probability", help="Annual chance a region is struck (catastrophe)."
    ),
    cat_probability_multiplier: float = typer.Option(
        5.0, "--cat-probability-multiplier",
        help="Factor on a project's probability in a struck region's year.",
    ),
    cat_loss_multiplier: float = typer.Option(
        1.5, "--cat-loss-multiplier", help="Factor on the loss fraction in a struck year."
    ),
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
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Stress-test a pool (or the stylised pool); the run is recorded on the pool.

    Reports the one-year 99.5% VaR (Solvency II: the loss of year 1),
    the loss over the whole horizon, expected shortfall beside each,
    and P(exhausted): cumulative loss greater than the balance.
    Years are numbered from 1.
    """
    from risk.errors import StressTestRejected, UnknownPool
    from risk.spec import StressSpec
    from risk.stress_test import run_and_record

    def body() -> None:
        values: dict[str, Any] = {
            "model": model, "pool": pool, "as_of": to_date(as_of, "as-of") or today(),
            "known_at": to_timestamp(known_at), "scenarios": scenarios, "horizon": horizon,
            "seed": seed, "target_ruin": target_ruin, "loss_fraction": loss_fraction,
            "avoidable_share": avoidable_share, "default_probability": default_probability,
            "hazard_trend": hazard_trend, "annual_contributions": annual_contributions,
            "region_by": region_by, "cat_probability": cat_probability,
            "cat_probability_multiplier": cat_probability_multiplier,
            "cat_loss_multiplier": cat_loss_multiplier, "allocation": allocation or [],
            "since": to_date(since, "since"), "pool_size": pool_size, "event_loss": event_loss,
            "annual_probability": annual_probability,
        }
        if level:
            values["level"] = level
        try:
            spec = StressSpec.from_values(values)
            if plot is not None and spec.model is StressModel.backtest:
                raise UsageError(
                    "plot: the backtest replays history; it has no distribution to plot")
            if plot is not None and not plot.resolve().parent.is_dir():
                raise UsageError(f"plot: folder {plot.resolve().parent} does not exist")
            with _progress(quiet) as told:
                if not spec.on_a_pool:
                    outcome = run_and_record(spec, None, None, record=False, progress=told)
                else:
                    with runtime() as rt:
                        rt.refresh()
                        outcome = run_and_record(spec, rt.engine, rt.app, rt.catalog,
                                                 record=record, progress=told)
        except (StressTestRejected, UnknownPool) as e:
            raise UsageError(str(e)) from None  # a bad value or name: exit 2
        if plot is not None:
            from projections.charts import stress_test_chart

            stress_test_chart(outcome.output, plot)
            outcome.output["plot"] = str(plot.resolve())
        emit(outcome.output, as_json, _stress_text)

    guarded(body)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar with an estimate on stderr, only when it is a terminal and not quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("stress test"), BarColumn(), MofNCompleteColumn(),
               TextColumn("chunks"), TimeElapsedColumn(), TextColumn("left"),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("stress test", total=None)

        def told(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield told


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


def _percent(key: str) -> str:
    return f"{float(key):.1%}"


def _stress_text(d: dict[str, Any]) -> str:
    where = f"pool {d['pool']} as of {d['as_of']}" if d.get("pool") else "stylised pool"
    exhausted = "exhausted: cumulative loss greater than the balance (a loss equal to it is not)"
    if d["model"] == "backtest":
        lines = [
            (f"backtest of {where}: {d['total_loss']:,} credits lost from {d['first_year']}, "
             f"{d['share_of_pool_consumed']:.1%} of the pool ({d['balance']:,})"),
            f"  {exhausted}; years numbered from 1 (year 1 = {d['first_year']})",
            (f"  exhausted in year {d['exhausted_year']} ({d['exhausted_in']})"
             if d["exhausted_year"] is not None else "  never exhausted"),
        ]
        lines += [
            f"  {name}: {a['losses']:,} of {a['allocation']:,} ({a['share_consumed']:.1%})"
            for name, a in d["allocations"].items()
        ]
    else:
        horizon = d["horizon"]
        lines = [
            (f"{d['model']} stress test of {where}: {d['scenarios']:,} scenarios x "
             f"{horizon} years, seed {d['seed']}"),
            f"  {exhausted}; years numbered from 1",
            f"  P(exhausted within {horizon} years) {d['p_exhausted']:.4f} "
            f"(s.e. {d['standard_error']:.4f})"
            + (f", exact {d['exact_p_exhausted']:.4f}"
               if d.get("exact_p_exhausted") is not None else ""),
            f"  loss in one year (year 1): mean {d['one_year_expected_loss']:,.0f}",
        ]
        lines += [
            f"    VaR {_percent(k)}{' (Solvency II)' if k == '0.995' else ''} {v:,.0f}; "
            "expected shortfall "
            f"{d['one_year_expected_shortfall'][k]:,.0f}"
            for k, v in d["one_year_var"].items()
        ]
        lines.append(f"  loss over all {horizon} years: mean {d['horizon_expected_loss']:,.0f}")
        lines += [
            f"    {_percent(k)} quantile {v:,.0f}; expected shortfall "
            f"{d['horizon_expected_shortfall'][k]:,.0f}"
            for k, v in d["horizon_loss_quantile"].items()
        ]
        if d.get("required_contribution_rate") is not None:
            lines.append(f"  buffer rate needed {d['required_contribution_rate']:.4f} "
                         f"(now {d['current_buffer_rate']:.4f})")
    if d.get("recorded"):
        lines.append(f"  recorded as run {d['recorded']}")
    if d.get("plot"):
        lines.append(f"  chart written to {d['plot']}")
    return "\n".join(lines)
