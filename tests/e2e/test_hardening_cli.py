"""The command line under careless or hostile input: one line, an exit code, nothing written.

Each test reproduces a fault found by trying the CLI as a new user would (a traceback, an
empty ledger created by a typo, a world-readable file, an escape sequence stored), through
the real console entry point in a subprocess.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from permanence.config import Settings
from permanence.runtime import Runtime
from scheduler.leader import lock_for

CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]


def run(db: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    return subprocess.run([*CLI, "--db", db, *args], check=False, capture_output=True, text=True,
                          timeout=120, env={**base, "PERMANENCE_TODAY": "2099-12-31", **env})


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single error line of a failed command (no traceback)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def events(db: str) -> int:
    rt = Runtime(Settings(db=db))
    try:
        return len(rt.app.recorder.select_notifications(start=1, limit=1_000_000))
    finally:
        rt.close()


@pytest.fixture
def ledger(db_url: str) -> str:
    """A ledger holding one vintage."""
    rt = Runtime(Settings(db=db_url))
    try:
        rt.app.issue(program="icvcm-ccp", project="P1", quantity=1_000, buffer=100,
                     on=date(2025, 1, 1), vintage_year=2024)
    finally:
        rt.close()
    return db_url


# ---------------------------------------------------------------------- missing ledgers

READS = [("liabilities",), ("buffer",), ("runoff",), ("head",), ("check",),
         ("projections", "status"), ("projections", "rebuild"), ("history", "x"),
         ("audit", "--project", "P1"), ("sweep", "--as-of", "2030-01-01"),
         ("verify", "--project", "P1", "--on", "2026-01-01")]


@pytest.mark.parametrize("args", READS, ids=lambda a: "-".join(a))
def test_a_command_on_a_missing_file_creates_no_ledger(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "typo.db"
    line = one_line(run(str(typo), *args), 1)
    assert line == (f"error: no ledger at {typo}; `permanence issue` or `permanence import` "
                    "creates one")
    assert list(tmp_path.iterdir()) == []


def test_a_schema_without_a_ledger_is_not_made_one(pg_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    line = one_line(run(pg_url, "liabilities"), 1)
    assert line.startswith("error: no ledger in postgresql ") and "permanence issue" in line
    schema = pg_url.rsplit("=", 1)[1]
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://").split("?")[0])
    try:
        assert inspect(engine).get_table_names(schema=schema) == []
    finally:
        engine.dispose()


def test_issue_creates_the_ledger_and_reads_then_work(tmp_path: Path) -> None:
    db = str(tmp_path / "new.db")
    made = run(db, "issue", "--program", "icvcm-ccp", "--project", "P", "--quantity", "10",
               "--on", "2025-01-01")
    assert made.returncode == 0, made.stderr
    assert run(db, "liabilities", "--as-of", "2026-01-01").returncode == 0


# ---------------------------------------------------------------------- one line per fault


@pytest.mark.parametrize(("args", "expected"), [
    (("--quantity", "²"), "error: quantity: '²' is not a whole number of tonnes"),
    (("--quantity", "٣"), "error: quantity: '٣' is not a whole number of tonnes"),
    (("--vintage-year", "1" * 31),
     f"error: vintage-year: '{'1' * 31}' is not a year from 1 to 9999"),
])
def test_malformed_numbers_are_one_line(ledger: str, args: tuple[str, ...], expected: str) -> None:
    before = events(ledger)
    spec = {"--program": "icvcm-ccp", "--project": "P2", "--quantity": "5", "--on": "2025-02-01"}
    spec.update(dict(zip(args[::2], args[1::2], strict=True)))
    done = run(ledger, "issue", *(x for kv in spec.items() for x in kv))
    assert one_line(done, 2) == expected
    assert events(ledger) == before


@pytest.mark.parametrize("known_at", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00",
                                      "9999-12-31T23:59:59-23:59"])
def test_known_at_at_extreme_offsets_is_one_line(ledger: str, known_at: str) -> None:
    for command in (["liabilities"], ["buffer"], ["audit", "--project", "P1"]):
        line = one_line(run(ledger, *command, "--known-at", known_at), 2)
        assert line == f"error: known-at: '{known_at}' falls outside years 1 to 9999 in UTC"


BOOLEAN = "is not a boolean; use 1/0, true/false, yes/no or on/off"
SECONDS = "is not a whole number of seconds from 1 to 600"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("PERMANENCE_REQUIRE_AUTH", "", f"error: PERMANENCE_REQUIRE_AUTH: '' {BOOLEAN}"),
    ("PERMANENCE_REQUIRE_AUTH", "maybe", f"error: PERMANENCE_REQUIRE_AUTH: 'maybe' {BOOLEAN}"),
    ("PERMANENCE_LOCK_TIMEOUT_SECONDS", "soon",
     f"error: PERMANENCE_LOCK_TIMEOUT_SECONDS: 'soon' {SECONDS}"),
    ("PERMANENCE_LOCK_TIMEOUT_SECONDS", "0", f"error: PERMANENCE_LOCK_TIMEOUT_SECONDS: '0' {SECONDS}"),
    ("PERMANENCE_ACTOR", "ops\x1b[2J",
     "error: PERMANENCE_ACTOR: 'ops\\x1b[2J': must be 1 to 200 printable characters"),
])
def test_unusable_settings_are_one_line(sqlite_url: str, name: str, value: str,
                                        expected: str) -> None:
    for command in (["liabilities"], ["serve", "--port", "1"], ["token", "list"]):
        assert one_line(run(sqlite_url, *command, **{name: value}), 2) == expected


def test_serve_with_postgresql_down_is_one_line(tmp_path: Path) -> None:
    down = "postgresql://postgres@127.0.0.1:1/test"
    line = one_line(run(down, "serve", "--port", "0"), 1)
    assert line.startswith("error: database: ") and "127.0.0.1" in line and "port 1" in line
    assert one_line(run(down, "liabilities"), 1).startswith("error: database: ")


# ---------------------------------------------------------------------- control characters

@pytest.mark.parametrize("text", ["Acme\x1b[31m", "line\nbreak", "CSI\x9b2J",
                                  "bidi\u202eevil", "bell\x07"])
def test_control_characters_in_arguments_are_refused(ledger: str, text: str) -> None:
    before = events(ledger)
    done = run(ledger, "issue", "--program", "icvcm-ccp", "--project", text, "--quantity", "5",
               "--on", "2025-02-01")
    line = one_line(done, 2)
    assert line.startswith("error: --project: contains the control character ")
    assert events(ledger) == before
    named = run(ledger, "cancel", "--vintage", "x", "--quantity", "1", "--on", "2025-02-01",
                f"--reason={text}")
    assert one_line(named, 2).startswith("error: --reason: contains the control character ")


def test_printable_names_in_any_script_are_taken(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    done = run(db, "issue", "--program", "icvcm-ccp", "--project", "Forêt Ñandú 森林 #7",
               "--quantity", "5", "--on", "2025-02-01")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------- file modes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ledger_and_what_it_writes_are_the_owners_only(tmp_path: Path) -> None:
    folder = tmp_path / "ledger"
    folder.mkdir()
    os.chmod(folder, 0o755)
    db = folder / "l.db"
    assert run(str(db), "issue", "--program", "icvcm-ccp", "--project", "P", "--quantity", "5",
               "--on", "2025-01-01").returncode == 0
    assert mode(db) == 0o600
    out = tmp_path / "export.jsonl"
    assert run(str(db), "export", "--out", str(out)).returncode == 0
    assert mode(out) == 0o600
    report = tmp_path / "report"
    assert run(str(db), "report", "--out", str(report), "--as-of", "2026-01-01").returncode == 0
    assert mode(report) == 0o700
    assert all(mode(p) == 0o600 for p in report.rglob("*") if p.is_file())

    # opened by the library too (not only through the CLI's umask): file, -wal, -shm, lock
    previous = os.umask(0o022)
    direct = folder / "direct.db"
    rt = Runtime(Settings(db=str(direct)))
    try:
        rt.app.issue(program="icvcm-ccp", project="P", quantity=5, buffer=0,
                     on=date(2025, 1, 1), vintage_year=2024)
        companions = [direct, direct.with_name("direct.db-wal"), direct.with_name("direct.db-shm")]
        assert [mode(p) for p in companions] == [0o600, 0o600, 0o600]
        lock = lock_for(rt.store)
        assert lock.try_acquire()
        try:
            assert mode(direct.with_name("direct.db.scheduler.lock")) == 0o600
        finally:
            lock.release()
    finally:
        rt.close()
        os.umask(previous)
