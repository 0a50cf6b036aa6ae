"""Creating and upgrading the ledger's tables, once, under one lock.

Two kinds of tables share the ledger's database besides the event store's own:

- **read models** (``proj_*``, tagged ``info={"read_model": True}``): derived from the event
  log, so an upgrade that changes them rebuilds them. Their *fingerprint*, a hash of their
  DDL on the database's dialect, is stored in ``storage_meta`` by every rebuild; a process
  that finds another fingerprint rebuilds before it does anything else, so no write can
  commit its event and then fail to project it on a column the tables lack (a retry would
  record the event twice).
- **durable tables** (API tokens, the scheduler's reminders and sweep mark, ``storage_meta``):
  not derivable from events, so they migrate with Alembic (``migrations/``), programmatically,
  on SQLite and PostgreSQL alike; the version is kept in :data:`VERSION_TABLE`.

:func:`create_all` does both, and is called by the composition root inside
:func:`schema_lock`, which also covers the event store's own table creation: two processes
starting on a new ledger never race on DDL.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, Text, inspect, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from projections.storage.base import CODE_LENGTH, metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD_REVISION = "0001"
"""The newest migration shipped with this code (a test checks it is Alembic's head): known
without loading Alembic, so a start that has nothing to migrate does not import it."""
VERSION_TABLE = "storage_version"
"""Alembic's version table (named apart from an application's own ``alembic_version``)."""
FINGERPRINT = "read_models"
"""The ``storage_meta`` entry holding the read models' fingerprint."""
LOCK_NAMESPACE = "permanence-schema"

version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))
"""Alembic's version table, read without Alembic (not part of :data:`metadata`: Alembic
creates and owns it)."""

meta = Table(
    "storage_meta",
    metadata,
    Column("name", String(CODE_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
)


def read_model_tables() -> list[Table]:
    """The rebuildable tables, in creation order."""
    import projections.tables  # noqa: F401 - declares them on the one MetaData

    return [t for t in metadata.sorted_tables if t.info.get("read_model")]


def fingerprint(dialect: Dialect) -> str:
    """A hash of the read models' DDL (tables and indexes) as this dialect writes it."""
    return _fingerprint(dialect.name)


@cache
def _fingerprint(dialect_name: str) -> str:
    dialect = dialect_named(dialect_name)
    parts: list[str] = []
    for table in sorted(read_model_tables(), key=lambda t: t.name):
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return hashlib.sha256("\n;\n".join(parts).encode()).hexdigest()


def dialect_named(name: str) -> Dialect:
    """A dialect to compile DDL for, by name (``sqlite`` or ``postgresql``; each loaded only
    when asked for, so a SQLite command never loads PostgreSQL's)."""
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect()  # type: ignore[no-any-return]
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect()  # type: ignore[no-any-return]


def stored_fingerprint(conn: Connection) -> str | None:
    """The fingerprint the last rebuild stored, or None (never built, or a previous schema)."""
    value = conn.execute(select(meta.c.value).where(meta.c.name == FINGERPRINT)).scalar()
    return None if value is None else str(value)


def stamp_fingerprint(conn: Connection) -> None:
    """Record that the read models now have the current schema (in the rebuild's transaction)."""
    conn.execute(meta.delete().where(meta.c.name == FINGERPRINT))
    conn.execute(meta.insert().values(name=FINGERPRINT, value=fingerprint(conn.dialect)))


def forget_fingerprint(conn: Connection) -> None:
    """The read models are gone or partial: the next start rebuilds them."""
    conn.execute(meta.delete().where(meta.c.name == FINGERPRINT))


def read_models_current(engine: Engine) -> bool:
    """Whether the read models were built by this schema, and are there (every rebuild
    writes the tracking position, so a dropped table shows as a missing position)."""
    from projections.tables import tracking

    with engine.connect() as conn:
        if stored_fingerprint(conn) != fingerprint(conn.dialect):
            return False
        try:
            return conn.execute(select(tracking.c.position)).first() is not None
        except DBAPIError:  # the table is missing
            return False


def _config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def migrate(engine: Engine) -> None:
    """Bring the durable tables to the newest migration (nothing to do when they are)."""
    with engine.connect() as conn:
        if durable_revision(conn) == HEAD_REVISION:
            return
        from alembic import command

        command.upgrade(_config(conn), "head")
        conn.commit()


def durable_revision(conn: Connection) -> str | None:
    """The migration the durable tables are at (None: never migrated)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    found = conn.execute(select(version.c.version_num)).scalars().all()
    return found[0] if len(found) == 1 else None


@cache
def head_revision() -> str | None:
    """The newest migration shipped with this code, as Alembic reads the scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def create_all(engine: Engine, rebuild: Callable[[], object]) -> None:
    """Migrate the durable tables, then rebuild the read models if their schema changed.

    The caller holds :func:`schema_lock`. ``rebuild`` replaces every read model in one
    transaction and stamps the fingerprint (``Projector.rebuild``); it runs for a new
    ledger too, where it only creates the empty tables.
    """
    migrate(engine)
    _migrated.add(engine)
    if not read_models_current(engine):
        rebuild()


@contextmanager
def schema_lock(engine: Engine, timeout: float = 60) -> Iterator[None]:
    """Serialise creating and upgrading tables among processes starting at once.

    PostgreSQL: a session advisory lock keyed by database and schema (ledgers in other
    schemas start independently), its wait bounded by the session's lock timeout. SQLite:
    a file lock on ``<db>.schema.lock`` beside the database, waiting at most ``timeout``
    seconds (a lock on the database file itself would be dropped, with SQLite's own
    locks, whenever any descriptor of that file closes).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # the configured search path, not current_schema(): that is NULL until the
            # ledger's schema is created, which is what the lock is for
            where = conn.exec_driver_sql(
                "SELECT current_database(), current_setting('search_path')").one()
            key = advisory_key(LOCK_NAMESPACE, where[0], where[1])
            conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (key,))
            conn.commit()
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                conn.commit()
            return
        path = _sqlite_file(conn)
    if path is None:  # an in-memory database: one process only
        yield
        return
    from filelock import FileLock

    lock = FileLock(str(path.with_name(path.name + ".schema.lock")), mode=0o600,
                    timeout=timeout, thread_local=False)
    with lock:
        yield


def _sqlite_file(conn: Connection) -> Path | None:
    for _, name, file in conn.exec_driver_sql("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file)
    return None


def ensure_durable(engine: Engine) -> None:
    """Migrate the durable tables for a caller that has only an engine (the token commands,
    the scheduler), once per engine; the composition root has done it already."""
    if engine in _migrated:
        return
    with schema_lock(engine):
        migrate(engine)
    _migrated.add(engine)


_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()


def advisory_key(*parts: str | None) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``."""
    digest = hashlib.blake2b("\x1f".join(p or "" for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
