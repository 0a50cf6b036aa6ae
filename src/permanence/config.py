"""Configuration: one place where the environment and files enter the system.

``PERMANENCE_DB`` (or ``--db``) chooses the store: an SQLite file path or ``sqlite:///``
URL (default ``./permanence.db``), or ``postgresql://user:pass@host:port/db[?schema=s]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the setting."""


class Settings(BaseSettings):
    """Settings read from ``PERMANENCE_*`` environment variables (and ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="PERMANENCE_", env_file=".env", extra="ignore")

    db: str = "./permanence.db"
    profiles_dir: Path | None = None
    lock_timeout_seconds: int = Field(default=10, ge=1, le=600)
    actor: str | None = None
    require_auth: bool = False


@dataclass(frozen=True)
class Store:
    """A parsed database URL: the event store's env and the read side's SQLAlchemy URL."""

    kind: str  # "sqlite" or "postgresql"
    eventsourcing_env: dict[str, str]
    sqlalchemy_url: str
    schema: str | None = None
    sqlite_path: Path | None = None

    @property
    def display(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite file {self.sqlite_path}"
        env = self.eventsourcing_env
        where = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
        return f"postgresql {where}" + (f" schema {self.schema}" if self.schema else "")


def parse_store(url: str, lock_timeout: int = 10) -> Store:
    """Turn ``--db``/``PERMANENCE_DB`` into the settings both sides need."""
    if not url or not url.strip():
        raise ConfigError("PERMANENCE_DB/--db: empty database URL")
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return _postgres(url, lock_timeout)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    elif "://" in url:
        raise ConfigError(
            f"PERMANENCE_DB/--db: unsupported URL {url!r}; use a file path, sqlite:///PATH "
            "or postgresql://..."
        )
    else:
        path = Path(url)
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


def _postgres(url: str, lock_timeout: int) -> Store:
    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/")
    if not dbname:
        raise ConfigError("PERMANENCE_DB/--db: the PostgreSQL URL names no database")
    query = parse_qs(parsed.query)
    schema = query.get("schema", [None])[0]
    if schema is not None and not schema.replace("_", "").isalnum():
        raise ConfigError(f"PERMANENCE_DB/--db: schema {schema!r} must be letters, digits and _")
    user = unquote(parsed.username or "postgres")
    password = unquote(parsed.password or "")
    host = parsed.hostname or "127.0.0.1"
    port = str(parsed.port or 5432)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": port,
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout),
        "POSTGRES_CONN_MAX_AGE": "",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_POOL_SIZE": "4",
        # one INSERT ... unnest() per save: no psycopg pipeline, which can deadlock on
        # large batches (both ends waiting on full socket buffers)
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    auth = user + (f":{password}" if password else "")
    sa_url = f"postgresql+psycopg://{auth}@{host}:{port}/{dbname}"
    return Store("postgresql", env, sa_url, schema=schema)
