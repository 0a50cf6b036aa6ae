"""Faults: processes killed mid-write, lost connections, locked and read-only stores, races.

- ``kill -9`` of ``permanence import`` while a batch's events are inserted but not committed,
  and while a projection page is written but not committed; after a restart no event is
  lost or duplicated (the batches that committed are whole, none partial), re-running the
  import completes it, and the read models equal a rebuild.
- PostgreSQL backends of a running server terminated with ``pg_terminate_backend``: the next
  read reconnects and catches up, the next write succeeds.
- An SQLite file that another connection holds locked, or that is read-only: the CLI exits
  1 or 2 and writes nothing; the HTTP write API answers 503.
- Two processes writing to one vintage: the loser's conflict is retried, both effects kept.

Nothing here asserts on time; deadlines only stop a test that would otherwise hang.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from permanence import tokens as auth
from permanence.config import Settings
from permanence.runtime import Runtime, open_runtime
from projections.tables import PROJECTION_TABLES
from tests.support import PG_BASE, write_acr_file

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]
DEADLINE = 120.0  # seconds before a stuck child is killed (a hang guard, not an assertion)

# ---------------------------------------------------------------------- helpers


def cli(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=DEADLINE,
                          env={**os.environ, "PERMANENCE_DB": db, **(env or {})})


def notifications(rt: Runtime) -> list[Any]:
    """Every notification in the log (the log of a test is small)."""
    return list(rt.app.recorder.select_notifications(start=1, limit=1_000_000))


def read_model_rows(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted: equal dumps mean equal read models."""
    out = {}
    with rt.engine.connect() as conn:
        for table in PROJECTION_TABLES:
            out[table.name] = sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
    return out


def assert_equals_rebuild(rt: Runtime) -> None:
    rt.projector.catch_up()
    incremental = read_model_rows(rt)
    rt.projector.rebuild()
    assert read_model_rows(rt) == incremental


@contextmanager
def watchdog(proc: subprocess.Popen[str]) -> Iterator[None]:
    timer = threading.Timer(DEADLINE, proc.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def schema_of(db: str) -> str | None:
    return db.split("schema=", 1)[1] if "schema=" in db else None


def pg_connect() -> Any:
    import psycopg

    return psycopg.connect(PG_BASE, connect_timeout=5, autocommit=True)


# ---------------------------------------------------------------------- kill -9 mid-import

IMPORTER = textwrap.dedent(
    """
    import sys, time
    point, nth = sys.argv[1], int(sys.argv[2])
    calls = 0

    def pause(tag):
        global calls
        calls += 1
        if calls == nth:
            print("PAUSED " + tag, flush=True)
            time.sleep(600)  # killed here

    if point == "events-sqlite":
        # rows of batch ``nth`` inserted, its transaction not committed
        from eventsourcing.sqlite import SQLiteApplicationRecorder
        insert = SQLiteApplicationRecorder._insert_events
        def paused_insert(self, c, stored_events, **kw):
            result = insert(self, c, stored_events, **kw)
            pause("events")
            return result
        SQLiteApplicationRecorder._insert_events = paused_insert
    elif point == "events-postgres":
        # after each batch, wait for the test (which then locks the events table)
        from ledger.application import LedgerApp
        issue_many = LedgerApp.issue_many
        def handshake(self, specs):
            ids = issue_many(self, specs)
            print("BATCH", flush=True)
            sys.stdin.readline()
            return ids
        LedgerApp.issue_many = handshake
    elif point == "projection":
        # a projection page's rows and tracking written, the transaction not committed
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from projections.projector import Projector
        state = {"projecting": False}
        commit = Projector._commit
        def tracked_commit(self, *args, **kw):
            state["projecting"] = True
            try:
                return commit(self, *args, **kw)
            finally:
                state["projecting"] = False
        Projector._commit = tracked_commit
        @event.listens_for(Engine, "commit")
        def before_commit(conn):
            if state["projecting"]:
                pause("projection")

    from permanence.cli import main
    sys.argv = ["permanence", *sys.argv[3:]]
    main()
    """
)

ROWS = 1_200
BATCH = 100
KILL_AT = 4  # the batch (or projection page) in flight when the process dies


def _start_importer(db: str, point: str, csv_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", IMPORTER, point, str(KILL_AT), "import", "acr", str(csv_path),
         "--batch", str(BATCH), "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PERMANENCE_DB": db, **env},
    )


