"""Shared benchmark plumbing: stores to measure on, and a steady clock."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

PG_BASE = os.environ.get("PERMANENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# The workloads date facts over decades: fix "today" past them, as the tests do
# (``PERMANENCE_TODAY``; nothing may be dated after today).
os.environ.setdefault("PERMANENCE_TODAY", "2199-12-31")

PROGRAMS = ("icvcm-ccp", "verra-vcs", "acr", "car-forest", "carb-forest", "gold-standard", "puro")


def vintage_specs(n: int, start: int = 0, projects: int = 5000) -> list[dict[str, Any]]:
    """Deterministic, varied issuance specs (programs, projects, years, dates)."""
    base = date(2010, 1, 1)
    return [
        {
            "program": PROGRAMS[i % len(PROGRAMS)],
            "project": f"PRJ-{i % projects:05d}",
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


#: Bumped whenever a cached benchmark database would no longer match what builds it.
BENCH_VERSION = 2
CACHE = Path(tempfile.gettempdir()) / f"permanence-bench-v{BENCH_VERSION}"


def machine() -> dict[str, Any]:
    """The machine's load now: 1/5/15-minute load averages and the CPU count."""
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2),
            "cpus": os.cpu_count()}


def load_text(before: dict[str, Any], after: dict[str, Any]) -> str:
    return (f"load average (1/5/15 min) {before['load_1m']}/{before['load_5m']}/"
            f"{before['load_15m']} before, {after['load_1m']}/{after['load_5m']}/"
            f"{after['load_15m']} after, on {after['cpus']} CPUs")


def alternate(
    a: Callable[[int], float], b: Callable[[int], float], rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Run A and B alternately (A first in even rounds, B first in odd ones), ``rounds``
    times; each returns a measurement (seconds, or a rate). Returns A's samples, B's,
    and the ratio B/A of each round, so that a busy machine moves both sides together."""
    xs: list[float] = []
    ys: list[float] = []
    for r in range(rounds):
        if r % 2 == 0:
            x = a(r)
            y = b(r)
        else:
            y = b(r)
            x = a(r)
        xs.append(x)
        ys.append(y)
    return xs, ys, [y / x for x, y in zip(xs, ys, strict=True)]


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank) of at least one sample."""
    ordered = sorted(samples)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
