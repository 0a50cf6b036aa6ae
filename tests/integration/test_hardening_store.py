"""The store's URL and start-up: every part of a PostgreSQL URL reaches every connection, and
start-up gives up at the lock timeout (docs/security.md).

- The URL is parsed by SQLAlchemy's ``make_url``: a password ``p%40ss`` is ``p@ss`` to every
  engine (it once gave the read side and the leader lock a wrong host), and ``sslmode`` and
  the other libpq options reach the event store, the read side, the scheduler's job store
  and the leader lock (``sslmode=require`` was dropped).
- On PostgreSQL, start-up waited for a writer's lock however long it was held
  (``CREATE UNIQUE INDEX IF NOT EXISTS``: 27 s with a 3 s timeout); it now fails at the
  lock timeout, in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from permanence.config import PG_CONNINFO_ENV, ConfigError, Settings, parse_store
from permanence.runtime import Runtime
from scheduler.jobs import job_store_engine
from scheduler.leader import AdvisoryLeaderLock, libpq_params, lock_for
from tests.support import PG_BASE

CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]

URL = ("postgresql://ops:p%40ss@db.example.org:6543/ledger?schema=reg_1&sslmode=require"
       "&sslrootcert=/etc/ssl/ca.pem&application_name=permanence&options=-c%20work_mem%3D8MB")


def test_every_part_of_the_url_reaches_every_engine_and_the_leader_lock() -> None:
    store = parse_store(URL, lock_timeout=3)
    env = store.eventsourcing_env
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.example.org", "6543", "ledger")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_SCHEMA"]) == (
        "ops", "p@ss", "reg_1")
    assert "sslmode=require" in env[PG_CONNINFO_ENV]
    assert "sslrootcert=/etc/ssl/ca.pem" in env[PG_CONNINFO_ENV]
    read_side = make_url(store.sqlalchemy_url)
    assert (read_side.username, read_side.password, read_side.host, read_side.port,
            read_side.database) == ("ops", "p@ss", "db.example.org", 6543, "ledger")
    assert dict(read_side.query) == {"sslmode": "require", "sslrootcert": "/etc/ssl/ca.pem",
                                     "application_name": "permanence",
                                     "options": "-c work_mem=8MB"}
    jobs = job_store_engine(store)
    try:
        assert jobs.url.password == "p@ss" and jobs.url.host == "db.example.org"
        assert jobs.url.query["sslmode"] == "require"
    finally:
        jobs.dispose()
    lock = lock_for(store)
    assert isinstance(lock, AdvisoryLeaderLock)
    params = libpq_params(store.sqlalchemy_url)
    assert {k: params[k] for k in ("host", "port", "dbname", "user", "password", "sslmode")} == {
        "host": "db.example.org", "port": "6543", "dbname": "ledger", "user": "ops",
        "password": "p@ss", "sslmode": "require"}
    assert "p@ss" in lock.conninfo and "db.example.org" in lock.conninfo


def test_a_socket_folder_and_the_postgres_scheme_are_understood() -> None:
    store = parse_store("postgres://ops@/ledger?host=/run/postgresql")
    assert store.eventsourcing_env["POSTGRES_HOST"] == "/run/postgresql"
    assert libpq_params(store.sqlalchemy_url)["host"] == "/run/postgresql"


@pytest.mark.parametrize(("url", "problem"), [
    ("postgresql://h/db?sslmod=require", "PERMANENCE_DB/--db: unknown connection option 'sslmod'"),
    ("postgresql://h:port/db", "PERMANENCE_DB/--db: not a PostgreSQL URL"),
    ("postgresql://h:99999/db", "PERMANENCE_DB/--db: port '99999' is not a TCP port"),
    ("postgresql://h/", "PERMANENCE_DB/--db: the PostgreSQL URL names no database"),
    ("postgresql://h/db?schema=a;drop", "PERMANENCE_DB/--db: schema 'a;drop' must be"),
    ("postgresql://h/db?sslmode=a&sslmode=b", "PERMANENCE_DB/--db: option 'sslmode' is given"),
    ("mysql://u:secret@h/db", "PERMANENCE_DB/--db: unsupported URL 'mysql://u:***@h/db'"),
])
def test_unusable_urls_are_named_in_one_line(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_store(url)
    assert str(caught.value).startswith(problem) and "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


def _show(conn: Any) -> str:
    row = conn.execute("SHOW application_name").fetchone()
    return str(next(iter(row.values())) if isinstance(row, dict) else row[0])


def test_options_reach_every_connection_on_a_real_server(pg_url: str) -> None:
    """``application_name`` stands for every libpq option: each connection reports it."""
    name = f"perm_{uuid.uuid4().hex[:8]}"
    # the password is ignored by this server (trust) but must not change the host
    url = pg_url.replace("postgres@", "postgres:p%40ss@", 1) + f"&application_name={name}"
    rt = Runtime(Settings(db=url))
    try:
        with rt.app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            assert _show(conn) == name
        with rt.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW application_name").scalar() == name
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "10s"
        jobs = job_store_engine(rt.store)
        try:
            with jobs.connect() as conn:
                assert conn.exec_driver_sql("SHOW application_name").scalar() == name
        finally:
            jobs.dispose()
        lock = lock_for(rt.store)
        assert lock.try_acquire()
        try:
            assert isinstance(lock, AdvisoryLeaderLock)
            assert _show(lock._conn) == name
        finally:
            lock.release()
    finally:
        rt.close()


def test_sslmode_require_reaches_every_connection(pg_url: str) -> None:
    """This server speaks no TLS: a URL requiring it must fail on every path, never connect
    in the clear (``sslmode`` was once dropped)."""
    with psycopg.connect(PG_BASE, autocommit=True) as probe:
        if probe.execute("SHOW ssl").fetchone() != ("off",):
            pytest.skip("the test server speaks TLS: sslmode=require would connect")
    url = pg_url + "&sslmode=require"
    store = parse_store(url)
    done = subprocess.run([*CLI, "--db", url, "issue", "--program", "icvcm-ccp", "--project", "P",
                           "--quantity", "5", "--on", "2025-01-01"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PERMANENCE_TODAY": "2099-12-31"})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "SSL" in done.stderr
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        lock_for(store).try_acquire()
    jobs = job_store_engine(store)
    try:
        with pytest.raises(Exception, match="SSL"):
            jobs.connect().close()
    finally:
        jobs.dispose()


def test_start_up_gives_up_at_the_lock_timeout(pg_url: str) -> None:
    Runtime(Settings(db=pg_url)).close()  # the ledger exists
    schema = pg_url.rsplit("=", 1)[1]
    writer = psycopg.connect(PG_BASE)
    try:
        # what an INSERT holds until its transaction ends
        writer.execute(f"LOCK TABLE {schema}.permanence_events IN ROW EXCLUSIVE MODE")
        # a read of current read models needs none of the write side: a writer's lock
        # does not hold it up
        read = subprocess.run([*CLI, "--db", pg_url, "liabilities"], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, "PERMANENCE_LOCK_TIMEOUT_SECONDS": "2"})
        assert read.returncode == 0, read.stderr
        started = time.monotonic()
        done = subprocess.run([*CLI, "--db", pg_url, "projections", "status"],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "PERMANENCE_LOCK_TIMEOUT_SECONDS": "2"})
        elapsed = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("error: database: canceling statement due to lock timeout "
                                   "(PERMANENCE_LOCK_TIMEOUT_SECONDS)")
    assert elapsed < 2 * 10  # a generous multiple of the timeout; it waited for ever before
    again = subprocess.run([*CLI, "--db", pg_url, "liabilities"], capture_output=True,
                           text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
