"""Configuration: one place where the environment and files enter the system.

``PERMANENCE_DB`` (or ``--db``) chooses the store: an SQLite file path or ``sqlite:///``
URL (default ``./permanence.db``), or ``postgresql://user:pass@host:port/db[?schema=s]``
with any libpq option in the query (``sslmode=require``, ``sslrootcert=...``,
``application_name=...``). The URL is parsed once, by SQLAlchemy's ``make_url``, and every
part reaches every connection: the event store, the read side, the scheduler's job store
and the leader lock.

A value that cannot be used is a :class:`ConfigError` whose one-line message names the
setting (``PERMANENCE_LOCK_TIMEOUT_SECONDS: 'abc' is not ...``), never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the setting."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BOOLEANS = "1/0, true/false, yes/no or on/off"


class Settings(BaseSettings):
    """Settings read from ``PERMANENCE_*`` environment variables (and ``.env``).

    An unusable value raises :class:`ConfigError` naming the variable, so every face (CLI,
    HTTP app factory, daemon) reports it in one line.
    """

    model_config = SettingsConfigDict(env_prefix="PERMANENCE_", env_file=".env", extra="ignore")

    db: str = "./permanence.db"
    profiles_dir: Path | None = None
    lock_timeout_seconds: int = Field(default=10, ge=1, le=600)
    actor: str | None = None
    require_auth: bool = False
    #: fixes "today" (PERMANENCE_TODAY) for demos and tests: nothing may be dated after it
    today: date | None = None

    def today_source(self) -> Callable[[], date]:
        """Where "today" comes from: the fixed day, or the machine's date at each call."""
        fixed = self.today
        return (lambda: fixed) if fixed is not None else date.today

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigError(_settings_problem(e)) from None

    @field_validator("actor")
    @classmethod
    def _printable_actor(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 200 or _CONTROL.search(value)):
            raise ValueError("must be 1 to 200 printable characters")
        return value


def _settings_problem(error: ValidationError) -> str:
    """The first problem of a settings validation, as one line naming the variable."""
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "settings"
    setting = "PERMANENCE_DB/--db" if name == "db" else f"PERMANENCE_{name.upper()}"
    given = first.get("input")
    if name == "require_auth":
        return f"{setting}: {given!r} is not a boolean; use {_BOOLEANS}"
    if name == "lock_timeout_seconds":
        return f"{setting}: {given!r} is not a whole number of seconds from 1 to 600"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{setting}: {given!r}: {message}"


@dataclass(frozen=True)
class Store:
    """A parsed database URL: the event store's env and the read side's SQLAlchemy URL.

    ``libpq`` holds the connection options given in a PostgreSQL URL's query besides
    ``schema`` (``sslmode``, ``options``, ...); every connection the ledger opens uses them.
    """

    kind: str  # "sqlite" or "postgresql"
    eventsourcing_env: dict[str, str]
    sqlalchemy_url: str
    schema: str | None = None
    sqlite_path: Path | None = None
    libpq: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite file {self.sqlite_path}"
        env = self.eventsourcing_env
        where = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
        return f"postgresql {where}" + (f" schema {self.schema}" if self.schema else "")


POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
PG_CONNINFO_ENV = "PERMANENCE_PG_CONNINFO"
"""The eventsourcing env key carrying the URL's libpq options (see ``permanence.pgstore``)."""


def parse_store(url: str, lock_timeout: int = 10) -> Store:
    """Turn ``--db``/``PERMANENCE_DB`` into the settings both sides need."""
    if not url or not url.strip():
        raise ConfigError("PERMANENCE_DB/--db: empty database URL")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        return _postgres(url, lock_timeout)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    elif "://" in url:
        raise ConfigError(
            f"PERMANENCE_DB/--db: unsupported URL {_redacted(url)!r}; use a file path, "
            "sqlite:///PATH or postgresql://..."
        )
    else:
        path = Path(url)
    if _CONTROL.search(str(path)):
        raise ConfigError("PERMANENCE_DB/--db: the file name contains a control character")
    path = path.expanduser().resolve()
    if not path.parent.is_dir():
        raise ConfigError(f"PERMANENCE_DB/--db: directory {path.parent} does not exist")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": str(lock_timeout),
    }
    # a URI file name, percent-encoded: a plain path holding "?" or "#" would be cut there
    # by SQLAlchemy's URL parsing, and the read side would open another file
    return Store("sqlite", env, f"sqlite:///{path.as_uri()}?uri=true", sqlite_path=path)


def _libpq_keywords() -> frozenset[str]:
    from psycopg import pq

    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


def _redacted(url: str) -> str:
    """``url`` with any password replaced, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _postgres(url: str, lock_timeout: int) -> Store:
    setting = "PERMANENCE_DB/--db"
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"{setting}: not a PostgreSQL URL ({_redacted(url)!r}): {e}") from None
    query: dict[str, str] = {}
    for key, value in parsed.query.items():
        if not isinstance(value, str):
            raise ConfigError(f"{setting}: option {key!r} is given more than once")
        query[key] = value
    schema = query.pop("schema", None)
    if schema is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        raise ConfigError(
            f"{setting}: schema {schema!r} must be 1-63 letters, digits and _ (not starting "
            "with a digit)"
        )
    dbname = parsed.database or query.pop("dbname", None)
    if not dbname:
        raise ConfigError(f"{setting}: the PostgreSQL URL names no database")
    query.pop("dbname", None)
    unknown = sorted(set(query) - _libpq_keywords())
    if unknown:
        raise ConfigError(f"{setting}: unknown connection option {unknown[0]!r}")
    for reserved in ("user", "password"):
        if reserved in query:
            raise ConfigError(f"{setting}: give the {reserved} before the host, not as ?{reserved}=")
    # a host or port in the query (a Unix socket folder: ?host=/run/postgresql) stays there
    host = parsed.host or query.get("host") or "127.0.0.1"
    port_text = str(port) if port is not None else query.get("port") or "5432"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{setting}: port {port_text!r} is not a TCP port")
    user = parsed.username or "postgres"
    password = parsed.password or ""
    for name, value in (("user", user), ("password", password), ("host", host),
                        ("database", dbname), *query.items()):
        if "\x00" in str(value):
            raise ConfigError(f"{setting}: {name} contains a NUL character")
    env = {
        "PERSISTENCE_MODULE": "permanence.pgstore:PostgresFactory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": port_text,
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout),
        "POSTGRES_CONNECT_TIMEOUT": str(max(5, lock_timeout)),
        "POSTGRES_CONN_MAX_AGE": "",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_POOL_SIZE": "4",
        # one INSERT ... unnest() per save: no psycopg pipeline, which can deadlock on
        # large batches (both ends waiting on full socket buffers)
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        PG_CONNINFO_ENV: _conninfo(query),
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    sa_url = URL.create(
        "postgresql+psycopg", username=user, password=password or None,
        host=None if "host" in query else host,
        port=None if "port" in query else int(port_text), database=dbname, query=query,
    )
    return Store("postgresql", env, sa_url.render_as_string(hide_password=False),
                 schema=schema, libpq=query)


def _conninfo(options: dict[str, str]) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **options)
