"""The ``permanence`` command line: a thin face over the application and the queries.

It parses text into values, calls one application method or query, and prints the result
readably or as JSON (``--json``). Malformed input exits 2, a rejected command exits 1;
either way one line names the problem and nothing is written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import typer
from eventsourcing.persistence import PersistenceError
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import LedgerError
from permanence.config import ConfigError, Settings
from permanence.parsing import (
    UsageError,
    check_arguments,
    to_date,
    to_quantity,
    to_serials,
    to_timestamp,
    to_year,
)
from permanence.runtime import LedgerNotFound, Runtime

T = TypeVar("T")

app = typer.Typer(
    name="permanence",
    help="Event-sourced monitoring of carbon-credit permanence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
projections_app = typer.Typer(help="Read-model maintenance.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")

JSON = typer.Option(False, "--json", help="Print JSON.")
AS_OF = typer.Option(None, "--as-of", help="Business date YYYY-MM-DD (default today).")
PLOT = typer.Option(None, "--plot", help="Write the run-off ladder as PNG.")
KNOWN_AT = typer.Option(None, "--known-at", help="Only what had been recorded by this time.")


class State:
    db: str | None = None
    command: str | None = None


_state = State()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", envvar="PERMANENCE_DB", help="SQLite path or postgresql:// URL."),
) -> None:
    _state.db = db
    _state.command = ctx.invoked_subcommand


def settings() -> Settings:
    return Settings(db=_state.db) if _state.db else Settings()


CREATING_COMMANDS = frozenset({"issue", "import"})
"""Commands that may create a ledger; every other command refuses a store holding none."""


@contextmanager
def runtime(create: bool | None = None) -> Iterator[Runtime]:
    """The runtime of a command; only :data:`CREATING_COMMANDS` create a missing ledger."""
    if create is None:
        create = _state.command in CREATING_COMMANDS
    rt = Runtime(settings(), create=create)
    try:
        with rt.app.acting_as(rt.settings.actor or "cli"):
            yield rt
    finally:
        if rt.behind is not None:
            typer.echo(f"warning: recorded, but the read models are behind ({rt.behind}); "
                       "`permanence projections status` tells more", err=True)
        rt.close()


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body, turning known errors into one line and an exit code."""
    try:
        return fn()
    except (UsageError, ConfigError) as e:
        fail(str(e), 2)
    except (LedgerError, LedgerNotFound) as e:
        fail(str(e), 1)
    except (PersistenceError, SQLAlchemyError, sqlite3.Error) as e:
        # a locked, read-only or unreachable store: one line, and the transaction rolled back
        fail(f"database: {database_problem(e)}", 1)
    raise AssertionError("unreachable")


def database_problem(error: BaseException) -> str:
    """The first line of a store's error, naming the setting when a lock wait timed out."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "lock timeout" in first:
        first += " (PERMANENCE_LOCK_TIMEOUT_SECONDS)"
    return first


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(human(data) if human else _plain(data))


def due_text(due: dict[str, int]) -> str:
    """``due pool 4,000, proponent 500``, or ``nothing due``: the obligors that owe."""
    owing = [f"{k} {v:,}" for k, v in due.items() if v]
    return "due " + ", ".join(owing) if owing else "nothing due"


def _plain(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for k, v in data.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_plain(v, indent + 1))
            elif isinstance(v, int) and ("year" in k or k == "version"):
                lines.append(f"{pad}{k}: {v}")
            else:
                lines.append(f"{pad}{k}: {_fmt(v)}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(
            (f"{pad}-\n{_plain(x, indent + 1)}" if isinstance(x, (dict, list)) else f"{pad}- {_fmt(x)}")
            for x in data
        )
    return f"{pad}{_fmt(data)}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def today() -> date:
    """The business date: ``PERMANENCE_TODAY`` when set, else the machine's date."""
    return settings().today_source()()


def required_date(text: str, field: str) -> date:
    value = to_date(text, field)
    assert value is not None
    return value


# ---------------------------------------------------------------------- ledger commands


