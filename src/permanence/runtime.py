"""The composition root: wires the ledger, the read models and the faces to one store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event

from ledger.application import LedgerApp
from ledger.profiles import ProfileCatalog
from permanence.config import Settings, Store, parse_store
from projections.projector import Projector
from projections.queries import ReadModelIndex


class Runtime:
    """Everything one process needs: the application, the engine, the projector."""

    def __init__(self, settings: Settings, catch_up_on_write: bool = True) -> None:
        self.settings = settings
        self.store: Store = parse_store(settings.db, settings.lock_timeout_seconds)
        extra = sorted(settings.profiles_dir.glob("*.json")) if settings.profiles_dir else []
        self.catalog = ProfileCatalog.load(extra)
        self.engine: Engine = make_engine(self.store, settings.lock_timeout_seconds)
        with _schema_lock(self.engine):
            self.app = LedgerApp(
                env=dict(self.store.eventsourcing_env),
                catalog=self.catalog,
                index=ReadModelIndex(self.engine),
            )
            self.projector = Projector(self.app, self.engine)
            self.projector.create_tables()
        if catch_up_on_write:
            self.app.after_save.append(self.refresh)

    def refresh(self) -> int:
        """Bring the read models up to date with the event log."""
        return self.projector.catch_up()

    def close(self) -> None:
        self.app.close()
        self.engine.dispose()


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """Serialise table creation: two processes starting at once on PostgreSQL would
    otherwise race on ``CREATE OR REPLACE FUNCTION`` ("tuple concurrently updated")."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(7142350001)")
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(7142350001)")
            conn.commit()


def make_engine(store: Store, lock_timeout: int) -> Engine:
    """A SQLAlchemy engine on the same database as the event store."""
    if store.kind == "sqlite":
        engine = create_engine(
            store.sqlalchemy_url, connect_args={"timeout": lock_timeout}, future=True
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={lock_timeout * 1000}")
            cur.close()

        return engine
    options = f"-c lock_timeout={lock_timeout * 1000}"
    if store.schema:
        options += f" -c search_path={store.schema}"
    return create_engine(
        store.sqlalchemy_url, connect_args={"options": options}, pool_pre_ping=True, future=True
    )


@contextmanager
def open_runtime(settings: Settings | None = None, **overrides: Any) -> Iterator[Runtime]:
    """Open a runtime for a block and close it after."""
    runtime = Runtime(settings or Settings(**overrides))
    try:
        yield runtime
    finally:
        runtime.close()
