"""Shared fixtures: one scenario suite runs against an SQLite file and PostgreSQL.

PostgreSQL tests use a fresh schema per test in database ``test`` on 127.0.0.1:5432
(override with ``PERMANENCE_TEST_PG``). They skip with the reason when no server answers,
unless ``PERMANENCE_REQUIRE_POSTGRES=1`` (CI), where an unreachable server is a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from permanence.config import Settings
from permanence.runtime import Runtime
from tests.support import PG_BASE, pg_connect, require_postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = pg_connect()
    conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[attr-defined]
    try:
        yield f"{PG_BASE}?schema={schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(db=db_url))
    try:
        yield rt
    finally:
        rt.close()
