"""Upgrades: a ledger made by the previous schema, opened by this code.

The fixtures (tests/fixtures/prev_schema/, made by its ``make.sh`` with the code of commit
05d2af9) hold a few issuances, a verification, a reversal, a sweep's reminders and mark,
and an API token, on SQLite (a file) and PostgreSQL (a dump loaded into a fresh schema).
That schema had no fingerprint on its read models and no migration version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, select, text

from permanence.config import Settings
from permanence.runtime import Runtime
from permanence.tokens import TokenStore, auth_tokens
from projections.storage.schema import (
    FINGERPRINT,
    VERSION_TABLE,
    fingerprint,
    head_revision,
    meta,
    read_model_tables,
)
from scheduler.tables import SCHEDULER_TABLES
from tests.support import FIXTURES, PG_BASE

PREVIOUS = FIXTURES / "prev_schema"
DURABLE = (auth_tokens, *SCHEDULER_TABLES, meta)


def _rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(table)))


def _pg_load(url: str) -> None:
    """The previous schema's PostgreSQL dump, into the (empty) schema of ``url``."""
    schema = url.rpartition("schema=")[2]
    lines = [
        line for line in (PREVIOUS / "ledger.pg.sql").read_text().splitlines()
        if not line.startswith("\\") and not line.startswith("CREATE SCHEMA ")
    ]
    sql = "\n".join(lines).replace("prev_schema_fixture", schema)
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(params=["sqlite", "postgres"])
def previous(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(store URL, the token the previous code printed) of a previous-schema ledger."""
    if request.param == "sqlite":
        db = tmp_path / "ledger.db"
        _sqlite_load(db)
        yield str(db), (PREVIOUS / "token.txt").read_text().strip()
        return
    url = request.getfixturevalue("pg_url")
    _pg_load(url)
    yield url, (PREVIOUS / "token-pg.txt").read_text().strip()


def _read_models_before(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The read-model rows as the previous code wrote them, read without opening a Runtime
    (which would upgrade them)."""
    from sqlalchemy import create_engine

    if url.startswith("postgresql"):
        base, _, schema = url.partition("?schema=")
        engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://"),
                               connect_args={"options": f"-c search_path={schema}"})
    else:
        engine = create_engine(f"sqlite:///{url}")
    try:
        return {t.name: _rows(engine, t) for t in read_model_tables()}
    finally:
        engine.dispose()


def test_a_previous_schema_ledger_opens_upgraded(previous: tuple[str, str]) -> None:
    url, token = previous
    before = _read_models_before(url)
    assert before["proj_vintages"], "the fixture holds vintages"
    with _open(url) as rt:
        engine = rt.engine
        with engine.connect() as conn:
            # durable tables migrated to the newest revision, and shaped as the models say
            assert MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}).get_current_revision() == head_revision()
            assert _durable_differences(conn) == []
            # read models rebuilt under this schema's fingerprint, with the same figures
            stamped = conn.execute(select(meta.c.value).where(meta.c.name == FINGERPRINT)).scalar()
            assert stamped == fingerprint(conn.dialect)
        after = {t.name: _rows(engine, t) for t in read_model_tables()}
        # one row more: this rebuild marks its roll-ups as holding non-reversible issuances
        assert sorted(after.pop("proj_tracking")) == sorted(
            [*before.pop("proj_tracking"), ("rollup:non_reversible", 0)])
        assert after == before
        # what no event records survived: the token authenticates, the sweep's reminders stay
        principal = TokenStore(engine).authenticate(token)
        assert principal is not None and (principal.name, principal.role) == ("fixture", "registry")
        assert TokenStore(engine).authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert len(_rows(engine, SCHEDULER_TABLES[0])) == _count_before(url, "sched_reminders")
        assert _rows(engine, SCHEDULER_TABLES[1])
        # and a new write records and projects
        events = rt.app.recorder.max_notification_id()
        vid = rt.app.issue(program="verra-vcs", project="VCS-UP", vintage_year=2024,
                           quantity=70, buffer=10, on=date(2024, 5, 1))
        assert rt.projector.position() == events + 1
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT quantity, buffer FROM proj_vintages WHERE vintage_id = :v"), {"v": vid}).one()
        assert tuple(row) == (70, 10)
        assert rt.projector.failures() == []


