"""Shared fixtures: one scenario suite runs against an SQLite file and PostgreSQL.

PostgreSQL tests use a fresh schema per test in database ``test`` on 127.0.0.1:5432
(override with ``PERMANENCE_TEST_PG``). They skip with the reason when no server answers,
unless ``PERMANENCE_REQUIRE_POSTGRES=1`` (CI), where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from permanence.config import Settings
from permanence.runtime import Runtime

# The scenarios run over decades: fix "today" past them (PERMANENCE_TODAY is the setting a
# demo or a test uses for that). Tests of the no-future rule set their own today.
os.environ.setdefault("PERMANENCE_TODAY", "2199-12-31")
PG_BASE = os.environ.get("PERMANENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _pg_connect() -> object:
    import psycopg

    return psycopg.connect(PG_BASE.replace("postgresql+psycopg://", "postgresql://"),
                           connect_timeout=3, autocommit=True)


def postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        conn = _pg_connect()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {PG_BASE}: {e}"
    conn.close()  # type: ignore[attr-defined]
    return None


_PG_REASON = postgres_reason()


def require_postgres() -> None:
    if _PG_REASON is None:
        return
    if os.environ.get("PERMANENCE_REQUIRE_POSTGRES") == "1":
        pytest.fail(_PG_REASON)
    pytest.skip(_PG_REASON)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = _pg_connect()
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


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip: those files are never part of the project."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path
