"""``permanence import FORMAT FILE``: load a registry's public export into the ledger.

The file is checked whole before anything is written (unknown format, unreadable bytes or
missing columns exit 2 and write nothing); then it is loaded in batches, each one transaction,
so that a second run, or a run after a crash, only adds what is missing. Rows and records that
cannot be imported go to the rejects file with their line and reason.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from permanence.cli.app import JSON, app, runtime
from permanence.cli.choices import ImportFormat
from permanence.cli.errors import EXIT_REFUSED, exits
from permanence.cli.options import QUIET
from permanence.cli.output import emit, progress_bar
from permanence.parsing import UsageError

#: Files shorter than this import too fast for a progress bar to be worth drawing.
PROGRESS_MIN_ROWS = 5_000
#: Records per transaction (``permanence.imports.loader.BATCH``, checked by a test).
BATCH = 2000

FORMAT = typer.Argument(..., metavar="FORMAT", help="The registry's export format.")
FILE = typer.Argument(..., help="The registry's CSV export.")
REJECTS = typer.Option(
    None, "--rejects", help="Where to write rejected rows (default FILE.rejects.csv)."
)
BATCH_SIZE = typer.Option(BATCH, "--batch", help="Records per transaction.")


@app.command("import")
@exits
def import_(
    fmt: ImportFormat = FORMAT,
    file: Path = FILE,
    rejects: Path = REJECTS,
    batch: int = BATCH_SIZE,
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Import a registry export: issuances, retirements and cancellations, and CARB reversals
    and compensations. Exit 1 when every row was rejected or the totals do not reconcile."""
    from permanence.imports.loader import load, prepare, save_rejects

    if batch < 1:
        raise UsageError(f"batch: must be at least 1, got {batch}")
    try:
        prepared = prepare(fmt.value, file)
    except (ValueError, FileNotFoundError) as exc:  # ImportFormatError is a ValueError
        raise UsageError(str(exc)) from exc
    show = not (as_json or quiet) and sys.stderr.isatty() and prepared.rows > PROGRESS_MIN_ROWS
    with runtime() as rt, progress_bar(show, "importing rows", prepared.rows) as bar:
        summary = load(rt, prepared, batch=batch, progress=bar.advance)
    save_rejects(summary, rejects)
    emit(summary.as_dict(), as_json, _text)
    if summary.failed:
        raise typer.Exit(EXIT_REFUSED)


def _text(data: dict[str, Any]) -> str:
    head = (
        f"{data['file']} ({data['format']}, program {data['program']}): "
        f"{data['read']:,} rows read, {data['imported']:,} imported, "
        f"{data['duplicates']:,} duplicates, {data['rejected']:,} rejected, "
        f"{data['skipped']:,} skipped"
    )
    totals = data["totals"]
    lines = [head, f"  issued {totals['quantity']:,} credits, {totals['buffer']:,} to the buffer"]
    for kind, counts in data["kinds"].items():
        lines.append(
            f"  {kind.replace('_', ' ')}: {counts['read']:,} read, {counts['imported']:,} "
            f"imported, {counts['duplicates']:,} duplicates, {counts['rejected']:,} rejected"
        )
    if data["non_reversible_issued"]:
        lines.append(
            f"  of which {data['non_reversible_issued']:,} non-reversible (no exposure, lapse "
            "or buffer expectation)"
        )
    if data["verifications_implied"]:
        lines.append(
            f"  {data['verifications_implied']:,} verifications implied by later issuances"
        )
    lines.append("  reconciliation (tonnes): file = ledger + rejected + repeated rows")
    for figure, row in data["reconciliation"].items():
        ledger = f"{row['ledger']:,}" if "ledger" in row else "-"
        gap = data["unexplained"].get(figure)
        tail = f"  UNEXPLAINED {gap:,}" if gap else ""
        lines.append(
            f"    {figure.replace('_', ' ')}: file {row['file']:,}, ledger {ledger}, "
            f"rejected {row['rejected']:,}, repeated {row['repeated']:,}{tail}"
        )
    for finding in data["findings"][:20]:
        lines.append(f"  finding: {finding}")
    if len(data["findings"]) > 20:
        lines.append(f"  ... {len(data['findings']) - 20:,} more findings (see --json)")
    if data["rejects_file"]:
        lines.append(f"  rejects written to {data['rejects_file']}")
    return "\n".join(lines)


__all__ = ["import_"]
