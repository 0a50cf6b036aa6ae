"""Read-model benchmarks: rebuild throughput, and query latency at 100,000 and 1,000,000 vintages.

The ledger is filled with bulk issuance (one ``Issued`` event per vintage) plus a sprinkle
of reversals, compensations and retirements; the read models are then rebuilt from zero
and queried repeatedly (p50/p95 over many runs, varied dates and programs). A second log,
made mostly of later events (yearly verifications of every vintage, interleaved), shows the
rebuild where nearly every event changes an existing vintage.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.schema import CreateIndex

HERE = Path(__file__).resolve().parent

from common import PROGRAMS, Timer, decode_range, postgres_available, sqlite_store, vintage_specs

from permanence.config import Settings
from permanence.runtime import Runtime
from projections.issued import FRESH, ROW_COLUMNS
from projections.projector import REBUILD_PAGE
from projections.queries import Filters, liabilities
from projections.read_model_writes import (
    REBUILD_CACHE_KIB,
    VINTAGE_KEY,
    insert_sql,
    secondary_indexes,
)
from projections.tables import deltas, metadata, rollup, rollup_year, vintages

NOTE = """
`rebuild`: on a SQLite file of 300,000 events or more, two worker processes read and
decode the log's issuances into scratch files while the rebuild's connection drops the old
tables; SQLite then copies the rows in, builds the indexes and commits. `rebuild floor`: the rows this rebuild wrote, read
back into memory and written by raw `sqlite3` to a fresh file the way the rebuild writes
them (one transaction, `executemany` binding the same values, secondary indexes built at
the end): what writing the read models costs on this disk with no event read or decoded;
`rebuild_vs_floor` is the floor's time over the rebuild's. Each of the million `Issued`
events becomes one `proj_vintages` row with nine indexes to build (vintage id, project,
pool, program, four due dates, period end). `rebuild ceiling`: the fastest any rebuild
could be here, however written: reading and decoding every event, nothing else, on both
cores (`decode_s`), plus indexing and committing the smallest read model that the sweep's
50 ms target needs (vintage id, lapse, default and period-end dates only:
`index_commit_s`), as if writing rows and building them from the decoded events cost
nothing. `rebuild bound (these read models)`: the same reckoning for the read models this
project has: decoding on both cores (`decode_s` of the ceiling) plus the floor's own index
builds and commit (`index_commit_s` of the floor), which need every row and so follow the
last decoded event; no rebuild of these tables, however written, can be faster on this
machine. `rebuild (later events)`: the second log, where each vintage's stream is replayed
once through its aggregate; `vs_first_pass_rate` is its events/s over the SQLite rebuild's
(target: at least 1, no slower per event). PostgreSQL: the cached ledger of
`bench/groupings.py` (the same 1,000,000 vintages, over 50,000 projects) rebuilt, beside
its own floors: the rows that rebuild wrote, written by raw psycopg into a fresh schema in
one transaction, by `executemany` of the rebuild's own statements and by `COPY`, the
secondary indexes built at the end; then the same two queries.
"""

BATCH = 20_000
QUERY_RUNS = 200


def fill(rt: Runtime, n: int, start: int = 0) -> None:
    for i in range(start, start + n, BATCH):
        ids = rt.app.issue_many(vintage_specs(min(BATCH, start + n - i), i))
        for vid in ids[:: BATCH // 20]:
            rt.app.record_reversal(vid, date(2030, 1, 1), 100, "storm")
            rt.app.compensate(vid, "R1", "buffer", 40, date(2030, 6, 1))
            rt.app.retire(vid, 10, date(2031, 1, 1))


def latencies(fn: Any) -> dict[str, float]:
    samples = []
    for i in range(QUERY_RUNS):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * len(samples)) - 1]}


def measure_queries(rt: Runtime, vintages: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    days = [date(2012, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365)) for _ in range(QUERY_RUNS)]
    by_program = latencies(lambda i: liabilities(rt.engine, days[i], by="program"))
    as_of = latencies(
        lambda i: liabilities(rt.engine, days[i], Filters(program=PROGRAMS[i % len(PROGRAMS)]))
    )
    return [
        {"benchmark": "query", "store": "SQLite file", "query": "liabilities --by program",
         "vintages": vintages, **by_program},
        {"benchmark": "query", "store": "SQLite file", "query": "liabilities --program P --as-of D",
         "vintages": vintages, **as_of},
    ]


def write_floor(rt: Runtime) -> tuple[float, float]:
    """Seconds for raw ``sqlite3`` to write the rows the rebuild wrote, and nothing else.

    The read models just rebuilt are read into memory, then written to a fresh file the way
    the rebuild writes them (one transaction, rows by ``executemany`` binding the same
    values, secondary indexes built at the end, same page cache): the floor a rebuild on
    this disk cannot beat, whatever its own code costs. Returns its seconds in all, and
    those of building the indexes and committing (which need every row, so no rebuild can
    overlap them with reading the log).
    """
    others = [deltas, rollup, rollup_year]
    with rt.engine.connect() as conn:
        data = {
            insert_sql("?"): [tuple(r) for r in conn.execute(
                select(*(vintages.c[name] for name in ROW_COLUMNS)))],
            **{f"INSERT INTO {t.name} VALUES ({', '.join('?' * len(t.columns))})":
               [tuple(r) for r in conn.execute(select(t))] for t in others},
        }
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "floor.db")
        engine = create_engine(f"sqlite:///{path}")
        metadata.create_all(engine, tables=[vintages, *others])
        indexes = [VINTAGE_KEY, *secondary_indexes()]
        with engine.begin() as conn:
            for ix in indexes:
                ix.drop(conn)
        creates = [str(CreateIndex(ix).compile(engine)) for ix in indexes]
        engine.dispose()
        raw = _bulk_connection(path)
        with Timer() as t:
            raw.execute("BEGIN IMMEDIATE")
            for statement, rows in data.items():
                for i in range(0, len(rows), REBUILD_PAGE):
                    raw.executemany(statement, rows[i:i + REBUILD_PAGE])
            with Timer() as finish:
                for statement in creates:
                    raw.execute(statement)
                raw.execute("COMMIT")
        raw.close()
    return t.seconds, finish.seconds


def rebuild_against_floor(
    rt: Runtime, floor: Any, rounds: int
) -> tuple[list[float], list[tuple[float, float]], list[float]]:
    """The rebuild and its floor alternated (the order swapping by round): the rebuild's
    seconds, the floor's (seconds, index and commit seconds), and floor/rebuild per round."""
    seconds: list[float] = []
    floors: list[tuple[float, float]] = []
    for r in range(rounds):
        if r % 2:
            floors.append(floor())
        with Timer() as t:
            rt.projector.rebuild()
        seconds.append(t.seconds)
        if not r % 2:
            floors.append(floor())
    return seconds, floors, [f / s for (f, _), s in zip(floors, seconds, strict=True)]