def _open(url: str) -> Any:
    from contextlib import closing

    return closing(Runtime(Settings(db=url)))


def _durable_differences(conn: Any) -> list[Any]:
    """How the database's durable tables differ from their models (Alembic's comparison);
    every other table of the database is left out."""
    models = MetaData()
    for table in DURABLE:
        table.to_metadata(models)
    names = {t.name for t in DURABLE}

    def durable(name: str | None, kind: str, parent: dict[str, str | None]) -> bool:
        if kind == "schema":
            return True
        return (name if kind == "table" else parent.get("table_name")) in names

    return list(compare_metadata(
        MigrationContext.configure(conn, opts={"include_name": durable}), models))


def _sqlite_load(db: Path) -> None:
    """The previous code's SQLite ledger, from its dump (a text file, not a binary fixture)."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript((PREVIOUS / "ledger.sqlite.sql").read_text())
    finally:
        conn.close()
    db.chmod(0o600)


def _count_before(url: str, table: str) -> int:
    """Rows of a table in the fixture, counted from its source (file or dump)."""
    if url.startswith("postgresql"):
        dump = (PREVIOUS / "ledger.pg.sql").read_text()
        return dump.count(f"INSERT INTO prev_schema_fixture.{table} ")
    dump = (PREVIOUS / "ledger.sqlite.sql").read_text()
    return dump.count(f'INSERT INTO "{table}" ')


def _drop_labels_as_an_older_build_had_them(engine: Engine, stamp: str) -> None:
    """Make the read models look built by code without the ``labels`` column."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE proj_vintages DROP COLUMN labels"))
        conn.execute(meta.update().where(meta.c.name == FINGERPRINT).values(value=stamp))


def _vintage_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM proj_vintages")).scalar() or 0)


def test_a_changed_read_model_schema_is_rebuilt_before_any_write(db_url: str) -> None:
    with _open(db_url) as rt:
        first = rt.app.issue(program="verra-vcs", project="VCS-A", vintage_year=2020,
                             quantity=100, buffer=20, on=date(2021, 1, 4))
        _drop_labels_as_an_older_build_had_them(rt.engine, "built by an older release")
    with _open(db_url) as rt:
        # the upgrade rebuilt the tables on opening, before this write
        second = rt.app.issue(program="verra-vcs", project="VCS-A", vintage_year=2021,
                              quantity=50, buffer=10, on=date(2022, 1, 4))
        assert rt.behind is None
        assert rt.projector.failures() == []
        assert rt.projector.lag() == 0
        with rt.engine.connect() as conn:
            ids = sorted(r[0] for r in conn.execute(text("SELECT vintage_id FROM proj_vintages")))
        assert ids == sorted([first, second])
        assert rt.app.recorder.max_notification_id() == 2  # each write recorded once


def test_without_the_fingerprint_a_changed_schema_fails_the_write_after_its_event(
    db_url: str,
) -> None:
    """The hazard the fingerprint guards against: tables that lack a column, stamped as
    current, take the event and then refuse its row."""
    with _open(db_url) as rt:
        rt.app.issue(program="verra-vcs", project="VCS-A", vintage_year=2020,
                     quantity=100, buffer=20, on=date(2021, 1, 4))
        with rt.engine.connect() as conn:
            current = fingerprint(conn.dialect)
        _drop_labels_as_an_older_build_had_them(rt.engine, current)
    with _open(db_url) as rt:
        rt.app.issue(program="verra-vcs", project="VCS-A", vintage_year=2021,
                     quantity=50, buffer=10, on=date(2022, 1, 4))
        assert rt.app.recorder.max_notification_id() == 2  # recorded...
        assert rt.behind is not None or rt.projector.failures()  # ...but not projected
        assert _vintage_rows(rt.engine) == 1


def test_the_head_revision_named_in_code_is_alembics_head() -> None:
    """A start compares the stored revision with ``HEAD_REVISION`` without loading Alembic;
    a new migration must move that name too."""
    from projections.storage.schema import HEAD_REVISION

    assert HEAD_REVISION == head_revision()
