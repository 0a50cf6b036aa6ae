"""The report's stress-test and hazard sections, from stored stress-test runs.

Runs arrive as plain values (``run_summary`` shape: pool, run_id, on, recorded_at,
recorded_by, model, parameters, results), read by the risk package: projections do not
import risk. Stored results are read defensively: older runs lack keys newer ones carry
(a ruin curve, a loss distribution), and a missing figure is said, not drawn as zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ledger.calendar import add_years
from projections import report_text as words

STRESS_TEST_INTERVAL_YEARS = 5
"""CIWP recommendation 3: a pool is stress-tested at least every five years."""
SERIES = frozenset({"p_exhausted_by_year", "loss_histogram", "losses_by_year",
                    "balance_by_year", "allocations", "exhaustion_year_distribution"})
"""Result keys drawn as charts or in the hazard section, not listed as figures."""
_HEAD = ("pool", "run_id", "on", "recorded_at", "recorded_by", "next_due", "model")
_FLAT_PARAMETERS = ("scenarios", "horizon", "seed")


def normalise_runs(
    stress: Any, as_of: date | None = None, known_at: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per pool, its runs oldest recorded first: from one run, a list of runs, or the flat
    summary ``risk.service.latest_stress_summary`` gives. Runs that tested the pool after
    ``as_of``, or were recorded after ``known_at``, are left out."""
    if stress is None:
        return {}
    items = [stress] if isinstance(stress, Mapping) else list(stress)
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        run = _run(item)
        on = _date(run.get("on"))
        if as_of is not None and on is not None and on > as_of:
            continue
        recorded = _moment(run.get("recorded_at"))
        if known_at is not None and recorded is not None and recorded > _utc(known_at):
            continue
        out.setdefault(str(run.get("pool") or "all pools"), []).append(run)
    for runs in out.values():
        runs.sort(key=lambda r: (_moment(r.get("recorded_at")) or datetime.min.replace(tzinfo=UTC),
                                 str(r.get("run_id", ""))))
    return dict(sorted(out.items()))


def _run(item: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item.get("results"), Mapping):
        run = dict(item)
        run["parameters"] = dict(item.get("parameters") or {})
        run["results"] = dict(item["results"])
        return run
    # the flat summary: the head, a few parameters, then the results
    parameters = dict(item["parameters"]) if isinstance(item.get("parameters"), Mapping) else {}
    for key in _FLAT_PARAMETERS:
        if key in item:
            parameters.setdefault(key, item[key])
    results = {k: v for k, v in item.items()
               if k not in _HEAD and k not in _FLAT_PARAMETERS and k != "parameters"}
    run = {k: item[k] for k in _HEAD if k in item}
    run["parameters"] = parameters
    run["results"] = results
    return run


def stress_views(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], balances: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Each pool's latest run: who, when, parameters, figures, ruin curve, loss distribution."""
    from projections import charts

    views = []
    for index, (pool, pool_runs) in enumerate(runs.items()):
        if not pool_runs:
            continue
        run = pool_runs[-1]
        parameters: Mapping[str, Any] = run["parameters"]
        results: Mapping[str, Any] = run["results"]
        model = str(run.get("model") or parameters.get("model") or "")
        on = _date(run.get("on"))
        view: dict[str, Any] = {
            "pool": pool,
            "run_id": run.get("run_id", "—"),
            "model": words.value("model", model) if model else "—",
            "on": on.isoformat() if on else "—",
            "recorded": words.when(str(run["recorded_at"])) if run.get("recorded_at") else "—",
            "recorded_by": run.get("recorded_by") or None,
            "next_due": add_years(on, STRESS_TEST_INTERVAL_YEARS).isoformat() if on else "—",
            "runs": len(pool_runs),
            "parameters": words.rows(parameters, skip=frozenset({"model", "pool"})),
            "results": words.rows(results, skip=SERIES),
            "ruin_chart": None, "ruin_rows": [], "histogram_chart": None, "notes": [],
        }
        curve = _numbers(results.get("p_exhausted_by_year"))
        if curve:
            view["ruin_chart"] = charts.ruin_curve_svg(
                curve, f"Ruin curve, pool {pool}: P(buffer exhausted) by year",
                f"chart-ruin-{index}")
            view["ruin_rows"] = [(y, words.percent(curve[y - 1])) for y in _milestones(len(curve))]
        elif model != "backtest":
            view["notes"].append("This run did not store the probability of exhaustion by "
                                 "year, so no ruin curve can be drawn.")
        balance = tested_balance(parameters, results)
        histogram = results.get("loss_histogram")
        edges = _numbers(histogram.get("edges")) if isinstance(histogram, Mapping) else []
        counts = _numbers(histogram.get("counts")) if isinstance(histogram, Mapping) else []
        if edges and len(edges) == len(counts) + 1:
            view["histogram_chart"] = charts.loss_histogram_svg(
                edges, counts, balance if balance is not None else balances.get(pool),
                f"Loss distribution, pool {pool}", f"chart-loss-{index}")
        elif model != "backtest":
            view["notes"].append("This run did not store its loss distribution (older runs "
                                 "kept only its quantiles), so none is drawn.")
        view["balance"] = balance
        views.append(view)
    return views


