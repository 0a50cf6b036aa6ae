"""The verifier's commands: ``audit``, ``export``, ``verify-export``, ``head`` and ``check``.

Exit codes: 0 when all holds; 1 when a command is rejected, an export fails verification
(one line names the first problem) or ``check`` reports any finding; 2 for malformed input.
``verify-export`` reads only the file it is given: it never opens a database.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from permanence.cli.app import AS_OF, JSON, KNOWN_AT, app, runtime
from permanence.cli.choices import ExportFormat
from permanence.cli.errors import EXIT_REFUSED, exits
from permanence.cli.output import emit
from permanence.cli.queries import history_text
from permanence.parsing import UsageError, to_date, to_timestamp

if TYPE_CHECKING:
    from permanence.runtime import Runtime

FORMAT = typer.Option(ExportFormat.jsonl, "--format",
                      help="jsonl (hash-chained event log) or cadt (CSV tables).")


def audit_trail(
    rt: Runtime,
    project: str | None,
    program: str | None,
    as_of: date | None,
    known_at: datetime | None,
) -> dict[str, Any]:
    """The ``history`` of every vintage of a project or program, by vintage then version."""
    from sqlalchemy import select

    from ledger.errors import UnknownVintage
    from ledger.replay import replay
    from projections.tables import vintages as pv

    rt.refresh()
    column, value = (pv.c.project, project) if project is not None else (pv.c.program, program)
    stmt = (
        select(pv.c.vintage_id, pv.c.program, pv.c.project, pv.c.vintage_year)
        .where(column == value)
        .order_by(pv.c.vintage_year, pv.c.issued_on, pv.c.serial_first, pv.c.vintage_id)
    )
    with rt.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        what = "project" if project is not None else "program"
        raise UnknownVintage(f"{what}: no vintages of {what} {value!r}")
    trails = []
    for vid, prog, proj, year in rows:
        _, trail = replay(rt.app.stream(vid), as_of, known_at)
        if trail:  # a vintage recorded after ``known_at`` did not exist yet
            trails.append({"vintage_id": vid, "program": prog, "project": proj,
                           "vintage_year": year or None, "events": trail})
    return {
        "project": project,
        "program": program,
        "as_of": as_of.isoformat() if as_of else None,
        "known_at": known_at.isoformat() if known_at else None,
        "vintages": trails,
    }


def _audit_text(data: dict[str, Any]) -> str:
    scope = f"project {data['project']}" if data["project"] is not None else f"program {data['program']}"
    title = f"audit of {scope}: {len(data['vintages'])} vintage(s)"
    return "\n".join([title, *(history_text(v) for v in data["vintages"])])


@app.command()
@exits
def audit(
    project: str = typer.Option(None, help="Every vintage of this project."),
    program: str = typer.Option(None, help="Every vintage of this program."),
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Audit trail of every vintage of a project or program, as of a date and a record time."""
    if (project is None) == (program is None):
        raise UsageError("give exactly one of --project or --program")
    day, kt = to_date(as_of, "as-of"), to_timestamp(known_at)
    with runtime() as rt:
        data = audit_trail(rt, project, program, day, kt)
    emit(data, as_json, _audit_text)


@app.command("export")
@exits
def export_command(
    out: str = typer.Option(..., "--out", help="File (jsonl) or directory (cadt) to write."),
    program: str = typer.Option(None, help="Only this program's vintages."),
    export_format: ExportFormat = FORMAT,
    as_json: bool = JSON,
) -> None:
    """Export the ledger: a tamper-evident event log with manifest, or CADT-shaped tables."""
    from projections.cadt import write_cadt
    from projections.export import write_export

    fmt = export_format.value
    target = Path(out).expanduser()
    parent = target if fmt == "cadt" else target.parent
    if fmt == "jsonl" and target.is_dir():
        raise UsageError(f"out: {target} is a directory; give a file")
    if not (parent.is_dir() or (fmt == "cadt" and parent.parent.is_dir())):
        raise UsageError(f"out: directory {parent} does not exist")
    with runtime() as rt:
        if program is not None:
            rt.catalog.get(program)  # an unknown program is an error, not an empty export
        if fmt == "cadt":
            data = write_cadt(rt.app, target, program)
        else:
            manifest = write_export(rt.app, target, program)
            data = {"file": str(target), **{k: manifest[k] for k in (
                "records", "vintages", "head", "as_of", "program")}}
    emit(data, as_json, _export_text)


def _export_text(d: dict[str, Any]) -> str:
    if "file" in d:
        return f"wrote {d['records']:,} records of {d['vintages']:,} vintage(s) to {d['file']}; head {d['head']}"
    return (f"wrote {d['projects']:,} projects, {d['issuances']:,} issuances and {d['units']:,} "
            f"unit blocks to {d['directory']}")


@app.command("verify-export")
@exits
def verify_export_command(
    file: str = typer.Argument(..., help="An export written by `permanence export`."),
    expect_head: str = typer.Option(
        None, "--expect-head",
        help="The head the registry published (`permanence head`): the file must end there. "
        "Without it, a file cut short with its manifest derived again verifies.",
    ),
    as_json: bool = JSON,
) -> None:
    """Verify an export offline: hash chain, replay of every vintage, manifest totals."""
    from projections.export import HEAD_PATTERN
    from projections.export_verify import verify_export

    expected = None
    if expect_head is not None:
        expected = expect_head.strip().lower()
        if not HEAD_PATTERN.fullmatch(expected):
            raise UsageError(f"expect-head: {expect_head!r} is not a SHA-256 hex digest "
                             "(64 hex digits)")
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"file: {file} is not a readable file")
    try:
        result = verify_export(path, expected)
    except OSError as e:
        raise UsageError(f"file: {file}: {e.strerror or e}") from None
    data = {**result.as_dict(), "expected_head": expected}
    emit(data, as_json, lambda d: (
        f"ok: {d['records']:,} records, {d['vintages']:,} vintage(s), head {d['head']}"
        + (" (as expected)" if expected else " (no --expect-head: compare it with the "
           "published head)")
        + "; chain, replay and manifest totals agree" if d["ok"] else d["problem"]))
    if not result.ok:
        raise typer.Exit(EXIT_REFUSED)


@app.command()
@exits
def head(as_json: bool = JSON) -> None:
    """The ledger's head hash (last record of a full export), to compare with a published one."""
    from projections.export import head as compute

    with runtime() as rt:
        data = compute(rt.app)
    emit(data, as_json, lambda d: d["head"])


@app.command()
@exits
def check(as_json: bool = JSON) -> None:
    """Consistency checks across sources; exit 1 when anything is reported, 0 when none."""
    from projections.consistency import check as run_checks

    with runtime() as rt:
        rt.refresh()
        findings = run_checks(rt.app, rt.engine)
    data = {"count": len(findings), "findings": [f.as_dict() for f in findings]}
    emit(data, as_json, lambda d: "\n".join(
        [f"{d['count']} finding(s)"]
        + [f"{f['kind']}: {f['message']}" for f in d["findings"]]))
    if findings:
        raise typer.Exit(EXIT_REFUSED)