def pg_write_floor(rt: Runtime, url: str, copy: bool) -> tuple[float, float]:
    """The PostgreSQL rebuild's floor: the rows it wrote, written by raw psycopg into a
    fresh schema's tables (one transaction; ``executemany`` of the rebuild's own statement
    in its pages, or ``COPY``; the secondary indexes built at the end). Returns its seconds
    in all, and those of building the indexes and committing."""
    import psycopg

    others = [deltas, rollup, rollup_year]
    with rt.engine.connect() as conn:
        data = [(vintages, list(ROW_COLUMNS), [tuple(r) for r in conn.execute(
            select(*(vintages.c[name] for name in ROW_COLUMNS)))])]
        data += [(t, [c.name for c in t.columns], [tuple(r) for r in conn.execute(select(t))])
                 for t in others]
    base = url.partition("?schema=")[0]
    schema = f"bench_floor_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(base, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1),
                               connect_args={"options": f"-c search_path={schema}"})
        metadata.create_all(engine, tables=[vintages, *others])
        indexes = [VINTAGE_KEY, *secondary_indexes()]
        with engine.begin() as conn:
            for ix in indexes:
                ix.drop(conn)
        creates = [str(CreateIndex(ix).compile(engine)) for ix in indexes]
        engine.dispose()
        with psycopg.connect(base, options=f"-c search_path={schema}") as raw, \
                raw.cursor() as cur, Timer() as t:
            for table, columns, rows in data:
                names = ", ".join(f'"{c}"' for c in columns)
                if copy:  # every column (an insert writes the fresh state as literals)
                    fresh = tuple(FRESH.values()) if table is vintages else ()
                    names += "".join(f', "{c}"' for c in FRESH) if table is vintages else ""
                    with cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as out:
                        for row in rows:
                            out.write_row(row + fresh)
                    continue
                statement = (insert_sql("%s") if table is vintages else
                             f"INSERT INTO {table.name} VALUES ({', '.join(['%s'] * len(columns))})")
                for i in range(0, len(rows), REBUILD_PAGE):
                    cur.executemany(statement, rows[i:i + REBUILD_PAGE])
            with Timer() as finish:
                for statement in creates:
                    cur.execute(statement)
                raw.commit()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    return t.seconds, finish.seconds