def tested_balance(parameters: Mapping[str, Any], results: Mapping[str, Any]) -> int | None:
    """The buffer balance the run tested, wherever its model stored it."""
    figures = parameters.get("pool_figures")
    if isinstance(figures, Mapping):
        if isinstance(figures.get("buffer_balance"), (int, float)):
            return int(figures["buffer_balance"])
        inner = figures.get("balance")
        if isinstance(inner, Mapping) and isinstance(inner.get("balance"), (int, float)):
            return int(inner["balance"])
    for source, key in ((results, "balance"), (parameters, "pool_size")):
        if isinstance(source.get(key), (int, float)) and not isinstance(source.get(key), bool):
            return int(source[key])
    return None


def hazard_views(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], balances: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Per pool, its buffer by hazard from the latest run that allocated it, and the losses
    drawn against each allocation."""
    from projections import charts

    views = []
    for index, (pool, pool_runs) in enumerate(runs.items()):
        run = next((r for r in reversed(pool_runs) if _allocations(r)), None)
        if run is None:
            continue
        rows = _allocations(run)
        allocated = sum(r[1] for r in rows)
        drawn = sum(r[2] for r in rows)
        on = _date(run.get("on"))
        views.append({
            "pool": pool, "run_id": run.get("run_id", "—"),
            "on": on.isoformat() if on else "—",
            "rows": [_hazard_row(name, size, used) for name, size, used in rows],
            "total": _hazard_row("All hazards allocated", allocated, drawn),
            "balance": balances.get(pool),
            "chart": charts.hazard_svg(rows, f"Buffer of pool {pool} by hazard",
                                       f"chart-hazard-{index}"),
        })
    return views


def _hazard_row(name: str, size: int, used: int) -> tuple[str, int, int, str, int]:
    """(hazard, allocated, losses drawn, share used, what is left of the allocation)."""
    return name, size, used, words.percent(used / size) if size else "—", max(0, size - used)


def _allocations(run: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(hazard, credits allocated, losses drawn) from a run's results, else its parameters."""
    found = run.get("results", {}).get("allocations")
    if isinstance(found, Mapping) and found:
        return [(str(name), _int(a.get("allocation")), _int(a.get("losses")))
                for name, a in found.items() if isinstance(a, Mapping)]
    asked = run.get("parameters", {}).get("allocations")
    if isinstance(asked, Mapping) and asked:
        return [(str(name), _int(size), 0) for name, size in asked.items()]
    return []


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, (list, tuple)):
        return []
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return []
    return [float(v) for v in values]


def _milestones(horizon: int) -> list[int]:
    """Years worth a row in the ruin table: 1, 5, 10, 20, 30, 40, 50, 100 and the horizon."""
    return sorted({y for y in (1, 5, 10, 20, 30, 40, 50, 100) if y <= horizon} | {horizon})


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value if not isinstance(value, datetime) else value.date()
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _utc(value)
    try:
        return _utc(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
