"""Shared benchmark plumbing: stores to measure on, and a steady clock."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

PG_BASE = os.environ.get("PERMANENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# The workloads date facts over decades: fix "today" past them, as the tests do
# (``PERMANENCE_TODAY``; nothing may be dated after today).
os.environ.setdefault("PERMANENCE_TODAY", "2199-12-31")

PROGRAMS = ("icvcm-ccp", "verra-vcs", "acr", "car-forest", "carb-forest", "gold-standard", "puro")


def vintage_specs(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Deterministic, varied issuance specs (programs, projects, years, dates)."""
    base = date(2010, 1, 1)
    return [
        {
            "program": PROGRAMS[i % len(PROGRAMS)],
            "project": f"PRJ-{i % 5000:05d}",
            "vintage_year": 2010 + i % 15,
            "quantity": 1_000 + (i * 7919) % 90_000,
            # at least a seventh of the quantity: above every profile's minimum buffer
            "buffer": (1_000 + (i * 7919) % 90_000) // 7 + (i * 104729) % 5_000,
            "on": base + timedelta(days=(i * 37) % 5800),
            "serial_first": str(10_000_000 + i * 100_000),
            "serial_last": str(10_000_000 + i * 100_000 + 99_999),
        }
        for i in range(start, start + n)
    ]


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield str(Path(d) / "bench.db")


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_BASE, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001
        return False


@contextmanager
def postgres_store() -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{PG_BASE}?schema={schema}"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def decode_range(db: str, after: int, upto: int) -> int:
    """Read the stored events with notification ids in (after, upto] and decode each one's
    JSON, nothing else (the least work a rebuild does per event); returns how many. Lives
    here so that a spawned process can import it."""
    import sqlite3

    import orjson

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = 0
        for (state,) in conn.execute(
            "SELECT state FROM stored_events WHERE rowid > ? AND rowid <= ?", (after, upto)
        ):
            orjson.loads(state)
            n += 1
        return n
    finally:
        conn.close()


class Timer:
    def __enter__(self) -> Self:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
