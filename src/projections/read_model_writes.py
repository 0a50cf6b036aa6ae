"""The SQL that writes the read models, shared by the projector's pages and its rebuild:
new vintages' rows, roll-up increments, failures, and a rebuild's table and session setup."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from projections.event_table import Record
from projections.first_pass import database_file
from projections.issued import FRESH, ROW_COLUMNS, RollKey
from projections.tables import (
    PROJECTION_TABLES,
    deltas,
    metadata,
    record_time_text,
    rollup,
    rollup_year,
    vintages,
)

PART = "rebuild_part"
"""Name prefix of the scratch databases a rebuild attaches."""


def failure_row(record: Record, error: str) -> dict[str, Any]:
    return {"nid": record.nid, "vintage_id": record.originator_id, "topic": record.topic,
            "error": error,
            "failed_at": record_time_text(datetime.now(UTC))}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a rebuild allocates millions of acyclic rows,
    and the collections they trigger would otherwise cost a large share of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def bulk_settings(conn: Connection) -> Iterator[None]:
    """Give a rebuild's SQLite connection room to work, and restore it afterwards.

    A larger page cache keeps the tables being written in memory, and the index builds at
    the end sort in memory.
    """
    raw = conn.connection.dbapi_connection
    if conn.dialect.name != "sqlite" or raw is None:
        yield
        return
    saved = {p: raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "temp_store")}
    raw.execute(f"PRAGMA cache_size={REBUILD_CACHE_KIB}")
    raw.execute("PRAGMA temp_store=MEMORY")
    try:
        yield
    finally:
        for pragma, value in saved.items():
            raw.execute(f"PRAGMA {pragma}={int(value)}")


REBUILD_CACHE_KIB = -512_000
"""The rebuild connection's SQLite page cache (negative: KiB), about 500 MB."""


def write_rollups(conn: Connection, rolled: dict[RollKey, int]) -> None:
    """Add amounts to the daily and yearly roll-ups (insert or increment)."""
    if not rolled:
        return
    conn.exec_driver_sql(
        rollup_sql(conn, rollup, "day"), [(*k, amount) for k, amount in rolled.items()]
    )
    yearly: dict[tuple[str, str, int, str, str], int] = {}
    for (measure, key, day, program, pool), amount in rolled.items():
        k = (measure, key, int(day[:4]), program, pool)
        yearly[k] = yearly.get(k, 0) + amount
    conn.exec_driver_sql(
        rollup_sql(conn, rollup_year, "year"), [(*k, amount) for k, amount in yearly.items()]
    )


def fresh_tables(conn: Connection) -> None:
    """Empty read-model tables, without the indexes a rebuild builds later."""
    metadata.drop_all(conn, tables=list(PROJECTION_TABLES))
    metadata.create_all(conn, tables=list(PROJECTION_TABLES))
    for index in (VINTAGE_KEY, *secondary_indexes()):
        index.drop(conn)


def ledger_file(conn: Connection, cursor: Any) -> str | None:
    """The ledger's SQLite file, if worker processes can read it meanwhile (WAL mode)."""
    return database_file(cursor.connection) if conn.dialect.name == "sqlite" else None


def detach_parts(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    for _, name, _ in conn.exec_driver_sql("PRAGMA database_list").fetchall():
        if name.startswith(PART):
            conn.exec_driver_sql(f"DETACH DATABASE {name}")


def secondary_indexes() -> list[Any]:
    """The indexes a rebuild builds once at the end (the vintage id's comes earlier)."""
    return [ix for t in (vintages, deltas, rollup) for ix in t.indexes if not ix.unique]


VINTAGE_KEY = next(ix for ix in vintages.indexes if ix.unique)
"""The vintage id's unique index: built after a rebuild's first pass, before its second."""


def rollup_sql(conn: Connection, table: Any, period: str) -> str:
    """Add amounts to a roll-up (insert or increment), as plain DBAPI executemany."""
    mark = placeholder(conn)
    keys = f"measure, key, {period}, program, pool"
    return (
        f"INSERT INTO {table.name} ({keys}, amount) VALUES ({', '.join([mark] * 6)}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET amount = {table.name}.amount + excluded.amount"
    )


def placeholder(conn: Connection) -> str:
    """The DBAPI placeholder: sqlite3 takes ``?``, psycopg ``%s``."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def insert_sql(mark: str) -> str:
    """New vintages' rows: their issuance values bound (``mark`` is the DBAPI placeholder),
    the fresh state as literals."""
    return (
        f"INSERT INTO {vintages.name} ({', '.join((*ROW_COLUMNS, *FRESH))}) "
        f"VALUES ({', '.join([mark] * len(ROW_COLUMNS) + [literal(v) for v in FRESH.values()])})"
    )


def literal(value: object) -> str:
    """SQL text of a fixed value (both databases read TRUE and FALSE)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