@app.command()
def issue(
    program: str = typer.Option(..., help="Program profile name."),
    project: str = typer.Option(..., help="Project identifier."),
    vintage_year: str = typer.Option(None, "--vintage-year", help="Vintage year."),
    quantity: str = typer.Option(..., help="Credits issued to the project (tonnes)."),
    buffer: str = typer.Option("0", help="Credits withheld for the pooled buffer."),
    on: str = typer.Option(..., help="Issuance date YYYY-MM-DD."),
    serials: str = typer.Option(None, help="Serial range FIRST-LAST."),
    crediting_start: str = typer.Option(None, "--crediting-start", help="First crediting-period start."),
    crediting_end: str = typer.Option(None, "--crediting-end", help="Crediting-period end."),
    pool: str = typer.Option(None, help="Pool (default: the profile's pool)."),
    risk_class: str = typer.Option(None, "--risk-class", help="Reversal-risk class."),
    as_json: bool = JSON,
) -> None:
    """Issue a vintage: its stream and its permanence clock begin here."""

    def body() -> None:
        first, last = to_serials(serials)
        spec = {
            "program": program,
            "project": project,
            "vintage_year": to_year(vintage_year),
            "quantity": to_quantity(quantity),
            "buffer": to_quantity(buffer, "buffer", allow_zero=True),
            "on": required_date(on, "on"),
            "serial_first": first,
            "serial_last": last,
            "crediting_start": to_date(crediting_start, "crediting-start"),
            "crediting_end": to_date(crediting_end, "crediting-end"),
            "pool": pool,
            "risk_class": risk_class,
        }
        with runtime() as rt:
            vid = rt.app.issue(**spec)
        emit({"vintage_id": vid}, as_json, lambda d: f"issued vintage {d['vintage_id']}")

    guarded(body)


@app.command()
def verify(
    project: str = typer.Option(None, help="Verify every monitored vintage of a project."),
    vintage: str = typer.Option(None, help="Verify one vintage."),
    on: str = typer.Option(..., help="Verification date YYYY-MM-DD."),
    period_start: str = typer.Option(None, "--period-start", help="Monitoring period start."),
    period_end: str = typer.Option(None, "--period-end", help="Monitoring period end."),
    verifier: str = typer.Option(None, help="Verification body."),
    as_json: bool = JSON,
) -> None:
    """Record a verification for a vintage, or for all monitored vintages of a project."""

    def body() -> None:
        if (project is None) == (vintage is None):
            raise UsageError("give exactly one of --project or --vintage")
        day = required_date(on, "on")
        start, end = to_date(period_start, "period-start"), to_date(period_end, "period-end")
        with runtime() as rt:
            if vintage is not None:
                rt.app.verify(vintage, day, start, end, verifier)
                ids = [vintage]
            else:
                ids = rt.app.verify_project(project, day, verifier)
        emit({"verified": ids}, as_json, lambda d: f"verified {len(d['verified'])} vintage(s)")

    guarded(body)


@app.command()
def reversal(
    vintage: str = typer.Option(..., help="Vintage id."),
    on: str = typer.Option(..., help="Reversal date."),
    quantity: str = typer.Option(..., help="Tonnes reversed."),
    cause: str = typer.Option(..., help="Cause (wildfire, harvest, model-error, ...)."),
    negligence: bool = typer.Option(False, "--negligence", help="Due to negligence."),
    wilful: bool = typer.Option(False, "--wilful", help="Wilful intent."),
    within_control: bool = typer.Option(False, "--within-control", help="Within the proponent's control."),
    as_json: bool = JSON,
) -> None:
    """Record a reversal; prints its id and classification."""

    def body() -> None:
        with runtime() as rt:
            result = rt.app.record_reversal(
                vintage, required_date(on, "on"), to_quantity(quantity), cause,
                negligence, wilful, within_control,
            )
        emit(result, as_json, lambda d: f"reversal {d['reversal_id']} recorded: {d['classification']}")

    guarded(body)


ROUTES = ("buffer", "proponent", "insurance", "deduction", "fund", "jurisdiction")


