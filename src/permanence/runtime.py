"""The composition root: wires the ledger, the read models and the faces to one store."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import DBAPIError

from permanence.config import Settings, Store, parse_store
from projections.storage import engines
from projections.storage.schema import read_models_current

log = logging.getLogger("permanence.runtime")


class Runtime:
    """Everything one process needs: the application, the engine, the projector."""

    def __init__(self, settings: Settings, catch_up_on_write: bool = True,
                 create: bool = True) -> None:
        """Open the store; with ``create=False`` a ledger that does not exist yet is a
        :class:`LedgerNotFound` (read commands never create one), else it is created."""
        from ledger.application import LedgerApp
        from ledger.profiles import ProfileCatalog
        from projections.projector import Projector
        from projections.queries import ReadModelIndex
        from projections.storage.schema import create_all, schema_lock

        self.settings = settings
        self.store: Store = parse_store(settings.db, settings.lock_timeout_seconds)
        extra = sorted(settings.profiles_dir.glob("*.json")) if settings.profiles_dir else []
        self.catalog = ProfileCatalog.load(extra)
        self.engine: Engine = make_engine(self.store, settings.lock_timeout_seconds)
        if not create:
            try:
                _require_ledger(self.store, self.engine)
            except BaseException:
                self.engine.dispose()
                raise
        elif self.store.sqlite_path is not None:
            _create_private_file(self.store.sqlite_path)
        # every table (the event store's, the durable ones, the read models) is made or
        # upgraded here, by one process at a time, before anything is written
        with schema_lock(self.engine, timeout=settings.lock_timeout_seconds):
            self.app = LedgerApp(
                env=dict(self.store.eventsourcing_env),
                catalog=self.catalog,
                index=ReadModelIndex(self.engine),
                today=settings.today_source(),
            )
            self.projector = Projector(self.app, self.engine)
            create_all(self.engine, self.projector.rebuild)
        #: why the read models could not follow the last write (its event is recorded)
        self.behind: str | None = None
        if catch_up_on_write:
            self.app.after_save.append(self.after_write)

    def after_write(self) -> None:
        """Catch the read models up after a write. The write's events are committed by now,
        so a failure here must not report the write as failed (an operator would retry and
        record it twice): it is kept in :attr:`behind` for the face to warn about."""
        try:
            self.refresh()
            self.behind = None
        except Exception as e:  # noqa: BLE001 - whatever it is, the write stands
            self.behind = (str(e).strip().splitlines() or [type(e).__name__])[0]
            log.warning("read models behind after a write", extra={"fields": {"error": self.behind}})

    def refresh(self) -> int:
        """Bring the read models up to date with the event log."""
        return self.projector.catch_up()

    def close(self) -> None:
        self.app.close()
        self.engine.dispose()


class LedgerNotFound(LookupError):
    """A command that only reads (or changes what exists) named a ledger that is not there."""


EVENTS_TABLE = "permanence_events"
LOG_HEAD = {
    "sqlite": "SELECT MAX(rowid) FROM stored_events",
    "postgresql": f"SELECT MAX(notification_id) FROM {EVENTS_TABLE}",
}
"""The event log's last notification id by dialect, asked as eventsourcing's recorders store
it (a test checks it against ``recorder.max_notification_id()``), without loading them."""
CREATE_HINT = "`permanence issue` or `permanence import` creates one"


def _require_ledger(store: Store, engine: Engine) -> None:
    """Refuse a store that holds no ledger yet, before anything is created in it (an
    engine connects only when used: for SQLite the file is checked without connecting)."""
    if store.sqlite_path is not None:
        if not store.sqlite_path.is_file():
            raise LedgerNotFound(f"no ledger at {store.sqlite_path}; {CREATE_HINT}")
        return
    if not inspect(engine).has_table(EVENTS_TABLE, schema=store.schema):
        raise LedgerNotFound(f"no ledger in {store.display}; {CREATE_HINT}")


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable and writable by its owner only (0600); SQLite gives
    its -wal and -shm files the mode of the database file. An existing file is left as is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def make_engine(store: Store, lock_timeout: int) -> Engine:
    """A SQLAlchemy engine on the same database as the event store."""
    return engines.make_engine(store.sqlalchemy_url, lock_timeout, libpq=store.libpq,
                               schema=store.schema if store.kind != "sqlite" else None)


@contextmanager
def read_engine(settings: Settings) -> Iterator[Engine]:
    """An engine on the read models for a command that only reads them.

    When they are current (built by this code's schema, and holding every event recorded),
    nothing of the write side is loaded or opened: a read command answers in about the time
    it takes to import SQLAlchemy. Otherwise the whole :class:`Runtime` opens (rebuilding read
    models of another schema) and catches them up first, and its engine answers.
    """
    store = parse_store(settings.db, settings.lock_timeout_seconds)
    engine = make_engine(store, settings.lock_timeout_seconds)
    try:
        _require_ledger(store, engine)
    except BaseException:
        engine.dispose()
        raise
    if _caught_up(engine):
        try:
            yield engine
        finally:
            engine.dispose()
        return
    engine.dispose()
    runtime = Runtime(settings, create=False)
    try:
        runtime.refresh()
        yield runtime.engine
    finally:
        runtime.close()


def _caught_up(engine: Engine) -> bool:
    """Whether the read models have this code's schema and every recorded event."""
    from projections.tables import tracking

    try:
        if not read_models_current(engine):
            return False
        with engine.connect() as conn:
            head = conn.exec_driver_sql(LOG_HEAD[engine.dialect.name]).scalar()
            position = conn.execute(select(func.max(tracking.c.position))).scalar()  # one row
    except DBAPIError:  # a table missing or older: the whole runtime sets it right
        return False
    return int(head or 0) <= int(position or 0)


@contextmanager
def open_runtime(settings: Settings | None = None, **overrides: Any) -> Iterator[Runtime]:
    """Open a runtime for a block and close it after."""
    runtime = Runtime(settings or Settings(**overrides))
    try:
        yield runtime
    finally:
        runtime.close()
