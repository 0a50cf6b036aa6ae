"""``permanence report``: the trustee report as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

import typer

from permanence.cli.app import AS_OF, JSON, KNOWN_AT, app, emit, guarded, runtime, today
from permanence.parsing import UsageError, to_date, to_timestamp

OUT = typer.Option(
    ..., "--out",
    help="The page to write (FILE.html), or a folder to write index.html in. One file, "
         "charts inline: it opens offline and can be mailed as is.")


@app.command("report")
def report(
    out: Path = OUT,
    as_of: str = AS_OF,
    known_at: str = KNOWN_AT,
    as_json: bool = JSON,
) -> None:
    """Write the trustee report (one HTML file, charts inline); prints the page's path."""
    from projections.queries import pools
    from projections.report import report_path, write_report_html
    from risk.service import latest_stress_tests

    def body() -> None:
        names_file = report_path(out) == out
        if not names_file and out.exists() and not out.is_dir():
            raise UsageError(f"out: {out} exists and is not a folder or an .html file")
        if names_file and out.is_dir():
            raise UsageError(f"out: {out} is a folder; name the .html file to write")
        if names_file and not out.parent.is_dir():
            raise UsageError(f"out: folder {out.parent} does not exist")
        day = to_date(as_of, "as-of") or today()
        kt = to_timestamp(known_at)
        with runtime() as rt:
            runs = [run for pool in pools(rt.engine) for run in latest_stress_tests(rt.app, pool)]
            page = write_report_html(rt.engine, out, day, runs, known_at=kt)
        data = {"report": str(page), "bytes": page.stat().st_size}
        emit(data, as_json, lambda d: d["report"])

    guarded(body)