@app.command()
def compensate(
    vintage: str = typer.Option(..., help="Vintage id."),
    reversal_id: str = typer.Option(..., "--reversal", help="Reversal id (R1, L2, ...)."),
    by: str = typer.Option(
        ..., help="Route: buffer|proponent|insurance|deduction|fund|jurisdiction."),
    quantity: str = typer.Option(..., help="Tonnes compensated."),
    on: str = typer.Option(..., help="Compensation date."),
    reference: str = typer.Option(None, help="Reference (serials surrendered, claim number)."),
    as_json: bool = JSON,
) -> None:
    """Record compensation of a reversal (never above what is still due)."""

    def body() -> None:
        if by not in ROUTES:
            raise UsageError(f"by: {by!r} is not one of {', '.join(ROUTES)}")
        with runtime() as rt:
            rt.app.compensate(vintage, reversal_id, by, to_quantity(quantity),  # type: ignore[arg-type]
                              required_date(on, "on"), reference)
            summary = rt.app.show(vintage, required_date(on, "on"))
        emit({"vintage_id": vintage, "reversal_id": reversal_id, "due": summary["due"]}, as_json,
             lambda d: f"compensated; {due_text(d['due'])}")

    guarded(body)


@app.command()
def retire(
    vintage: str = typer.Option(..., help="Vintage id."),
    quantity: str = typer.Option(..., help="Tonnes retired."),
    on: str = typer.Option(..., help="Retirement date."),
    beneficiary: str = typer.Option(None, help="Beneficiary of the claim."),
    as_json: bool = JSON,
) -> None:
    """Retire credits (retirement does not reduce exposure)."""

    def body() -> None:
        with runtime() as rt:
            rt.app.retire(vintage, to_quantity(quantity), required_date(on, "on"), beneficiary)
        emit({"vintage_id": vintage, "retired": int(quantity)}, as_json, lambda d: f"retired {d['retired']:,}")

    guarded(body)


@app.command()
def cancel(
    vintage: str = typer.Option(..., help="Vintage id."),
    quantity: str = typer.Option(..., help="Tonnes cancelled."),
    on: str = typer.Option(..., help="Cancellation date."),
    reason: str = typer.Option(None, help="Reason."),
    invalidation: bool = typer.Option(False, "--invalidation", help="Record as an invalidation."),
    as_json: bool = JSON,
) -> None:
    """Cancel or invalidate credits (they leave the exposure)."""

    def body() -> None:
        with runtime() as rt:
            action = rt.app.invalidate if invalidation else rt.app.cancel
            action(vintage, to_quantity(quantity), required_date(on, "on"), reason)
        emit({"vintage_id": vintage, "quantity": int(quantity)}, as_json, lambda d: "recorded")

    guarded(body)


@app.command()
def transfer(
    vintage: str = typer.Option(..., help="Vintage id."),
    to: str = typer.Option(..., help="Fund, insurer or jurisdiction."),
    kind: str = typer.Option("fund", help="fund|insurer|jurisdiction."),
    on: str = typer.Option(..., help="Transfer date."),
    term_years: int = typer.Option(
        None, "--term-years", help="A fund taking the vintage on after its period, for N years."),
    monitoring: bool = typer.Option(
        False, "--monitoring", help="The monitoring obligation moves too (its lapses then)."),
    as_json: bool = JSON,
) -> None:
    """Transfer a vintage's liability to a permanence fund, insurer or jurisdiction."""

    def body() -> None:
        if kind not in ("fund", "insurer", "jurisdiction"):
            raise UsageError(f"kind: {kind!r} is not one of fund, insurer, jurisdiction")
        with runtime() as rt:
            rt.app.transfer_liability(vintage, to, kind, required_date(on, "on"),  # type: ignore[arg-type]
                                      term_years, monitoring)
        emit({"vintage_id": vintage, "to": to, "kind": kind, "term_years": term_years}, as_json,
             lambda d: f"liability transferred to {to}"
             + (f" for {term_years} years after the period" if term_years else ""))

    guarded(body)


