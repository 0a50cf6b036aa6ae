"""The trustee report: one self-contained HTML file, its charts inline as SVG.

Every figure comes from the read models (:mod:`projections.queries` and
:mod:`projections.report_series`), so the page shows the numbers the CLI and the HTTP API
show. The page is rendered from a Jinja2 template with autoescaping: text from the ledger
(project, program, pool, fund names, labels) is escaped and never runs. Charts are SVG
generated here and inlined, so the one file can be mailed or archived and opens offline.

Stress-test runs are passed in as plain values (the risk package reads them; projections do
not import risk): for each pool its runs, newest recorded last or first, as the records'
listing gives them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from projections import queries
from projections.report_series import BufferStep, buffer_steps, labelled_credits
from projections.report_stress import hazard_views, normalise_runs, stress_views
from projections.runoff import runoff as runoff_of

TOP_PROJECTS = 25
"""Projects listed by name; the rest are summed in one line."""
STEPS_SHOWN = 40
"""Buffer changes listed per pool (the newest); the chart shows them all."""


@dataclass(frozen=True)
class ReportFiles:
    """What was written: the page (one file; ``charts`` stays empty, they are inline)."""

    index: Path
    charts: list[Path] = field(default_factory=list)


def report_path(out: Path) -> Path:
    """``--out`` names the page itself (``*.html``/``*.htm``) or a folder for ``index.html``."""
    out = Path(out)
    return out if out.suffix.lower() in (".html", ".htm") else out / "index.html"


def write_report_html(
    engine: Any, out: Path, as_of: date, stress: Any = None, known_at: datetime | None = None,
) -> Path:
    """Write the report to ``out`` (a file, or ``out/index.html`` for a folder); its path."""
    target = report_path(out)
    page = render_report(engine, as_of, stress, known_at)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)  # never a half-written page under the real name
    return target


def write_report(
    engine: Any, out_dir: Path, as_of: date, stress: Any = None,
    known_at: datetime | None = None,
) -> Path:
    """Compatibility name of :func:`write_report_html`."""
    return write_report_html(engine, out_dir, as_of, stress, known_at)


def write_report_files(
    engine: Any, out_dir: Path, as_of: date, stress: Any = None,
    chart_format: str = "svg", known_at: datetime | None = None,
) -> ReportFiles:
    """Compatibility: the one-file report in ``out_dir`` (charts are inline whatever
    ``chart_format`` says)."""
    return ReportFiles(write_report_html(engine, out_dir, as_of, stress, known_at))


# ---------------------------------------------------------------------- figures


def render_report(
    engine: Any, as_of: date, stress: Any = None, known_at: datetime | None = None
) -> str:
    """Gather every figure as of one date (as known at one time) and render the page."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from projections import charts

    none = queries.Filters()
    totals = queries.liabilities(engine, as_of, none, known_at)
    by_program = queries.liabilities(engine, as_of, none, known_at, by="program")
    by_bearer = queries.liabilities(engine, as_of, none, known_at, by="bearer")
    by_project = queries.liabilities(engine, as_of, none, known_at, by="project")
    buffer = queries.buffer(engine, as_of, None, known_at)
    runoff = runoff_of(engine, as_of, None, known_at)
    steps = buffer_steps(engine, as_of, known_at)
    labels = labelled_credits(engine, as_of, known_at)
    runs = normalise_runs(stress, as_of, known_at)
    balances = {p["pool"]: int(p["balance"]) for p in buffer["pools"]}

    pools = [_pool_view(p) for p in buffer["pools"]]
    program_map = _program_exposure(by_program)
    bearer_map = _bearer_exposure(by_bearer)
    pool_names = {p["pool"] for p in buffer["pools"]}
    bearers = _runoff_bearers(runoff)
    context = {
        "as_of": as_of.isoformat(),
        "known": (f"what the ledger had recorded by {_minute(known_at)}" if known_at else
                  "everything recorded in the ledger when this page was generated"),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "totals": totals,
        "transferred_total": sum(totals["transferred"].values()),
        "due_detail": _due_detail(totals["due"]),
        "buffer": buffer,
        "uncovered_total": sum(p["uncovered"] for p in pools),
        "pools": pools,
        "dues_chart": charts.dues_svg(
            [(p["pool"], p["balance"], p["owed"]) for p in pools], "chart-dues"),
        "balance_chart": charts.pool_balance_svg(
            {name: [(s.day, s.balance, s.owed) for s in series]
             for name, series in steps.items()},
            as_of, "chart-balance"),
        "steps": [_steps_view(name, series, balances.get(name)) for name, series in steps.items()],
        "runoff": runoff,
        "runoff_bearers": [(b, "pool" if b in pool_names else "transferee") for b in bearers],
        "runoff_rows": [(y["year"], [y["by_bearer"].get(b, 0) for b in bearers],
                         y["exposure_ending"]) for y in runoff["years"]],
        "runoff_chart": charts.runoff_by_bearer_svg(
            [(y["year"], y["by_bearer"]) for y in runoff["years"]], bearers, "chart-runoff"),
        "show_program": program_map != _program_exposure(by_bearer),
        "program_rows": _program_rows(by_program),
        "program_chart": charts.exposure_bars_svg(program_map, "Exposure by program",
                                                  "chart-program"),
        "bearer_rows": sorted(bearer_map.items(), key=lambda kv: (-kv[1], kv[0])),
        "bearer_chart": charts.exposure_bars_svg(bearer_map, "Exposure by bearer",
                                                 "chart-bearer"),
        "hazards": hazard_views(runs, balances),
        "stress": stress_views(runs, balances),
        "labels": labels,
        "labelled_total": sum(item.quantity for item in labels),
        "label_names": sorted({item.label for item in labels}),
        "projects": _project_rows(by_project, labels),
        "top_projects": TOP_PROJECTS,
    }
    env = Environment(loader=PackageLoader("projections", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["t"] = tonnes
    env.filters["ratio"] = ratio
    return env.get_template("report.html.j2").render(context)


def tonnes(value: float) -> str:
    return f"{value:,.0f}"


def ratio(value: float | None) -> str:
    """Coverage as a percentage; an em dash when the pool bears no exposure."""
    return "—" if value is None else f"{value:.1%}"


def _minute(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _due_detail(due: Mapping[str, int]) -> str:
    names = (("proponent", "proponents"), ("pool", "pools"), ("fund", "funds"),
             ("jurisdiction", "jurisdictions"), ("insurer", "insurers"))
    return " · ".join(f"{name} {tonnes(due.get(key, 0))}" for key, name in names
                      if due.get(key) or key in ("proponent", "pool"))


def _pool_view(p: Mapping[str, Any]) -> dict[str, Any]:
    uncovered = max(0, int(p["owed"]) - int(p["balance"]))
    return {**p, "uncovered": uncovered}


def _steps_view(name: str, series: Sequence[BufferStep], balance: int | None) -> dict[str, Any]:
    shown = list(series)[-STEPS_SHOWN:]
    return {"pool": name, "rows": shown, "hidden": len(series) - len(shown),
            "last_balance": series[-1].balance if series else 0, "headline": balance}


def _program_exposure(by_group: Mapping[str, Any]) -> dict[str, int]:
    """Exposure per group (program, or pool as bearer) where there is any."""
    return {name: int(g["exposure"]) for name, g in by_group.get("groups", {}).items()
            if g["exposure"]}


def _bearer_exposure(by_bearer: Mapping[str, Any]) -> dict[str, int]:
    """Pool-borne exposure per pool, plus exposure transferred to each fund or insurer."""
    out = {name: int(g["exposure"]) for name, g in by_bearer.get("groups", {}).items()
           if g["exposure"]}
    for fund, amount in by_bearer.get("transferred", {}).items():
        label = f"{fund} (transferred)"
        out[label] = out.get(label, 0) + int(amount)
    return out


def _program_rows(by_program: Mapping[str, Any]) -> list[tuple[str, int, int, int, int]]:
    return [
        (name, g["exposure"], sum(g["transferred"].values()), g["due"].get("proponent", 0),
         g["due"].get("pool", 0))
        for name, g in sorted(by_program.get("groups", {}).items(),
                              key=lambda kv: (-kv[1]["exposure"], kv[0]))
    ]


def _runoff_bearers(runoff: Mapping[str, Any]) -> list[str]:
    totals: dict[str, int] = {}
    for year in runoff["years"]:
        for bearer, amount in year["by_bearer"].items():
            totals[bearer] = totals.get(bearer, 0) + abs(int(amount))
    return sorted(totals, key=lambda b: (-totals[b], b))


def _project_rows(by_project: Mapping[str, Any], labels: Sequence[Any]) -> list[dict[str, Any]]:
    marks: dict[str, set[str]] = {}
    for item in labels:
        marks.setdefault(item.project, set()).add(item.label)
    groups = sorted(by_project.get("groups", {}).items(),
                    key=lambda kv: (-kv[1]["exposure"], -kv[1]["due_total"], kv[0]))
    groups = [(n, g) for n, g in groups if g["exposure"] or g["due_total"] or g["transferred"]]
    shown, rest = groups[:TOP_PROJECTS], groups[TOP_PROJECTS:]
    rows = [{"name": n, "labels": sorted(marks.get(n, ())), "exposure": g["exposure"],
             "transferred": sum(g["transferred"].values()),
             "proponent": g["due"].get("proponent", 0), "pool": g["due"].get("pool", 0)}
            for n, g in shown]
    if rest:
        rows.append({
            "name": f"{len(rest):,} more projects",
            "labels": sorted({m for n, _ in rest for m in marks.get(n, ())}),
            "exposure": sum(g["exposure"] for _, g in rest),
            "transferred": sum(sum(g["transferred"].values()) for _, g in rest),
            "proponent": sum(g["due"].get("proponent", 0) for _, g in rest),
            "pool": sum(g["due"].get("pool", 0) for _, g in rest)})
    return rows
