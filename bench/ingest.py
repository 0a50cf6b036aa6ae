"""Bulk issuance: events per second into the event store, beside raw inserts of the same rows.

Each store is measured against its own floor, alternated over several rounds in one run:

- SQLite: the ledger's ``issue_many`` into a fresh file, against raw ``sqlite3.executemany``
  of the very rows the ledger stored (read back from a warm-up run) into a fresh file's
  ``stored_events``, created by the ledger itself (same shape, same key, WAL), committed in
  batches of the same size.
- PostgreSQL: the ledger into a fresh schema, against raw psycopg ``executemany`` and
  ``COPY`` of the same rows into a fresh schema's ``permanence_events`` (created by the ledger:
  the same columns, key, indexes and sequence).

``vs_raw`` is the median over the rounds of (ledger rate / raw rate) measured side by side,
raw and ledger taking turns going first, so a busy machine slows both sides together.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import (
    Timer,
    alternate,
    postgres_available,
    postgres_store,
    sqlite_store,
    vintage_specs,
)

from permanence.config import Settings
from permanence.runtime import EVENTS_TABLE, Runtime

BATCH = 10_000
#: (originator_id, originator_version, topic, state) as stored
Row = tuple[Any, int, str, bytes]

NOTE = """
`vs_raw` is the median of the per-round ratios (ledger events/s over raw rows/s, measured
one after the other, the order alternating by round); `rate` is the median rate. The raw
baselines write the rows the ledger stored, into a table the ledger created (so of the same
shape), in transactions of the same size; they do no domain work, validation or
serialisation: the gap is what the ledger costs per event in Python.
"""


def ledger_ingest(db: str, n: int) -> float:
    """Seconds for the ledger to issue ``n`` vintages in batches (read models not caught up)."""
    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    try:
        specs = vintage_specs(n)
        with Timer() as t:
            for i in range(0, n, BATCH):
                rt.app.issue_many(specs[i : i + BATCH])
    finally:
        rt.close()
    return t.seconds


def _empty_store(db: str) -> None:
    """Let the ledger create its tables (and nothing else) on ``db``."""
    Runtime(Settings(db=db), catch_up_on_write=False).close()


def sqlite_rows(db: str) -> list[Row]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events"))
    finally:
        conn.close()


def raw_sqlite(db: str, rows: list[Row]) -> float:
    """Seconds for ``sqlite3.executemany`` of ``rows`` into the ledger's own empty table."""
    _empty_store(db)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with Timer() as t:
            for i in range(0, len(rows), BATCH):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows[i : i + BATCH])
                conn.execute("COMMIT")
    finally:
        conn.close()
    return t.seconds


def _pg(url: str) -> Any:
    """A psycopg connection to the schema a bench URL names."""
    import psycopg

    base, _, schema = url.partition("?schema=")
    return psycopg.connect(base, options=f"-c search_path={schema}")


#: The ledger's event table on PostgreSQL (see ``permanence.config``).
PG_EVENTS = EVENTS_TABLE


def pg_rows(url: str) -> list[Row]:
    with _pg(url) as conn:
        return list(conn.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {PG_EVENTS}"))


INSERT_PG = (f"INSERT INTO {PG_EVENTS} (originator_id, originator_version, topic, state) "
             "VALUES (%s, %s, %s, %s)")


def raw_pg(url: str, rows: list[Row], copy: bool) -> float:
    """Seconds for psycopg ``executemany`` (or ``COPY``) of ``rows`` into the ledger's own
    empty table, one transaction per batch."""
    _empty_store(url)
    with _pg(url) as conn, Timer() as t:
        for i in range(0, len(rows), BATCH):
            with conn.transaction(), conn.cursor() as cur:
                if copy:
                    with cur.copy(f"COPY {PG_EVENTS} (originator_id, originator_version, "
                                  "topic, state) FROM STDIN") as out:
                        for row in rows[i : i + BATCH]:
                            out.write_row(row)
                else:
                    cur.executemany(INSERT_PG, rows[i : i + BATCH])
    return t.seconds


def _pair(
    store: Any, raw: Callable[[str], float], n: int, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """(raw rates, ledger rates, ledger/raw per round), each side on a fresh store."""

    def fresh(fn: Callable[[str], float]) -> Callable[[int], float]:
        def run(_: int) -> float:
            with store() as db:
                return n / fn(db)
        return run

    return alternate(fresh(raw), fresh(lambda db: ledger_ingest(db, n)), rounds)


def _rows(store: str, baseline: str, n: int, raw: list[float], lite: list[float],
          ratios: list[float]) -> list[dict[str, Any]]:
    return [
        {"benchmark": "ingest", "store": baseline, "events": n, "rounds": len(raw),
         "rate": statistics.median(raw)},
        {"benchmark": "ingest", "store": store, "events": n, "rounds": len(lite),
         "rate": statistics.median(lite), "vs_raw": statistics.median(ratios),
         "vs_raw_min": min(ratios), "vs_raw_max": max(ratios)},
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    n, rounds = (20_000, 3) if quick else (100_000, 3)
    rows: list[dict[str, Any]] = []
    with sqlite_store() as db:  # warm-up: the rows the baseline writes
        ledger_ingest(db, n)
        stored = sqlite_rows(db)
    raw, lite, ratios = _pair(sqlite_store, lambda db: raw_sqlite(db, stored), n, rounds)
    rows += _rows("ledger on SQLite file", "raw sqlite3.executemany (same rows)", n, raw, lite,
                  ratios)
    if postgres_available():
        with postgres_store() as url:
            ledger_ingest(url, n)
            stored = pg_rows(url)
        for copy, name in ((False, "raw psycopg executemany (same rows)"),
                           (True, "raw psycopg COPY (same rows)")):
            raw, pg, ratios = _pair(postgres_store, lambda u, c=copy: raw_pg(u, stored, c), n, rounds)
            rows += _rows("ledger on PostgreSQL", name, n, raw, pg, ratios)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for r in run(args.quick):
        extra = f"  ({r['vs_raw']:.3f} of raw)" if "vs_raw" in r else ""
        print(f"{r['store']:<40} {r['events']:>8,} events {r['rate']:>10,.0f} ev/s{extra}")


if __name__ == "__main__":
    main()