@app.command()
def insure(
    vintage: str = typer.Option(None, help="Insure one vintage."),
    project: str = typer.Option(None, help="Insure every vintage of a project."),
    insurer: str = typer.Option(..., help="The insurer."),
    start: str = typer.Option(..., "--from", help="First day of cover YYYY-MM-DD."),
    until: str = typer.Option(..., "--to", help="Last day of cover (may be after the period)."),
    limit: str = typer.Option(..., help="Tonnes covered, per vintage."),
    as_json: bool = JSON,
) -> None:
    """Record insurance of unavoidable reversals over a term, up to a limit per vintage."""

    def body() -> None:
        if (project is None) == (vintage is None):
            raise UsageError("give exactly one of --project or --vintage")
        first, last = required_date(start, "from"), required_date(until, "to")
        tonnes = to_quantity(limit, "limit")
        with runtime() as rt:
            if vintage is not None:
                ids = rt.app.insure([vintage], insurer, first, last, tonnes)
            else:
                ids = rt.app.insure_project(project, insurer, first, last, tonnes)
        emit({"insured": ids, "insurer": insurer, "limit": tonnes}, as_json,
             lambda d: f"insured {len(d['insured'])} vintage(s) with {insurer}")

    guarded(body)


@app.command()
def label(
    vintage: str = typer.Option(..., help="Vintage id."),
    name: str = typer.Option("CCP-I", "--label", help="Disclosed label."),
    innovation: str = typer.Option(..., help="The innovation, disclosed."),
    on: str = typer.Option(..., help="Date."),
    as_json: bool = JSON,
) -> None:
    """Label credits from an innovation-sandbox pilot."""

    def body() -> None:
        with runtime() as rt:
            rt.app.label_sandbox(vintage, name, innovation, required_date(on, "on"))
        emit({"vintage_id": vintage, "label": name}, as_json, lambda d: f"labelled {name}")

    guarded(body)


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
        emit({"vintage_id": full_id, "events": trail}, as_json, _history_text)

    guarded(body)


def _history_text(data: dict[str, Any]) -> str:
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


@projections_app.command("rebuild")
def projections_rebuild(as_json: bool = JSON) -> None:
    """Rebuild the read models from the event log, in one transaction.

    Until it commits, readers see the old figures (SQLite) or wait (PostgreSQL); if it
    fails, the old ones stay.
    """

    def body() -> None:
        with runtime() as rt:
            n = rt.projector.rebuild()
        emit({"events_processed": n}, as_json, lambda d: f"rebuilt from {n:,} events")

    guarded(body)


@projections_app.command("status")
def projections_status(as_json: bool = JSON) -> None:
    """Projected position, lag behind the event log, and events the read models could not
    take (exit 1 when there are any)."""

    def body() -> None:
        rt = Runtime(settings(), catch_up_on_write=False, create=False)
        try:
            data = {"position": rt.projector.position(), "lag": rt.projector.lag(),
                    "failures": rt.projector.failures()}
        finally:
            rt.close()
        emit(data, as_json)
        if data["failures"]:
            raise typer.Exit(1)

    guarded(body)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from permanence.http import create_app

    def body() -> None:
        rt = Runtime(settings())  # opened first: an unreachable store is one line, not a trace
        try:
            uvicorn.run(create_app(rt.settings, rt), host=host, port=port, log_level="info")
        finally:
            rt.close()

    guarded(body)


def main() -> None:
    """Console-script entry point.

    Files and folders the ledger creates are its owner's only (umask 077: the SQLite file
    and its -wal/-shm, exports, reports); an argument carrying a control character or a
    terminal escape is refused before any command runs.
    """
    os.umask(0o077)
    try:
        check_arguments(sys.argv[1:])
        app()
    except (ConfigError, UsageError) as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


def _register_commands() -> None:
    from permanence.commands import register

    register()


_register_commands()


if __name__ == "__main__":
    # Run as ``python -m permanence.cli``: delegate to the imported module, whose ``app``
    # is the one the command modules registered on (this file runs here as ``__main__``).
    from permanence import cli as _cli  # noqa: PLW0406 - the imported module, see above

    _cli.main()