def _kill_when_paused(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PAUSED"), f"the importer did not pause: {line!r} {proc.stderr and proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)


def _kill_while_insert_waits_on_lock(db: str, proc: subprocess.Popen[str], app_name: str) -> None:
    """PostgreSQL: lock the events table, let the next batch block inside its insert, kill."""
    assert proc.stdout is not None and proc.stdin is not None
    schema = schema_of(db)
    for done in range(1, KILL_AT):
        line = proc.stdout.readline()
        assert line.startswith("BATCH"), f"{line!r} {proc.stderr and proc.stderr.read()}"
        if done < KILL_AT - 1:
            proc.stdin.write("\n")
            proc.stdin.flush()
    # KILL_AT - 1 batches committed; the importer waits before the next one
    locker = pg_connect()
    try:
        locker.autocommit = False
        locker.execute(f'LOCK TABLE "{schema}".permanence_events IN EXCLUSIVE MODE')
        proc.stdin.write("\n")  # the next batch now blocks inside its INSERT transaction
        proc.stdin.flush()
        watcher = pg_connect()
        try:
            deadline = time.monotonic() + DEADLINE
            while not watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", (app_name,)
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the importer never blocked on the lock"
                time.sleep(0.02)
        finally:
            watcher.close()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        locker.rollback()
        locker.close()


@pytest.mark.parametrize("point", ["events", "projection"])
def test_kill_during_import_then_restart_loses_and_duplicates_nothing(
    db_url: str, tmp_path: Path, point: str
) -> None:
    ids = write_acr_file(tmp_path / "acr.csv", ROWS)
    postgres = db_url.startswith("postgresql")
    app_name = f"permanence-fault-{uuid.uuid4().hex[:8]}"
    hook = f"events-{'postgres' if postgres else 'sqlite'}" if point == "events" else point
    proc = _start_importer(db_url, hook, tmp_path / "acr.csv", {"PGAPPNAME": app_name})
    with watchdog(proc):
        if hook == "events-postgres":
            _kill_while_insert_waits_on_lock(db_url, proc, app_name)
        else:
            _kill_when_paused(proc)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    rt = Runtime(Settings(db=db_url), catch_up_on_write=False)
    try:
        log = notifications(rt)
        present = rt.app.existing(ids)
        # Whole batches, in file order: nothing partial, nothing twice.
        assert len(present) % BATCH == 0
        committed = len(present) // BATCH
        assert present == set(ids[: committed * BATCH])
        assert len(log) == len(present) == len({n.originator_id for n in log})
        if hook == "events-sqlite":
            assert committed == KILL_AT - 1  # the batch in flight left nothing behind
        elif hook == "events-postgres":
            # The batch is one INSERT statement on an autocommit connection, already sent
            # when the client died: PostgreSQL finishes it once the lock is released, or
            # not at all (lock timeout). Either way the batch is whole or absent.
            assert committed in (KILL_AT - 1, KILL_AT)
        else:
            assert committed >= KILL_AT - 1
            # the page in flight was not applied: the projection is behind the log
            assert rt.projector.position() < log[-1].id
        assert_equals_rebuild(rt)
    finally:
        rt.close()

    # Restart: the same import completes what is missing and adds nothing twice.
    done = cli(db_url, "import", "acr", str(tmp_path / "acr.csv"), "--batch", str(BATCH), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["imported"] == ROWS - len(present)
    assert summary["duplicates"] == len(present)
    rt = Runtime(Settings(db=db_url), catch_up_on_write=False)
    try:
        log = notifications(rt)
        assert len(log) == ROWS == len({n.originator_id for n in log})
        assert rt.app.existing(ids) == set(ids)
        assert rt.projector.position() == log[-1].id
        assert_equals_rebuild(rt)
    finally:
        rt.close()


# ---------------------------------------------------------------------- PostgreSQL connection loss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _terminate_backends(app_name: str) -> int:
    """``pg_terminate_backend`` of the running server's connections (only its own: other
    sessions on this database, e.g. colleagues' test runs, are left alone)."""
    with pg_connect() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s", (app_name,)
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def test_postgres_connection_loss_under_a_running_server(pg_url: str) -> None:
    with open_runtime(Settings(db=pg_url)) as rt:
        token, _ = auth.create_token(rt.engine, "registry-fault", "registry")
    headers = {"Authorization": f"Bearer {token}"}
    app_name = f"permanence-serve-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "PERMANENCE_DB": pg_url, "PGAPPNAME": app_name},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    with watchdog(proc), httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

        first = client.post("/vintages", json={
            "program": "icvcm-ccp", "project": "Conn A", "quantity": 1_000, "buffer": 100,
            "on": "2025-01-01"})
        assert first.status_code == 201, first.text
        vid = first.json()["vintage_id"]
        assert client.get("/liabilities", params={"as_of": "2026-01-01"}).json()["exposure"] == 1_000

        assert _terminate_backends(app_name) >= 1  # the server's pooled connections are gone
        # Another process writes while the server's connections are dead.
        with open_runtime(Settings(db=pg_url)) as other:
            other.app.issue(program="icvcm-ccp", project="Conn B", quantity=500, buffer=50,
                            on=date(2025, 6, 1))
        # The next read reconnects and catches up with what the other process recorded.
        after = client.get("/liabilities", params={"as_of": "2026-01-01"})
        assert after.status_code == 200, after.text
        assert after.json()["exposure"] == 1_500

        assert _terminate_backends(app_name) >= 1
        # The next command reconnects too.
        retired = client.post(f"/vintages/{vid}/retirements", json={"quantity": 10, "on": "2026-01-01"})
        assert retired.status_code == 201, retired.text
        trail = client.get(f"/vintages/{vid}/history").json()["events"]
        assert [e["event"] for e in trail] == ["Issued", "Retired"]
        assert {e["recorded_by"] for e in trail} == {"token:registry-fault"}
        assert client.get("/healthz").json()["projection_lag"] == 0


# ---------------------------------------------------------------------- locked and read-only SQLite

ISSUE = ("issue", "--program", "icvcm-ccp", "--project", "P", "--quantity", "100", "--buffer",
         "10", "--on", "2025-01-01")


def _event_count(db: str) -> int:
    with closing_sqlite(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        table = next(t for t in tables if t.endswith("_events"))
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@contextmanager
def closing_sqlite(db: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _one_line_error(proc: subprocess.CompletedProcess[str], words: tuple[str, ...]) -> None:
    """Exit 1 or 2 (asserted by the caller); the message must be one line naming the cause."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert any(w in lines[0].lower() for w in words), proc.stderr


def test_locked_sqlite_is_a_one_line_error_and_writes_nothing(sqlite_url: str) -> None:
    assert cli(sqlite_url, *ISSUE).returncode == 0
    holder = sqlite3.connect(sqlite_url, isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        proc = cli(sqlite_url, *ISSUE, env={"PERMANENCE_LOCK_TIMEOUT_SECONDS": "1"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode in (1, 2), proc.stderr
    assert _event_count(sqlite_url) == 1
    _one_line_error(proc, ("locked", "busy"))


def test_locked_sqlite_over_http_is_503_and_writes_nothing(sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    from permanence.http.app import create_app

    app = create_app(Settings(db=sqlite_url, lock_timeout_seconds=1))
    with TestClient(app) as client:
        token, _ = auth.create_token(app.state.runtime.engine, "reg", "registry")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"program": "icvcm-ccp", "project": "P", "quantity": 100, "on": "2025-01-01"}
        assert client.post("/vintages", json=body, headers=headers).status_code == 201
        holder = sqlite3.connect(sqlite_url, isolation_level=None, timeout=1)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            refused = client.post("/vintages", json=body, headers=headers)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert refused.status_code == 503, refused.text
        assert "locked" in refused.json()["detail"]
        assert refused.headers["retry-after"]
        assert _event_count(sqlite_url) == 1
        assert client.post("/vintages", json=body, headers=headers).status_code == 201


@contextmanager
def read_only(paths: list[Path]) -> Iterator[None]:
    """Make files (and folders) unwritable, even for root: ``chattr +i`` when root."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: chmod cannot make a file read-only for root")
    names = [str(p) for p in paths]
    made = subprocess.run([chattr, "+i", *names], check=False, capture_output=True, text=True)
    if made.returncode != 0:
        subprocess.run([chattr, "-i", *names], check=False, capture_output=True)
        pytest.skip(f"running as root and chattr +i is refused here ({made.stderr.strip()}): "
                    "chmod cannot make a file read-only for root")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *names], check=True)


@pytest.mark.parametrize("what", ["file", "file-and-folder"])
def test_read_only_sqlite_is_a_clear_error_and_writes_nothing(tmp_path: Path, what: str) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "ledger.db"
    assert cli(str(db), *ISSUE).returncode == 0
    for leftover in folder.glob("ledger.db-*"):  # a clean close leaves no WAL; be sure
        leftover.unlink()
    before = db.read_bytes()
    with read_only([db] if what == "file" else [db, folder]):
        proc = cli(str(db), *ISSUE)
    assert proc.returncode in (1, 2), proc.stderr
    assert db.read_bytes() == before
    assert _event_count(str(db)) == 1
    _one_line_error(proc, ("read", "readonly", "read-only", "unable to open"))


# ---------------------------------------------------------------------- two writers, one vintage

RACER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from eventsourcing.persistence import RecordConflictError
    from ledger.application import LedgerApp
    from permanence.config import Settings
    from permanence.runtime import Runtime

    db, vid, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rt = Runtime(Settings(db=db))
    loads, conflicts = [], [0]
    load = LedgerApp.vintage
    def traced_load(self, vintage_id, version=None):
        v = load(self, vintage_id, version)
        loads.append(v.version)
        if mode == "pause" and len(loads) == 1:
            print("LOADED", flush=True)
            sys.stdin.readline()  # the other process retires meanwhile
        return v
    LedgerApp.vintage = traced_load
    save = LedgerApp.save
    def counted_save(self, *objs, **kw):
        try:
            return save(self, *objs, **kw)
        except RecordConflictError:
            conflicts[0] += 1
            raise
    LedgerApp.save = counted_save
    if mode == "race":
        print("READY", flush=True)
        sys.stdin.readline()
    with rt.app.acting_as("racer-" + mode):
        for i in range(count):
            rt.app.retire(vid, 10 if mode == "pause" else 1, date(2026, 1, 1) + timedelta(days=i))
    rt.close()
    print("DONE", " ".join(map(str, loads)), "conflicts", conflicts[0], flush=True)
    """
)


def _racer(db: str, vid: str, mode: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RACER, db, vid, mode, str(count)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_processes_on_one_vintage_conflict_is_retried_and_both_kept(db_url: str) -> None:
    with open_runtime(Settings(db=db_url)) as rt:
        vid = rt.app.issue(program="icvcm-ccp", project="P", quantity=1_000, buffer=100,
                           on=date(2025, 1, 1))
    a = _racer(db_url, vid, "pause", 1)
    with watchdog(a):
        assert a.stdout is not None and a.stdin is not None
        assert a.stdout.readline().strip() == "LOADED", a.stderr.read() if a.stderr else ""
        # Process B commits a retirement after A loaded version 1 and before A saves.
        b = cli(db_url, "retire", "--vintage", vid, "--quantity", "20", "--on", "2026-02-01")
        assert b.returncode == 0, b.stderr
        a.stdin.write("go\n")
        a.stdin.flush()
        out, err = a.communicate(timeout=DEADLINE)
    assert a.returncode == 0, err
    # A's first save conflicted; it reloaded (now at version 2) and saved version 3.
    assert out.split() == ["DONE", "1", "2", "conflicts", "1"]
    with open_runtime(Settings(db=db_url)) as rt:
        events = rt.app.stream(vid)
        assert [type(e).__name__ for e in events] == ["Issued", "Retired", "Retired"]
        assert [e.originator_version for e in events] == [1, 2, 3]
        assert sorted(e.quantity for e in events[1:]) == [10, 20]  # type: ignore[attr-defined]
        assert {e.recorded_by for e in events[1:]} == {"cli", "racer-pause"}
        assert rt.app.show(vid, date(2027, 1, 1))["retired"] == 30
        assert_equals_rebuild(rt)


def test_two_processes_racing_on_one_vintage_keep_every_effect(db_url: str) -> None:
    with open_runtime(Settings(db=db_url)) as rt:
        vid = rt.app.issue(program="icvcm-ccp", project="P", quantity=1_000, buffer=100,
                           on=date(2025, 1, 1))
    each = 25
    racers = [_racer(db_url, vid, "race", each) for _ in range(2)]
    outputs = []
    for r in racers:
        assert r.stdout is not None
        assert r.stdout.readline().strip() == "READY", r.stderr.read() if r.stderr else ""
    for r in racers:  # both start together
        assert r.stdin is not None
        r.stdin.write("go\n")
        r.stdin.flush()
    for r in racers:
        with watchdog(r):
            out, err = r.communicate(timeout=DEADLINE)
        assert r.returncode == 0, err
        outputs.append(out)
    with open_runtime(Settings(db=db_url)) as rt:
        events = rt.app.stream(vid)
        assert len(events) == 1 + 2 * each
        assert [e.originator_version for e in events] == list(range(1, 2 + 2 * each))
        assert rt.app.show(vid, date(2027, 1, 1))["retired"] == 2 * each
        assert_equals_rebuild(rt)


class _Tally:
    """Notes kept beside each vintage: the retirements its events hold."""

    def __init__(self) -> None:
        self.retired = 0

    def see(self, event: Any) -> None:
        self.retired += getattr(event, "quantity", 0) if type(event).__name__ == "Retired" else 0


def test_a_batch_that_meets_a_conflict_is_reloaded_and_run_again(db_url: str) -> None:
    """``save`` does not retry: ``run_batch`` reloads every vintage and re-runs every command
    of the batch, so a writer that saved meanwhile keeps its effect and the batch its own; a
    refused command (even one that changed a vintage before a later step failed) leaves
    nothing behind and does not stop the others."""
    from ledger.batches import Unit
    from ledger.errors import LedgerError

    a, b = Runtime(Settings(db=db_url)), Runtime(Settings(db=db_url))
    try:
        x, y = (a.app.issue(program="icvcm-ccp", project="P", quantity=1_000, buffer=300,
                            on=date(2025, 1, 1)) for _ in range(2))
        runs: list[int] = []

        class Retire:
            several_steps = True

            def __init__(self, *steps: tuple[str, int]) -> None:
                self.steps = steps

            def __call__(self, unit: Unit[_Tally]) -> int:
                for vid, quantity in self.steps:
                    loaded = unit.get(vid)
                    assert loaded is not None
                    if vid == x and not runs:  # another writer saves x after this batch read it
                        b.app.retire(x, 20, date(2026, 1, 1))
                    runs.append(loaded.notes.retired)
                    loaded.vintage.retire(quantity, date(2026, 2, 1))
                    loaded.notes.retired += quantity
                return loaded.notes.retired

        results = a.app.run_batch(
            [Retire((x, 10)), Retire((x, 5), (y, 5_000)), Retire((y, 7))], _Tally, (LedgerError,))
        assert results[0] == 30 and results[2] == 7  # x: b's 20 and this batch's 10
        assert isinstance(results[1], LedgerError)  # y holds 1,000: the x part is dropped too
        # the first try, then the re-run on x as the other writer left it (20 retired)
        assert runs == [0, 10, 0, 0, 20, 30, 0, 0]
        for vid, retired in ((x, 30), (y, 7)):
            events = a.app.stream(vid)
            assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
            assert a.app.show(vid, date(2027, 1, 1))["retired"] == retired
    finally:
        a.close()
        b.close()
