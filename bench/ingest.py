"""Bulk issuance: events per second into the event store, beside a raw sqlite3 baseline.

The baseline inserts rows of the same size (the same JSON payloads) with
``sqlite3.executemany`` into a table shaped like the event store's, in the same run.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import Timer, postgres_available, postgres_store, sqlite_store, vintage_specs

from permanence.config import Settings
from permanence.runtime import Runtime

BATCH = 10_000


def ledger_ingest(db: str, n: int) -> dict[str, Any]:
    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    try:
        specs = vintage_specs(n)
        with Timer() as t:
            for i in range(0, n, BATCH):
                rt.app.issue_many(specs[i : i + BATCH])
        events = rt.app.recorder.max_notification_id() or 0
        sample = rt.app.recorder.select_notifications(start=1, limit=BATCH)
        payloads = [bytes(s.state) for s in sample]
    finally:
        rt.close()
    return {"events": events, "seconds": t.seconds, "rate": events / t.seconds, "payloads": payloads}


def raw_baseline(n: int, payloads: list[bytes]) -> dict[str, Any]:
    """``executemany`` of rows the size of the stored events, in batches like the ledger's."""
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(str(Path(d) / "raw.db"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        rows = [
            (str(uuid.uuid4()), 1, "ledger.events:Issued", payloads[i % len(payloads)])
            for i in range(n)
        ]
        with Timer() as t:
            for i in range(0, n, BATCH):
                with conn:
                    conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows[i : i + BATCH])
        conn.close()
    return {"events": n, "seconds": t.seconds, "rate": n / t.seconds}


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 20_000 if quick else 100_000
    rows: list[dict[str, Any]] = []
    with sqlite_store() as db:
        lite = ledger_ingest(db, n)
    raw = raw_baseline(n, lite.pop("payloads"))
    rows.append({"benchmark": "ingest", "store": "raw sqlite3.executemany", **raw})
    rows.append({"benchmark": "ingest", "store": "ledger on SQLite file", **lite,
                 "vs_raw": lite["rate"] / raw["rate"]})
    if postgres_available():
        with postgres_store() as db:
            pg = ledger_ingest(db, n)
        pg.pop("payloads")
        rows.append({"benchmark": "ingest", "store": "ledger on PostgreSQL", **pg,
                     "vs_raw": pg["rate"] / raw["rate"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for r in run(args.quick):
        extra = f"  ({r['vs_raw']:.2f} of raw)" if "vs_raw" in r else ""
        print(f"{r['store']:<28} {r['events']:>8,} events {r['seconds']:7.2f} s {r['rate']:>10,.0f} ev/s{extra}")


if __name__ == "__main__":
    main()