def run_postgres(quick: bool) -> list[dict[str, Any]]:
    """The rebuild on PostgreSQL against its own floor, and the queries' latency, on the
    cached ledger of ``bench/groupings.py`` (a rebuild leaves it as it was)."""
    from groupings import FULL, QUICK, postgres_ledger

    vintages_n, projects = QUICK if quick else FULL
    url = postgres_ledger(vintages_n, projects)
    rt = Runtime(Settings(db=url), catch_up_on_write=False)
    rows: list[dict[str, Any]] = []
    try:
        events = rt.app.recorder.max_notification_id() or 0
        seconds, floors, ratios = rebuild_against_floor(
            rt, lambda: pg_write_floor(rt, url, False), 2)
        rebuild_s = statistics.median(seconds)
        rows.append({"benchmark": "rebuild", "store": "PostgreSQL", "events": events,
                     "rounds": len(seconds), "seconds": rebuild_s, "rate": events / rebuild_s})
        floor = statistics.median(f for f, _ in floors)
        rows.append({"benchmark": "rebuild floor", "store": "raw psycopg executemany (same rows)",
                     "events": events, "rounds": len(floors), "seconds": floor,
                     "rate": events / floor, "rebuild_vs_floor": statistics.median(ratios),
                     "index_commit_s": statistics.median(f for _, f in floors)})
        floor, finish = pg_write_floor(rt, url, True)
        rows.append({"benchmark": "rebuild floor", "store": "raw psycopg COPY (same rows)",
                     "events": events, "rounds": 1, "seconds": floor, "rate": events / floor,
                     "rebuild_vs_floor": floor / rebuild_s, "index_commit_s": finish})
        rows += [{**r, "store": "PostgreSQL"} for r in measure_queries(rt, vintages_n)]
    finally:
        rt.close()
    return rows


def ceiling(rt: Runtime, db: str) -> dict[str, Any]:
    """The fastest any rebuild could be on this machine, however it were written.

    Two measured parts that no rebuild can skip or overlap with each other: reading and
    decoding every stored event (its JSON, nothing else), spread over both cores in two
    processes; then indexing and committing the smallest read model that issue 4's sweep
    target needs: per vintage only its key, id, figures and the three dates the sweep
    looks up (lapse, default, period end), with only those indexes. Writing its rows is
    left out, as if it overlapped the decoding entirely. Indexes need every row, so they
    come after the last event is decoded.
    """
    events = rt.app.recorder.max_notification_id() or 0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as workers:
        list(workers.map(decode_range, [db, db], [0, 0], [0, 0]))  # both started
        cut = [0, events // 2, events]
        with Timer() as decode:
            decoded = sum(workers.map(decode_range, [db, db], cut[:-1], cut[1:]))
    columns = ("issued_nid", "vintage_id", "program", "pool", "quantity", "buffer",
               "exposure_start", "period_end", "lapse_arises_on", "next_default_on")
    with rt.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(*(vintages.c[c] for c in columns)))]
    with tempfile.TemporaryDirectory() as d:
        raw = _bulk_connection(str(Path(d) / "smallest.db"))
        raw.execute(f"CREATE TABLE v (issued_nid INTEGER PRIMARY KEY, {', '.join(columns[1:])})")
        raw.execute("BEGIN IMMEDIATE")
        for i in range(0, len(rows), REBUILD_PAGE):
            raw.executemany(f"INSERT INTO v VALUES ({', '.join('?' * len(columns))})",
                            rows[i:i + REBUILD_PAGE])
        with Timer() as finish:
            raw.execute("CREATE UNIQUE INDEX v_id ON v (vintage_id)")
            for column in ("lapse_arises_on", "next_default_on"):
                raw.execute(f"CREATE INDEX v_{column} ON v ({column}) WHERE {column} IS NOT NULL")
            raw.execute("CREATE INDEX v_period_end ON v (period_end)")
            raw.execute("COMMIT")
        raw.close()
    seconds = decode.seconds + finish.seconds
    return {"benchmark": "rebuild ceiling", "store": "2 processes + smallest read model",
            "events": decoded, "seconds": seconds, "rate": decoded / seconds,
            "decode_s": decode.seconds, "index_commit_s": finish.seconds}


