"""Import rate: rows per second of a generated ACR-shaped export through ``permanence import``.

The file is written with ACR's full column layout (27 columns, US dates with times, thousands of
projects). What is timed is the whole importer as the CLI runs it: checking and counting the
file, parsing, the duplicate check per batch, ``issue_many`` per batch, and the read-model
catch-up that follows every save. A second run of the same file (every row a duplicate) is
timed too, since that is what a resumed or repeated import costs. Each project issues about
20 times over ten years: the verifications those issuances imply are recorded too, only those
that change a vintage's lapses or due date (about 143,000 of the 950,000 pairs of a vintage and
a later issuance of its project at 100,000 rows).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import Timer, postgres_available, postgres_store, sqlite_store

from permanence.config import Settings
from permanence.imports.loader import BATCH, import_file
from permanence.runtime import Runtime

HEADER = [
    "Date Issued (GMT)", "Vintage", "ReportingPeriodBegin", "ReportingPeriodEnd",
    "Total Credits Issued", "Credits Issued to Project", "Credits Issued to Buffer Pool",
    "Credits Transferred to Buffer Pool", "Project Developer", "Project ID", "Project Name",
    "Project Type", "Project Methodology/Protocol", "Methodology/Protocol Version", "Project VVB",
    "Project Site Location", "Project Site State", "Project Site Country", "ARB Eligible",
    "Ecology Eligible", "CCP Approved", "Project Crediting Period Start Date", "Verified Removal",
    "Sustainable Development Goal(s)", "Project Website", "Documents", "Unnamed: 26",
]  # fmt: skip


def write_acr_file(path: Path, rows: int) -> dict[str, int]:
    """A deterministic ACR-shaped export of ``rows`` distinct issuances; returns its sums."""
    base = date(2015, 1, 1)
    quantity = buffer = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            issued = base + timedelta(days=n % 3650)
            vintage = issued.year - 1
            project = 1_000 + (n * 7919) % 5_000
            to_project = 500 + (n * 104_729) % 90_000
            to_buffer = (to_project // 5) if n % 3 == 0 else 0
            transferred = (to_project // 10) if n % 7 == 0 else 0
            quantity += to_project
            buffer += to_buffer + transferred
            hour, minute, second = n % 12 + 1, n % 60, (n * 7) % 60
            when = f"{hour}:{minute:02d}:{second:02d} {'AM' if n % 2 else 'PM'}"
            writer.writerow([
                f"{issued.month}/{issued.day}/{issued.year} {when}",
                vintage, f"1/1/{vintage}", f"12/31/{vintage}",
                to_project + to_buffer, to_project, to_buffer, transferred,
                "Example Developer LLC", f"ACR{project}", f"Example Project {project}",
                "Forest Carbon", "Example Methodology", "Version 1.0", "Example Verifier",
                "Springfield", "OHIO", "US", "No", "No", "Yes" if n % 5 == 0 else "",
                f"1/1/{2010 + project % 5}", "Yes" if n % 11 == 0 else "",
                "13: Climate Action", "", "View", "",
            ])  # fmt: skip
    return {"quantity": quantity, "buffer": buffer}


def measure(store: str, db: str, path: Path, rows: int, expected: dict[str, int]) -> list[dict[str, Any]]:
    """Import the file twice into a fresh store: the first run issues, the second finds duplicates."""
    out: list[dict[str, Any]] = []
    rt = Runtime(Settings(db=db))
    try:
        for run in ("first import", "re-import (all duplicates)"):
            with Timer() as t:
                summary = import_file(rt, "acr", path)
            if run == "first import":
                assert summary.imported == rows and summary.rejected == 0, summary.as_dict()
                assert (summary.quantity, summary.buffer) == (expected["quantity"], expected["buffer"])
            else:
                assert summary.imported == 0 and summary.duplicates == rows, summary.as_dict()
            out.append({
                "benchmark": "imports",
                "store": store,
                "run": run,
                "rows": rows,
                "batch": BATCH,
                "seconds": t.seconds,
                "rate": rows / t.seconds,
                "events": rt.app.recorder.max_notification_id() or 0,
                "verifications": summary.verifications,
            })  # fmt: skip
    finally:
        rt.close()
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows = 20_000 if quick else 100_000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "acr_issuances.csv"
        with Timer() as written:
            expected = write_acr_file(path, rows)
        with sqlite_store() as db:
            results += measure("SQLite file", db, path, rows, expected)
        if postgres_available():
            with postgres_store() as db:
                results += measure("PostgreSQL", db, path, rows, expected)
    for r in results:
        r["file_seconds"] = written.seconds
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 100,000")
    args = parser.parse_args()
    for r in run(args.quick):
        print(
            f"{r['store']:<12} {r['run']:<28} {r['rows']:>8,} rows {r['seconds']:7.2f} s "
            f"{r['rate']:>9,.0f} rows/s  ({r['events']:,} events in the store, "
            f"{r['verifications']:,} implied verifications recorded)"
        )


if __name__ == "__main__":
    main()
