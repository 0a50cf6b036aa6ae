"""SQLAlchemy engines on the ledger's own database (SQLite file or PostgreSQL).

Every connection waits for a lock at most the configured lock timeout; a SQLite file runs
in WAL mode so that readers and one writer proceed together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event


def session_options(options: str | None, lock_timeout_ms: int, schema: str | None = None) -> str:
    """libpq ``options``: the URL's own, then ``lock_timeout`` (and ``search_path``)."""
    parts = [options.strip()] if options and options.strip() else []
    if lock_timeout_ms > 0:
        parts.append(f"-c lock_timeout={lock_timeout_ms}")
    if schema:
        parts.append(f"-c search_path={schema}")
    return " ".join(parts)


def make_engine(
    url: str,
    lock_timeout: int,
    *,
    libpq: Mapping[str, str] | None = None,
    schema: str | None = None,
) -> Engine:
    """An engine on ``url``: a ``sqlite:`` URL, or a PostgreSQL one whose extra libpq
    options (``libpq``) and ``schema`` every connection carries."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": lock_timeout}, future=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={lock_timeout * 1000}")
            cur.close()

        return engine
    extra = dict(libpq or {})
    options = session_options(extra.get("options"), lock_timeout * 1000, schema)
    return create_engine(
        url,
        connect_args={"options": options, "connect_timeout": _connect_timeout(extra, lock_timeout)},
        pool_pre_ping=True,
        future=True,
    )


def _connect_timeout(libpq: Mapping[str, str], lock_timeout: int) -> int:
    """The URL's ``connect_timeout``, else the lock timeout (at least 5 s): a server that
    does not answer is reported as one does not wait for a lock forever."""
    given = libpq.get("connect_timeout", "")
    return int(given) if given.isdigit() else max(5, lock_timeout)