def _bulk_connection(path: str) -> sqlite3.Connection:
    """A raw connection set up as the rebuild sets up its own."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(f"PRAGMA cache_size={REBUILD_CACHE_KIB}")
    raw.execute("PRAGMA temp_store=MEMORY")
    return raw


def run(quick: bool = False) -> list[dict[str, Any]]:
    small, large = (20_000, 100_000) if quick else (100_000, 1_000_000)
    rows: list[dict[str, Any]] = []
    with sqlite_store() as db:
        rt = Runtime(Settings(db=db), catch_up_on_write=False)
        try:
            fill(rt, small)
            rt.projector.rebuild()
            rows += measure_queries(rt, small)
            fill(rt, large - small, small)
            events = rt.app.recorder.max_notification_id() or 0
            seconds, floors, ratios = rebuild_against_floor(
                rt, lambda: write_floor(rt), 2 if quick else 3)
            rebuild_s = statistics.median(seconds)
            rows.append({"benchmark": "rebuild", "store": "SQLite file", "events": events,
                         "rounds": len(seconds), "seconds": rebuild_s, "rate": events / rebuild_s})
            first_rate = events / rebuild_s
            floor = statistics.median(f for f, _ in floors)
            finish = statistics.median(f for _, f in floors)
            rows.append({"benchmark": "rebuild floor", "store": "raw sqlite3 (same rows)",
                         "events": events, "rounds": len(floors), "seconds": floor,
                         "rate": events / floor, "rebuild_vs_floor": statistics.median(ratios),
                         "index_commit_s": finish})
            best = ceiling(rt, db)
            rows.append(best)
            bound = best["decode_s"] + finish
            rows.append({"benchmark": "rebuild bound (these read models)",
                         "store": "decode on 2 cores + index and commit", "events": events,
                         "seconds": bound, "rate": events / bound})
            rows += measure_queries(rt, large)
        finally:
            rt.close()
    rows.append(rebuild_later_events(quick, first_rate))
    if postgres_available():
        rows += run_postgres(quick)
    return rows


def rebuild_later_events(quick: bool, first_rate: float) -> dict[str, Any]:
    """Rebuild a log made mostly of later events: yearly verifications of every vintage.

    Each vintage's verifications interleave with every other's in the log, as they do in a
    registry's; the rebuild replays each vintage's stream once.
    """
    vintages, years = (5_000, 4) if quick else (20_000, 8)
    with sqlite_store() as db:
        rt = Runtime(Settings(db=db), catch_up_on_write=False)
        try:
            rt.app.issue_many([
                {"program": PROGRAMS[i % len(PROGRAMS)], "project": f"P{i % (vintages // 10)}",
                 "quantity": 1_000 + i, "buffer": 150 + i // 7, "on": date(2015, 1, 1)}
                for i in range(vintages)
            ])
            rt.refresh()  # verify_project finds a project's vintages in the read models
            for year in range(2016, 2016 + years):
                for p in range(vintages // 10):
                    rt.app.verify_project(f"P{p}", date(year, 3, 1))
            events = rt.app.recorder.max_notification_id() or 0
            with Timer() as t:
                rt.projector.rebuild()
        finally:
            rt.close()
    return {"benchmark": "rebuild (later events)", "store": "SQLite file", "events": events,
            "seconds": t.seconds, "rate": events / t.seconds,
            "vs_first_pass_rate": events / t.seconds / first_rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for r in run(parser.parse_args().quick):
        print(r)


if __name__ == "__main__":
    main()
