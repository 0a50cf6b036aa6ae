"""Leader election: at most one daemon per ledger runs the scheduled jobs.

Correctness does not depend on it (a sweep is idempotent and optimistic concurrency
settles races), but one scheduler per ledger avoids doing all the work twice. The lock is
held for as long as the process leads and released by the operating system or the
database when the process dies, so a crashed leader never blocks a successor:

- SQLite: a file lock (``filelock``) beside the database file;
- PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection, keyed by
  database and schema (so schemas sharing a server elect separately).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from projections.storage.schema import advisory_key

log = logging.getLogger("scheduler.leader")
LOCK_NAMESPACE = "permanence-scheduler"


class StoreInfo(Protocol):
    """Where the ledger lives (``permanence.config.Store`` has these)."""

    @property
    def kind(self) -> str: ...

    @property
    def sqlalchemy_url(self) -> str: ...

    @property
    def schema(self) -> str | None: ...

    @property
    def sqlite_path(self) -> Path | None: ...


class LeaderLock(Protocol):
    """A non-blocking, exclusive lock that marks its holder as the leader."""

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class FileLeaderLock:
    """Leader lock for an SQLite ledger: an exclusive lock on ``<db>.scheduler.lock``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path), mode=0o600, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def still_held(self) -> bool:
        return self.held

    def release(self) -> None:
        if self.held:
            self._lock.release(force=True)


class AdvisoryLeaderLock:
    """Leader lock for a PostgreSQL ledger: an advisory lock held by a dedicated session."""

    def __init__(self, conninfo: str, key: int) -> None:
        self.conninfo = conninfo
        self.key = key
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        import psycopg

        if self.held:
            return True
        conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            got = bool(row and row[0])
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        """False once the session is gone (and with it, the lock)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception as e:  # noqa: BLE001 - a dead session has lost the lock
            log.warning("leader session lost", extra={"fields": {"error": str(e)}})
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):  # closing the session releases it anyway
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._drop()

    def _drop(self) -> None:
        try:
            self._conn.close()
        finally:
            self._conn = None


def libpq_params(sqlalchemy_url: str) -> dict[str, str]:
    """The libpq connection parameters of a ``postgresql+psycopg://`` URL, every part
    decoded by SQLAlchemy's ``make_url`` (a password ``p%40ss`` is ``p@ss``; ``sslmode``
    and the other options of the query are kept)."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    params = {k: str(v) for k, v in url.translate_connect_args(
        username="user", database="dbname").items()}
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    return params


def libpq_url(sqlalchemy_url: str) -> str:
    """The conninfo string psycopg accepts for the same connection as ``sqlalchemy_url``."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **libpq_params(sqlalchemy_url))


def lock_for(store: StoreInfo) -> LeaderLock:
    """The leader lock suited to the store."""
    if store.kind == "sqlite":
        if store.sqlite_path is None:
            raise ValueError("an SQLite store needs its file path for the leader lock")
        return FileLeaderLock(store.sqlite_path.with_name(store.sqlite_path.name + ".scheduler.lock"))
    dbname = libpq_params(store.sqlalchemy_url).get("dbname")
    return AdvisoryLeaderLock(libpq_url(store.sqlalchemy_url),
                              advisory_key(LOCK_NAMESPACE, dbname, store.schema))
