"""Benchmark of the scheduler's sweep on a large ledger.

1,000,000 vintages (``--quick``: 100,000), issued in batches of 10,000 with the read
models caught up after each batch, of which 10,000 are overdue for verification on the
business date. Measured: the time to record all 10,000 lapses (one sweep, 1,000 per
transaction), and a sweep with nothing due (target: at most 50 ms; median of repeats).

Usage: ``.venv/bin/python bench/sweep.py [--quick] [--pg URL]``; ``run(quick)`` returns the
rows. ``--pg`` (or ``PERMANENCE_BENCH_PG``; by default the benchmarks' server when it answers) also runs it on PostgreSQL, in a schema of its
own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import PG_BASE, postgres_available

from permanence.config import Settings
from permanence.runtime import Runtime
from scheduler.sweep import sweep

FULL = 1_000_000
QUICK = 100_000
OVERDUE = 10_000
BATCH = 10_000
AS_OF = date(2030, 6, 1)
REPEATS = 7
TARGET_EMPTY_MS = 50.0
#: Monitored vintages are issued in this window: verification and risk reassessment fall
#: due (issuance + 5 y) well after the business date and its 90-day reminder horizon.
CURRENT = (date(2025, 10, 1), date(2029, 12, 31))
#: Overdue vintages: issued early enough that their verification was due before AS_OF,
#: late enough that no 365-day surrender deadline passes during the repeats after it.
LATE = (date(2024, 6, 15), date(2025, 4, 30))


def _day(window: tuple[date, date], i: int) -> date:
    """A deterministic spread of issuance dates over the window."""
    span = (window[1] - window[0]).days
    return window[0] + timedelta(days=(i * 7919) % (span + 1))


def _specs(start: int, count: int, overdue_every: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + count):
        late = i % overdue_every == 0
        out.append({
            "program": "icvcm-ccp",
            "project": f"P{i // 10:06d}",
            "vintage_year": 2025,
            "quantity": 1_000 + i % 5_000,
            "buffer": 200 + i % 1_000,
            "on": _day(LATE if late else CURRENT, i),
        })
    return out


def measure(db: str, vintages: int, backend: str) -> list[dict[str, Any]]:
    """Build the ledger on ``db`` and time the sweeps; one row per measurement."""
    rt = Runtime(Settings(db=db, today=AS_OF + timedelta(days=366)))  # the sweeps' days
    rows: list[dict[str, Any]] = []
    try:
        overdue_every = vintages // OVERDUE
        started = time.perf_counter()
        for start in range(0, vintages, BATCH):
            rt.app.issue_many(_specs(start, min(BATCH, vintages - start), overdue_every))
        issued_s = time.perf_counter() - started
        rows.append({"backend": backend, "measure": "issue with read-model catch-up",
                     "vintages": vintages, "seconds": round(issued_s, 1),
                     "per_second": round(vintages / issued_s)})

        result = sweep(rt, AS_OF)
        rows.append({"backend": backend, "measure": "sweep recording all lapses",
                     "vintages": vintages, "lapses_recorded": result.lapses_recorded,
                     "expected": OVERDUE, "seconds": round(result.duration_ms / 1000, 2),
                     "lapses_per_second": round(result.lapses_recorded / (result.duration_ms / 1000)),
                     "reminders_raised": result.reminders_raised})

        # the next business days, as the daily job would run them; the first one after
        # the big sweep also settles what that sweep recorded, so it is reported apart
        empty = []
        for k in range(REPEATS + 1):
            r = sweep(rt, AS_OF + timedelta(days=k + 1))
            assert r.lapses_recorded == r.defaults_recorded == r.periods_ended == 0
            empty.append(r.duration_ms)
        first, empty = empty[0], empty[1:]
        rows.append({"backend": backend, "measure": "sweep with nothing due", "vintages": vintages,
                     "median_ms": round(statistics.median(empty), 1),
                     "min_ms": round(min(empty), 1), "max_ms": round(max(empty), 1),
                     "first_after_lapses_ms": round(first, 1),
                     "target_ms": TARGET_EMPTY_MS,
                     "meets_target": statistics.median(empty) <= TARGET_EMPTY_MS})
    finally:
        rt.close()
    return rows


def run(quick: bool = False, pg: str | None = None) -> list[dict[str, Any]]:
    """Run the benchmark on SQLite, then on PostgreSQL (``pg``, ``PERMANENCE_BENCH_PG``, or
    the benchmarks' server when it answers); returns the rows."""
    vintages = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        rows += measure(str(Path(tmp) / "ledger.db"), vintages, "sqlite")
    pg = pg or os.environ.get("PERMANENCE_BENCH_PG") or (PG_BASE if postgres_available() else None)
    if pg:
        rows += _on_postgres(pg, vintages)
    return rows


def _on_postgres(base: str, vintages: int) -> list[dict[str, Any]]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(base, autocommit=True)
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        return measure(f"{base}{sep}schema={schema}", vintages, "postgresql")
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} vintages instead of {FULL:,}")
    parser.add_argument("--pg", help="also run on this PostgreSQL URL (a schema is created and dropped)")
    args = parser.parse_args()
    for row in run(args.quick, args.pg):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
