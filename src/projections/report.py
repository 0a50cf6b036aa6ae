"""The trustee report: one self-contained HTML page and its charts, for readers without a terminal.

Every figure comes from :mod:`projections.queries`, so the page shows the same numbers as the
CLI and the HTTP API. Charts are files next to ``index.html``, referenced relatively, so the
folder opens offline and can be mailed or archived as is. All text that came from the ledger
(project, program, pool, fund names) is HTML-escaped: the page never runs what it shows.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from projections import charts, queries
from projections.tables import vintages

HORIZON_YEARS = 5
"""How far past the as-of date the buffer-over-time chart projects what is recorded."""
TOP_PROJECTS = 25
"""Projects listed by name; the rest are summed in one line."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report_files` wrote."""

    index: Path
    charts: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Figures:
    """Everything the page shows, gathered before any HTML is written."""

    as_of: date
    known_at: datetime | None
    totals: dict[str, Any]
    by_program: dict[str, Any]
    by_bearer: dict[str, Any]
    by_project: dict[str, Any]
    buffer: dict[str, Any]
    runoff: dict[str, Any]
    balance_points: list[tuple[date, int, int]]


def write_report(
    engine: Engine, out_dir: Path, as_of: date, stress: dict[str, Any] | None = None,
    known_at: datetime | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and its charts; returns the page's path."""
    return write_report_files(engine, out_dir, as_of, stress, known_at=known_at).index


def write_report_files(
    engine: Engine,
    out_dir: Path,
    as_of: date,
    stress: dict[str, Any] | None = None,
    chart_format: str = "png",
    known_at: datetime | None = None,
) -> ReportFiles:
    """Write the page and its charts (``png`` or ``svg``); returns every file written."""
    if chart_format not in ("png", "svg"):
        raise ValueError(f"chart_format: {chart_format!r} is not png or svg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = gather(engine, as_of, known_at)
    names = {
        "runoff": f"runoff.{chart_format}",
        "balance": f"buffer-balance.{chart_format}",
        "program": f"exposure-by-program.{chart_format}",
        "bearer": f"exposure-by-bearer.{chart_format}",
    }
    written = [
        charts.runoff_chart(figures.runoff, out / names["runoff"]),
        charts.buffer_balance_chart(figures.balance_points, out / names["balance"], as_of),
        charts.exposure_bar_chart(
            program_exposure(figures.by_program), "Exposure by program", out / names["program"]
        ),
        charts.exposure_bar_chart(
            bearer_exposure(figures.by_bearer), "Exposure by bearer", out / names["bearer"]
        ),
    ]
    index = out / "index.html"
    index.write_text(render(figures, names, stress), encoding="utf-8")
    return ReportFiles(index, written)


# ---------------------------------------------------------------------- figures


def gather(engine: Engine, as_of: date, known_at: datetime | None = None) -> Figures:
    """Run every query the page needs, as of one date and as known at one time."""
    none = queries.Filters()
    return Figures(
        as_of=as_of,
        known_at=known_at,
        totals=queries.liabilities(engine, as_of, none, known_at),
        by_program=queries.liabilities(engine, as_of, none, known_at, by="program"),
        by_bearer=queries.liabilities(engine, as_of, none, known_at, by="bearer"),
        by_project=queries.liabilities(engine, as_of, none, known_at, by="project"),
        buffer=queries.buffer(engine, as_of, None, known_at),
        runoff=queries.runoff(engine, as_of, None, known_at),
        balance_points=balance_points(engine, as_of, known_at),
    )


def balance_points(
    engine: Engine, as_of: date, known_at: datetime | None = None
) -> list[tuple[date, int, int]]:
    """(date, buffer balance, exposure) yearly from the first issuance to as_of + a few years.

    Each point is ``queries.buffer`` at that date, so the as-of point equals the headline.
    """
    first = earliest_issuance(engine)
    if first is None:
        return []
    start = min(first, as_of)
    days = {start, as_of}
    days.update(date(y, 1, 1) for y in range(start.year + 1, as_of.year + HORIZON_YEARS + 1))
    points = []
    for day in sorted(days):
        b = queries.buffer(engine, day, None, known_at)
        points.append((day, int(b["balance"]), int(b["exposure"])))
    return points


def earliest_issuance(engine: Engine) -> date | None:
    with engine.connect() as conn:
        first = conn.execute(select(func.min(vintages.c.issued_on))).scalar()
    return date.fromisoformat(first) if first else None


def program_exposure(by_program: Mapping[str, Any]) -> dict[str, int]:
    return {name: int(g["exposure"]) for name, g in by_program.get("groups", {}).items()}


def bearer_exposure(by_bearer: Mapping[str, Any]) -> dict[str, int]:
    """Pool-borne exposure per pool, plus exposure transferred to each fund or insurer."""
    out = {name: int(g["exposure"]) for name, g in by_bearer.get("groups", {}).items()
           if g["exposure"]}
    for fund, amount in by_bearer.get("transferred", {}).items():
        label = f"{fund} (transferred)"
        out[label] = out.get(label, 0) + int(amount)
    return out


# ---------------------------------------------------------------------- formatting


def esc(value: Any) -> str:
    """Text from the ledger, made inert in HTML (tags, quotes and ampersands)."""
    return html.escape(str(value), quote=True)


def tonnes(value: int) -> str:
    return f"{value:,}"


def ratio(value: float | None) -> str:
    """Coverage as a percentage; an em dash when the pool bears no exposure."""
    return "—" if value is None else f"{value:.1%}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric_from: int = 1) -> str:
    """A table whose cells are escaped; columns from ``numeric_from`` are right-aligned."""
    def cls(i: int) -> str:
        return ' class="num"' if i >= numeric_from else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="none">Nothing recorded.</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card(label: str, value: str, unit: str, explain: str, ident: str, detail: str = "") -> str:
    """A headline figure; ``explain`` is trusted markup whose figures the caller escaped."""
    return (
        f'<div class="card" id="{esc(ident)}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}'
        + (f' <span class="unit">{esc(unit)}</span>' if unit else "")
        + "</div>"
        + (f'<div class="detail">{esc(detail)}</div>' if detail else "")
        + f'<p class="explain">{explain}</p></div>'
    )


def chart(src: str, alt: str) -> str:
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}"></figure>'


# ---------------------------------------------------------------------- the page


def render(figures: Figures, chart_names: Mapping[str, str], stress: dict[str, Any] | None) -> str:
    """The whole page as one string (inline CSS, no scripts, no network)."""
    as_of = figures.as_of.isoformat()
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    known = (f"what the ledger had recorded by {figures.known_at.isoformat()}"
             if figures.known_at else
             f"everything recorded in the ledger when this page was generated ({generated})")
    sections = [
        _headline(figures),
        _runoff(figures, chart_names["runoff"]),
        _balance(figures, chart_names["balance"]),
        _by_program(figures, chart_names["program"]),
        _by_bearer(figures, chart_names["bearer"]),
        _by_project(figures),
        _stress(stress),
        _glossary(),
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Permanence report as of {esc(as_of)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>Permanence report</h1>
<p class="lede">The position of the buffer pools as of <strong>{esc(as_of)}</strong>,
from {esc(known)}.
All quantities are in tonnes of CO<sub>2</sub>e; one credit is one tonne.</p>
</header>
{"".join(sections)}
</main>
</body>
</html>
"""


def _headline(f: Figures) -> str:
    t, b = f.totals, f.buffer
    transferred = sum(t["transferred"].values())
    due = t["due"]
    cards = [
        card("Exposure", tonnes(t["exposure"]), "tCO2e",
             "Credits already issued that the pools guarantee must stay stored. If carbon "
             "returns to the air before a credit's monitoring period ends, the loss must be "
             "made good. Retired credits still count: a retired credit must stay permanent too."
             + (f" A further {esc(tonnes(transferred))} tCO2e has been transferred to "
                "permanence funds or insurers and is no longer the pools' to bear."
                if transferred else ""),
             "exposure"),
        card("Due liability", tonnes(t["due_total"]), "tCO2e",
             "Reversals already recorded but not yet compensated, by who owes them. Project "
             "proponents owe avoidable reversals (harvest, negligence, missed verification); "
             "the pools owe unavoidable ones (wildfire, storm) and proponents' defaults.",
             "due",
             detail=" · ".join(f"{name} {tonnes(due.get(key, 0))}" for key, name in (
                 ("proponent", "proponents"), ("pool", "pools"), ("fund", "funds"),
                 ("jurisdiction", "jurisdictions"), ("insurer", "insurers"))
                 if due.get(key) or key in ("proponent", "pool"))),
        card("Buffer balance", tonnes(b["balance"]), "tCO2e",
             f"Credits held in reserve: {esc(tonnes(b['contributions']))} contributed by "
             f"projects, minus {esc(tonnes(b['cancelled']))} cancelled to compensate "
             f"reversals, minus {esc(tonnes(b['on_hold']))} on hold.",
             "balance"),
        card("Coverage ratio", ratio(b["coverage_ratio"]), "",
             "Buffer balance, less what the pools owe, divided by the exposure the pools "
             "bear. 25% means one reserve credit for every four credits guaranteed. Whether "
             "that is enough is what a stress test answers.",
             "coverage"),
    ]
    if b["shortfall"]:
        cards.append(card(
            "Shortfall", tonnes(b["shortfall"]), "tCO2e",
            "Buffer draws larger than what the pools held: the pools cancelled all they had "
            "and still owe the rest, which later contributions settle as they arrive.",
            "shortfall"))
    rows = [
        (p["pool"], tonnes(p["balance"]), tonnes(p["owed"]), tonnes(p["shortfall"]),
         tonnes(p["exposure"]), ratio(p["coverage_ratio"]),
         tonnes(p["contributions"]), tonnes(p["cancelled"]), tonnes(p["on_hold"]))
        for p in b["pools"]
    ]
    return (
        '<section id="headline"><h2>Headline figures</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
        "<h3>Coverage by pool</h3>"
        "<p>Each pool backs the vintages of its programs. A pool with a low coverage ratio "
        "has fewer reserve credits for each credit it guarantees; a dash means the pool "
        "guarantees nothing at this date.</p>"
        + table(("Pool", "Buffer balance", "Owed by the pool", "Shortfall", "Exposure borne",
                 "Coverage ratio", "Contributed", "Cancelled", "On hold"), rows)
        + "</section>"
    )


def _runoff(f: Figures, src: str) -> str:
    r = f.runoff
    rows = [(y["year"], tonnes(y["exposure_ending"])) for y in r["years"]]
    return (
        '<section id="runoff"><h2>Run-off ladder</h2>'
        "<p>When today's exposure leaves the books. Each vintage is monitored for a fixed "
        "period (40 years under the ICVCM floor, 100 under CAR and CARB); when it ends, the "
        "pool no longer guarantees those credits. A tall bar is a year in which a large "
        f"guarantee expires. Total still to run off: <strong>{esc(tonnes(r['total']))}"
        "</strong> tCO2e.</p>"
        + chart(src, "Bar chart of exposure ending in each future year")
        + table(("Year the period ends", "Exposure ending (tCO2e)"), rows)
        + "</section>"
    )


def _balance(f: Figures, src: str) -> str:
    rows = [
        (d.isoformat() + (" (projection)" if d > f.as_of else ""), tonnes(bal), tonnes(exp),
         ratio(round(bal / exp, 6) if exp else None))
        for d, bal, exp in f.balance_points
    ]
    return (
        '<section id="buffer-over-time"><h2>Buffer balance over time</h2>'
        "<p>The reserve (green) against the exposure it backs (red), yearly from the first "
        f"issuance. Dates after {esc(f.as_of.isoformat())} (shaded) show what is recorded "
        "today rolled forward: monitoring periods that end, and no new issuances or "
        "reversals.</p>"
        + chart(src, "Line chart of buffer balance and exposure by year")
        + table(("Date", "Buffer balance", "Exposure", "Coverage ratio"), rows)
        + "</section>"
    )


def _by_program(f: Figures, src: str) -> str:
    rows = [
        (name, tonnes(g["exposure"]), tonnes(sum(g["transferred"].values())),
         tonnes(g["due"].get("proponent", 0)), tonnes(g["due"].get("pool", 0)))
        for name, g in sorted(f.by_program.get("groups", {}).items(),
                              key=lambda kv: (-kv[1]["exposure"], kv[0]))
    ]
    return (
        '<section id="exposure-by-program"><h2>Exposure by program</h2>'
        "<p>Which crediting programs the guaranteed credits come from, and what their "
        "projects and pools owe today.</p>"
        + chart(src, "Bar chart of exposure by program")
        + table(("Program", "Exposure", "Transferred", "Due by proponents", "Due by pools"), rows)
        + "</section>"
    )


def _by_bearer(f: Figures, src: str) -> str:
    rows = sorted(bearer_exposure(f.by_bearer).items(), key=lambda kv: (-kv[1], kv[0]))
    return (
        '<section id="exposure-by-bearer"><h2>Exposure by bearer</h2>'
        "<p>Who would have to make good a reversal: the pool by default, a permanence fund "
        "or insurer once the liability has been transferred to it.</p>"
        + chart(src, "Bar chart of exposure by bearer")
        + table(("Bearer", "Exposure (tCO2e)"), [(n, tonnes(a)) for n, a in rows])
        + "</section>"
    )


def _by_project(f: Figures) -> str:
    groups = sorted(f.by_project.get("groups", {}).items(),
                    key=lambda kv: (-kv[1]["exposure"], -kv[1]["due_total"], kv[0]))
    groups = [(n, g) for n, g in groups if g["exposure"] or g["due_total"]
              or g["transferred"]]
    shown, rest = groups[:TOP_PROJECTS], groups[TOP_PROJECTS:]
    rows = [(n, tonnes(g["exposure"]), tonnes(sum(g["transferred"].values())),
             tonnes(g["due"].get("proponent", 0)), tonnes(g["due"].get("pool", 0)))
            for n, g in shown]
    if rest:
        rows.append((f"{len(rest):,} more projects",
                     tonnes(sum(g["exposure"] for _, g in rest)),
                     tonnes(sum(sum(g["transferred"].values()) for _, g in rest)),
                     tonnes(sum(g["due"].get("proponent", 0) for _, g in rest)),
                     tonnes(sum(g["due"].get("pool", 0) for _, g in rest))))
    return (
        '<section id="exposure-by-project"><h2>Largest projects</h2>'
        f"<p>The projects with the most exposure (up to {TOP_PROJECTS} by name), what has "
        "been transferred to funds or insurers, and what is owed today.</p>"
        + table(("Project", "Exposure", "Transferred", "Due by proponent", "Due by pool"), rows)
        + "</section>"
    )


def _stress(stress: Mapping[str, Any] | None) -> str:
    head = '<section id="stress"><h2>Latest stress test</h2>'
    if not stress:
        return (
            head + '<p class="none">No stress test recorded.</p>'
            "<p>A stress test simulates many possible futures (fires, storms, defaults) and "
            "asks how often the buffer would run out. Programs should run one at least every "
            "five years and publish the parameters and results.</p></section>"
        )
    rows: list[tuple[str, str]] = []
    for key, value in stress.items():
        if isinstance(value, Mapping):
            if all(not isinstance(v, (Mapping, list, tuple)) for v in value.values()):
                rows += [(f"{key} {k}", _stress_value(v)) for k, v in value.items()]
        elif not isinstance(value, (list, tuple)):
            rows.append((str(key), _stress_value(value)))
    return (
        head + "<p>How often, across the simulated futures, the buffer ran out, and how large "
        "the losses were (VaR: the loss not exceeded at the given confidence; expected "
        "shortfall: the average loss beyond it).</p>"
        + table(("Measure", "Value"), rows, numeric_from=1) + "</section>"
    )


def _stress_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.0f}"
    return str(value)


def _glossary() -> str:
    terms = [
        ("Vintage", "The credits issued to one project in one issuance."),
        ("Reversal", ("Stored carbon went back to the atmosphere after credits were issued "
                      "for it.")),
        ("Avoidable / unavoidable", ("Within the proponent's control (harvest, negligence, "
                                     "stopping monitoring) or outside it (wildfire, storm, "
                                     "drought).")),
        ("Buffer pool", ("Credits withheld from many projects, cancelled to make good "
                         "unavoidable reversals.")),
        ("Monitoring period", "How long each vintage is watched and guaranteed."),
    ]
    items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in terms)
    return f'<section id="glossary"><h2>Terms used</h2><dl>{items}</dl></section>'


CSS = """
body{margin:0;background:#f6f7f5;color:#1d2320;font:16px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1000px;margin:0 auto;padding:24px 20px 60px}
h1{margin:0 0 4px;font-size:2rem}h2{margin:40px 0 8px;border-bottom:2px solid #2a7f62;
padding-bottom:4px}h3{margin:24px 0 4px}
.lede{color:#44504a}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:14px}
.card{background:#fff;border:1px solid #d7ddd9;border-radius:8px;padding:14px 16px}
.card .label{font-size:.85rem;text-transform:uppercase;letter-spacing:.04em;color:#56635c}
.card .value{font-size:1.9rem;font-weight:650;font-variant-numeric:tabular-nums}
.card .unit{font-size:1rem;font-weight:400;color:#56635c}
.card .detail{font-size:.95rem;font-variant-numeric:tabular-nums}
.explain{font-size:.9rem;color:#3a4540;margin:6px 0 0}
figure{margin:12px 0}figure img{max-width:100%;height:auto;background:#fff;
border:1px solid #d7ddd9;border-radius:6px}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0;font-size:.92rem}
th,td{border:1px solid #d7ddd9;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1ef}.num{text-align:right;font-variant-numeric:tabular-nums}
td.none,.none{color:#56635c;font-style:italic}
dt{font-weight:600;margin-top:8px}dd{margin:0 0 0 16px}
"""
