"""Commands that read: show, history, profiles, liabilities, buffer, runoff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from permanence.cli.app import (
    AS_OF,
    JSON,
    KNOWN_AT,
    PLOT,
    app,
    due_text,
    emit,
    guarded,
    runtime,
    settings,
    today,
)
from permanence.parsing import UsageError, to_date, to_timestamp


@app.command()
def show(
    vintage_id: str = typer.Argument(..., help="Vintage id."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Show a vintage as of a date: period end, verification due, status, exposure, dues."""

    def body() -> None:
        day = to_date(as_of, "as-of") or today()
        kt = to_timestamp(known_at)
        with runtime() as rt:
            data = rt.app.show(vintage_id, day, kt)
        emit(data, as_json)

    guarded(body)


@app.command()
def history(
    vintage_id: str = typer.Argument(..., help="Vintage id."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """The vintage's audit trail: each event, when it happened and was recorded, by whom."""
    from ledger.replay import replay

    def body() -> None:
        day = to_date(as_of, "as-of")
        kt = to_timestamp(known_at)
        with runtime() as rt:
            full_id = rt.app.resolve(vintage_id)
            _, trail = replay(rt.app.stream(full_id), day, kt)
        emit({"vintage_id": full_id, "events": trail}, as_json, history_text)

    guarded(body)


def history_text(data: dict[str, Any]) -> str:
    lines = [f"vintage {data['vintage_id']}"]
    for e in data["events"]:
        detail = ", ".join(f"{k}={v}" for k, v in e["data"].items() if v not in (None, {}, []))
        s = e["state"]
        lines.append(
            f"  v{e['version']:<3} {e['on']}  {e['event']:<20} {detail}\n"
            f"        recorded {e['recorded_at'][:19]} by {e['recorded_by'] or '-'}; "
            f"status {s['status']}, exposure {s['exposure']:,}, {due_text(s['due'])}"
        )
    return "\n".join(lines)


@app.command()
def profiles(
    name: str = typer.Argument(None, help="Profile name (omit to list)."),
    as_json: bool = JSON,
) -> None:
    """List program profiles, or show one with each rule's source and confidence."""

    def body() -> None:
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
            emit(data, as_json, lambda d: "\n".join(
                f"{p['name']:<15} {p['version']:<8} pool={p['pool']:<15} "
                f"{'CCP ' if p['ccp_aligned'] else '    '}{p['title']}" for p in d))
        else:
            p = catalog.get(name)
            data = p.model_dump(mode="json")
            emit(data, as_json, lambda d: f"{p.name} {p.version}: {p.title}\n" + "\n".join(
                f"  {r:<28} {json.dumps(v):<22} [{c}] {src}" for r, v, c, src in p.rule_table()))

    guarded(body)


# ---------------------------------------------------------------------- trustee queries


@app.command()
def liabilities(
    program: str = typer.Option(None, help="Only this program."),
    project: str = typer.Option(None, help="Only this project."),
    pool: str = typer.Option(None, help="Only this pool."),
    by: str = typer.Option(None, help="Group by program|project|pool|vintage-year|bearer."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Outstanding liabilities: exposure and due liability by obligor, as of a date."""
    from projections.queries import GROUP_BY_CHOICES, Filters
    from projections.queries import liabilities as query

    def body() -> None:
        if by is not None and by not in GROUP_BY_CHOICES:
            raise UsageError(f"by: {by!r} is not one of {', '.join(GROUP_BY_CHOICES)}")
        day = to_date(as_of, "as-of") or today()
        kt = to_timestamp(known_at)
        with runtime() as rt:
            data = query(rt.engine, day, Filters(program, project, pool), kt, by)
        emit(data, as_json)

    guarded(body)


@app.command()
def buffer(
    pool: str = typer.Option(None, help="Only this pool."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Buffer pool balance (contributions - cancelled - on hold) and coverage ratio."""
    from projections.queries import buffer as query

    def body() -> None:
        day = to_date(as_of, "as-of") or today()
        with runtime() as rt:
            data = query(rt.engine, day, pool, to_timestamp(known_at))
        emit(data, as_json)

    guarded(body)


@app.command()
def runoff(
    pool: str = typer.Option(None, help="Only this pool."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    plot: Path = PLOT,
    as_json: bool = JSON,
) -> None:
    """Exposure ending in each future year (the run-off ladder), by bearer."""
    from projections.queries import runoff as query

    def body() -> None:
        day = to_date(as_of, "as-of") or today()
        kt = to_timestamp(known_at)
        with runtime() as rt:
            data = query(rt.engine, day, pool, kt)
        if plot is not None:
            from projections.charts import runoff_chart

            runoff_chart(data, plot)
            data["plot"] = str(plot)
        emit(data, as_json, lambda d: "\n".join(
            [f"run-off as of {d['as_of']}" + (f", pool {d['pool']}" if d["pool"] else "")]
            + [f"  {y['year']}  {y['exposure_ending']:>15,}  "
               + ", ".join(f"{b} {a:,}" for b, a in y["by_bearer"].items()) for y in d["years"]]
            + [f"  total {d['total']:>14,}"]))

    guarded(body)
