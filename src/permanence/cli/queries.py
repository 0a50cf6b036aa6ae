"""Commands that read: show, history, profiles, liabilities, buffer, runoff.

Read commands never create a ledger. Their human output is tables (see
:mod:`permanence.cli.output`); ``--json`` prints the query's answer as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from permanence.cli.app import AS_OF, JSON, KNOWN_AT, PLOT, app, reader, runtime, settings, today
from permanence.cli.choices import GroupBy
from permanence.cli.errors import exits
from permanence.cli.output import Human, cell, due_text, emit, fields, table
from permanence.parsing import to_date, to_timestamp

BY = typer.Option(None, "--by", help="Group by this.")


@app.command()
@exits
def show(
    vintage_id: str = typer.Argument(..., help="Vintage id (or a unique prefix of 8+ characters)."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Show a vintage as of a date: period end, verification due, status, exposure, dues."""
    day = to_date(as_of, "as-of") or today()
    kt = to_timestamp(known_at)
    with runtime() as rt:
        data = rt.app.show(vintage_id, day, kt)
    emit(data, as_json, vintage_text)


VINTAGE_FIELDS = (
    "program", "pool", "project", "project_type", "vintage_year", "serials", "quantity",
    "buffer", "issued_on", "clock_start", "period_end", "last_verified", "verification_due",
    "lapse_arises_on", "status", "exposure", "still_exposed", "bearer", "outstanding_credits",
    "retired", "on_hold", "reversible",
)


def vintage_text(d: dict[str, Any]) -> Human:
    """A vintage: its figures, then what it owes, its reversals, cover and labels."""
    def value(key: str) -> Any:
        v = d.get(key)
        return str(v) if key == "vintage_year" and v is not None else v

    parts: list[Any] = [
        f"vintage {d['vintage_id']} as of {d['as_of']}",
        fields((k.replace("_", " "), value(k)) for k in VINTAGE_FIELDS if k in d),
        due_text(d["due"]),
    ]
    if d.get("reversals"):
        parts.append(table(
            [("reversal", "left"), ("on", "left"), ("quantity", "right"), ("cause", "left"),
             ("class", "left"), ("obligor", "left"), ("owed", "left"),
             ("compensated", "right"), ("outstanding", "right"), ("cured", "left")],
            ([r["reversal_id"], r["on"], r["quantity"], r["cause"], r["classification"],
              r["obligor"], r["owed"] or None, r["compensated"], r["outstanding"], r["cured_on"]]
             for r in d["reversals"]),
            title="reversals"))
    if d.get("insurance"):
        parts.append(table(
            [("insurer", "left"), ("from", "left"), ("until", "left"), ("limit", "right")],
            ([c["insurer"], c["from"], c["until"], c["limit"]] for c in d["insurance"]),
            title="insurance"))
    extra = [(k, d.get(k)) for k in ("transfer", "labels", "risk") if d.get(k)]
    rules = d.get("rules") or {}
    extra.append(("rules", f"{rules.get('profile', '-')} {rules.get('version', '')}".strip()))
    parts.append(fields(extra))
    return parts


