"""Commands that record facts on a vintage: issue, verify, reversal, compensate, retire,
cancel, transfer, insure, label. Each one parses its text, calls one application method and
prints what was recorded."""

from __future__ import annotations

import typer

from permanence.cli.app import JSON, app, runtime
from permanence.cli.choices import Route, TransfereeKind
from permanence.cli.errors import exits
from permanence.cli.output import due_text, emit
from permanence.parsing import (
    UsageError,
    required_date,
    to_date,
    to_quantity,
    to_serials,
    to_year,
)

ROUTE = typer.Option(..., help="Route by which the reversal is made good.")
KIND = typer.Option(TransfereeKind.fund, help="Who takes the liability on.")


@app.command()
@exits
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


@app.command()
@exits
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


@app.command()
@exits
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
    with runtime() as rt:
        result = rt.app.record_reversal(
            vintage, required_date(on, "on"), to_quantity(quantity), cause,
            negligence, wilful, within_control,
        )
    emit(result, as_json, lambda d: f"reversal {d['reversal_id']} recorded: {d['classification']}")


@app.command()
@exits
def compensate(
    vintage: str = typer.Option(..., help="Vintage id."),
    reversal_id: str = typer.Option(..., "--reversal", help="Reversal id (R1, L2, ...)."),
    by: Route = ROUTE,
    quantity: str = typer.Option(..., help="Tonnes compensated."),
    on: str = typer.Option(..., help="Compensation date."),
    reference: str = typer.Option(None, help="Reference (serials surrendered, claim number)."),
    as_json: bool = JSON,
) -> None:
    """Record compensation of a reversal (never above what is still due)."""
    with runtime() as rt:
        rt.app.compensate(vintage, reversal_id, by.value, to_quantity(quantity),  # type: ignore[arg-type]
                          required_date(on, "on"), reference)
        summary = rt.app.show(vintage, required_date(on, "on"))
    emit({"vintage_id": vintage, "reversal_id": reversal_id, "due": summary["due"]}, as_json,
         lambda d: f"compensated; {due_text(d['due'])}")


@app.command()
@exits
def retire(
    vintage: str = typer.Option(..., help="Vintage id."),
    quantity: str = typer.Option(..., help="Tonnes retired."),
    on: str = typer.Option(..., help="Retirement date."),
    beneficiary: str = typer.Option(None, help="Beneficiary of the claim."),
    as_json: bool = JSON,
) -> None:
    """Retire credits (retirement does not reduce exposure)."""
    tonnes = to_quantity(quantity)
    with runtime() as rt:
        rt.app.retire(vintage, tonnes, required_date(on, "on"), beneficiary)
    emit({"vintage_id": vintage, "retired": tonnes}, as_json, lambda d: f"retired {d['retired']:,}")


@app.command()
@exits
def cancel(
    vintage: str = typer.Option(..., help="Vintage id."),
    quantity: str = typer.Option(..., help="Tonnes cancelled."),
    on: str = typer.Option(..., help="Cancellation date."),
    reason: str = typer.Option(None, help="Reason."),
    invalidation: bool = typer.Option(False, "--invalidation", help="Record as an invalidation."),
    as_json: bool = JSON,
) -> None:
    """Cancel or invalidate credits (they leave the exposure)."""
    tonnes = to_quantity(quantity)
    with runtime() as rt:
        action = rt.app.invalidate if invalidation else rt.app.cancel
        action(vintage, tonnes, required_date(on, "on"), reason)
    emit({"vintage_id": vintage, "quantity": tonnes}, as_json,
         lambda d: f"{'invalidated' if invalidation else 'cancelled'} {d['quantity']:,}")


@app.command()
@exits
def transfer(
    vintage: str = typer.Option(..., help="Vintage id."),
    to: str = typer.Option(..., help="Fund, insurer or jurisdiction."),
    kind: TransfereeKind = KIND,
    on: str = typer.Option(..., help="Transfer date."),
    term_years: int = typer.Option(
        None, "--term-years", help="A fund taking the vintage on after its period, for N years."),
    monitoring: bool = typer.Option(
        False, "--monitoring", help="The monitoring obligation moves too (its lapses then)."),
    as_json: bool = JSON,
) -> None:
    """Transfer a vintage's liability to a permanence fund, insurer or jurisdiction."""
    with runtime() as rt:
        rt.app.transfer_liability(vintage, to, kind.value, required_date(on, "on"),  # type: ignore[arg-type]
                                  term_years, monitoring)
    emit({"vintage_id": vintage, "to": to, "kind": kind.value, "term_years": term_years}, as_json,
         lambda d: f"liability transferred to {to}"
         + (f" for {term_years} years after the period" if term_years else ""))


@app.command()
@exits
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


@app.command()
@exits
def label(
    vintage: str = typer.Option(..., help="Vintage id."),
    name: str = typer.Option("CCP-I", "--label", help="Disclosed label."),
    innovation: str = typer.Option(..., help="The innovation, disclosed."),
    on: str = typer.Option(..., help="Date."),
    as_json: bool = JSON,
) -> None:
    """Label credits from an innovation-sandbox pilot."""
    with runtime() as rt:
        rt.app.label_sandbox(vintage, name, innovation, required_date(on, "on"))
    emit({"vintage_id": vintage, "label": name}, as_json, lambda d: f"labelled {name}")
