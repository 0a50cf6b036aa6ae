"""``permanence report``: the trustee report as an HTML folder that opens offline."""

from __future__ import annotations

from pathlib import Path

import typer

from permanence.cli.app import AS_OF, JSON, KNOWN_AT, app, emit, guarded, runtime, today
from permanence.parsing import UsageError, to_date, to_timestamp

OUT = typer.Option(..., "--out", help="Folder to write index.html and its charts to.")


@app.command("report")
def report(
    out: Path = OUT,
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Write the trustee report (index.html + charts); prints the page's path."""
    from projections.queries import pools
    from projections.report import write_report_files
    from risk.service import latest_stress_summary

    def body() -> None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"out: {out} exists and is not a folder")
        day = to_date(as_of, "as-of") or today()
        kt = to_timestamp(known_at)
        with runtime() as rt:
            stress = latest_stress_summary(rt.app, pools(rt.engine), as_of=day, known_at=kt)
            files = write_report_files(rt.engine, out, day, stress, known_at=kt)
        data = {"report": str(files.index), "charts": [str(c) for c in files.charts]}
        emit(data, as_json, lambda d: d["report"])

    guarded(body)