@app.command()
@exits
def history(
    vintage_id: str = typer.Argument(..., help="Vintage id (or a unique prefix of 8+ characters)."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """The vintage's audit trail: each event, when it happened and was recorded, by whom."""
    from ledger.replay import replay

    day = to_date(as_of, "as-of")
    kt = to_timestamp(known_at)
    with runtime() as rt:
        full_id = rt.app.resolve(vintage_id)
        _, trail = replay(rt.app.stream(full_id), day, kt)
    emit({"vintage_id": full_id, "events": trail}, as_json, history_text)


def history_text(data: dict[str, Any]) -> str:
    lines = [f"vintage {data['vintage_id']}"]
    for e in data["events"]:
        detail = ", ".join(f"{k}={v if 'year' in k else cell(v)}"
                           for k, v in e["data"].items() if v not in (None, {}, []))
        s = e["state"]
        lines.append(
            f"  v{e['version']:<3} {e['on']}  {e['event']:<20} {detail}".rstrip() + "\n"
            f"        recorded {e['recorded_at'][:19]} by {e['recorded_by'] or '-'}; "
            f"status {s['status']}, exposure {s['exposure']:,}, {due_text(s['due'])}"
        )
    return "\n".join(lines)


@app.command()
@exits
def profiles(
    name: str = typer.Argument(None, help="Profile name (omit to list)."),
    as_json: bool = JSON,
) -> None:
    """List program profiles, or show one with each rule's source and confidence."""
    from ledger.profiles import ProfileCatalog

    s = settings()
    extra = sorted(s.profiles_dir.glob("*.json")) if s.profiles_dir else []
    catalog = ProfileCatalog.load(extra)
    if name is None:
        data: Any = [
            {"name": p.name, "version": p.version, "pool": p.pool_name,
             "ccp_aligned": p.ccp_aligned, "title": p.title}
            for p in catalog
        ]
        emit(data, as_json, lambda d: table(
            [("profile", "left"), ("version", "left"), ("pool", "left"), ("CCP", "left"),
             ("title", "left")],
            ([p["name"], p["version"], p["pool"], "CCP" if p["ccp_aligned"] else "", p["title"]]
             for p in d)))
    else:
        p = catalog.get(name)
        data = p.model_dump(mode="json")
        emit(data, as_json, lambda d: [
            f"{p.name} {p.version}: {p.title}",
            table([("rule", "left"), ("value", "left"), ("confidence", "left"),
                   ("source", "left")],
                  ([r, v, c, src] for r, v, c, src in p.rule_table())),
        ])


# ---------------------------------------------------------------------- trustee queries


@app.command()
@exits
def liabilities(
    program: str = typer.Option(None, help="Only this program."),
    project: str = typer.Option(None, help="Only this project."),
    pool: str = typer.Option(None, help="Only this pool."),
    by: GroupBy = BY,
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Outstanding liabilities: exposure and due liability by obligor, as of a date."""
    from projections.queries import Filters
    from projections.queries import liabilities as query

    day = to_date(as_of, "as-of") or today()
    kt = to_timestamp(known_at)
    with reader() as engine:
        data = query(engine, day, Filters(program, project, pool), kt,
                     by.value if by is not None else None)
    emit(data, as_json, liabilities_text)


def _scope(d: dict[str, Any]) -> str:
    """``as of 2035-01-01, known at ..., program x``: what a figure is about."""
    words = [f"as of {d['as_of']}"]
    if d.get("known_at"):
        words.append(f"known at {d['known_at']}")
    words += [f"{k} {v}" for k, v in (d.get("filters") or {}).items() if v is not None]
    return ", ".join(words)


def liabilities_text(d: dict[str, Any]) -> Human:
    """The totals, then one row per group when grouped."""
    parts: list[Any] = [f"liabilities {_scope(d)}", fields([
        ("exposure", d["exposure"]),
        ("due", due_text(d["due"]).removeprefix("due ")),
        ("due total", d["due_total"]),
        ("shortfall", d["shortfall"]),
        *([("shortfall by pool", d["shortfall_by_pool"])] if d.get("shortfall_by_pool") else []),
        *([("transferred", d["transferred"])] if d.get("transferred") else []),
        *([("non-reversible issued", d["non_reversible_issued"])]
          if d.get("non_reversible_issued") else []),
    ])]
    groups = d.get("groups")
    if groups is not None:
        obligors = list(d["due"])
        parts.append(table(
            [(d["by"].replace("_", " "), "left"), ("exposure", "right"),
             *((f"due {o}", "right") for o in obligors), ("due total", "right"),
             ("transferred", "right")],
            ([name, g["exposure"], *(g["due"].get(o, 0) for o in obligors), g["due_total"],
              sum(g.get("transferred", {}).values())] for name, g in groups.items()),
        ) if groups else f"no {d['by']} groups")
    return parts


@app.command()
@exits
def buffer(
    pool: str = typer.Option(None, help="Only this pool."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Buffer pool balance (contributions - cancelled - on hold) and coverage ratio."""
    from projections.queries import buffer as query

    day = to_date(as_of, "as-of") or today()
    with reader() as engine:
        data = query(engine, day, pool, to_timestamp(known_at))
    emit(data, as_json, buffer_text)


BUFFER_COLUMNS = (
    ("contributions", "contributions"), ("drawn", "drawn"), ("cancelled", "cancelled"),
    ("on hold", "on_hold"), ("balance", "balance"), ("owed", "owed"),
    ("shortfall", "shortfall"), ("exposure", "exposure"), ("coverage", "coverage_ratio"),
)


def buffer_text(d: dict[str, Any]) -> Human:
    """One row per pool; with several pools, a total row (each pool once)."""
    rows = d.get("pools") or []
    title = f"buffer {_scope(d)}"
    if not rows:
        return f"{title}: no pools"

    def figures(r: dict[str, Any]) -> list[Any]:
        return [r.get(k) for _, k in BUFFER_COLUMNS]

    total = ["all pools", *figures(d)] if len(rows) > 1 else None
    return [title, table(
        [("pool", "left"), *((h, "right") for h, _ in BUFFER_COLUMNS)],
        ([r["pool"], *figures(r)] for r in rows), total=total)]


@app.command()
@exits
def runoff(
    pool: str = typer.Option(None, help="Only this pool."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    plot: Path = PLOT,
    as_json: bool = JSON,
) -> None:
    """Exposure ending in each future year (the run-off ladder), by bearer."""
    from projections.runoff import runoff as query

    day = to_date(as_of, "as-of") or today()
    kt = to_timestamp(known_at)
    with reader() as engine:
        data = query(engine, day, pool, kt)
    if plot is not None:
        from projections.charts import runoff_chart

        runoff_chart(data, plot)
        data["plot"] = str(plot)
    emit(data, as_json, runoff_text)


def runoff_text(d: dict[str, Any]) -> Human:
    """A row per year with a column per bearer, and where the plot went."""
    title = f"run-off {_scope(d)}" + (f", pool {d['pool']}" if d.get("pool") else "")
    bearers = sorted({b for y in d["years"] for b in y["by_bearer"]})
    parts: list[Any] = [title]
    if d["years"]:
        parts.append(table(
            [("year", "left"), ("exposure ending", "right"), *((b, "right") for b in bearers)],
            ([str(y["year"]), y["exposure_ending"], *(y["by_bearer"].get(b, 0) for b in bearers)]
             for y in d["years"]),
            total=["total", d["total"], *(sum(y["by_bearer"].get(b, 0) for y in d["years"])
                                          for b in bearers)]))
    else:
        parts.append("no exposure left to run off")
    if d.get("plot"):
        parts.append(f"plot written to {d['plot']}")
    return parts
