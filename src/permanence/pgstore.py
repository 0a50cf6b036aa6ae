"""The event store's PostgreSQL factory: eventsourcing's, with every option of the URL.

eventsourcing connects with host, port, database, user and password only. A registry's URL
may say more (``sslmode=require``, ``sslrootcert=...``, ``options=...``); this factory adds
those options (``PERMANENCE_PG_CONNINFO``, set by :func:`permanence.config.parse_store`)
to every connection of the event store, and sets ``lock_timeout`` on the session, so that
table creation at start-up (``CREATE UNIQUE INDEX IF NOT EXISTS`` waits for a writer's
lock) gives up after the configured timeout as every other statement does.
"""

from __future__ import annotations

from typing import Any

from eventsourcing import postgres
from eventsourcing.utils import Environment
from psycopg.conninfo import conninfo_to_dict

from permanence.config import PG_CONNINFO_ENV
from projections.storage.engines import session_options

__all__ = ["PostgresFactory", "session_options"]


class PostgresFactory(postgres.PostgresFactory):
    """eventsourcing's factory, its connections carrying the URL's libpq options."""

    def __init__(self, env: Environment | dict[str, str] | None) -> None:
        super().__init__(env)  # type: ignore[arg-type]
        extra: dict[str, Any] = dict(conninfo_to_dict(self.env.get(PG_CONNINFO_ENV) or ""))
        lock_timeout_ms = int(self.env.get(self.POSTGRES_LOCK_TIMEOUT) or 0) * 1000
        extra["options"] = session_options(extra.get("options"), lock_timeout_ms)
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the pool opens on first use: not connected yet
        kwargs.update({k: v for k, v in extra.items() if v != ""})
