"""The CLI contract: exit codes, one-line errors, JSON shapes, and nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from permanence.config import Settings
from permanence.runtime import Runtime

EXE = [sys.executable, "-m", "permanence.cli"]


def run(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERMANENCE_DB": db}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def event_count(db: str) -> int:
    rt = Runtime(Settings(db=db))
    try:
        return rt.app.recorder.max_notification_id() or 0
    finally:
        rt.close()


@pytest.fixture
def ledger(db_url: str) -> tuple[str, str]:
    out = run(db_url, "issue", "--program", "icvcm-ccp", "--project", "P1", "--vintage-year", "2024",
              "--quantity", "80000", "--buffer", "20000", "--on", "2025-01-01",
              "--serials", "1000-80999", "--json")
    assert out.returncode == 0, out.stderr
    return db_url, json.loads(out.stdout)["vintage_id"]


def test_tour_json_shapes(ledger: tuple[str, str]) -> None:
    db, vid = ledger
    assert run(db, "verify", "--vintage", vid, "--on", "2029-06-30").returncode == 0
    rev = run(db, "reversal", "--vintage", vid, "--on", "2030-01-01", "--quantity", "500",
              "--cause", "wildfire", "--negligence", "--json")
    assert json.loads(rev.stdout) == {"reversal_id": "R1", "classification": "avoidable"}
    comp = run(db, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "proponent",
               "--quantity", "500", "--on", "2030-02-01", "--json")
    assert comp.returncode == 0, comp.stderr
    assert json.loads(comp.stdout)["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert run(db, "retire", "--vintage", vid, "--quantity", "1000", "--on", "2030-03-01",
               "--beneficiary", "Acme").returncode == 0
    shown = json.loads(run(db, "show", vid, "--as-of", "2031-01-01", "--json").stdout)
    assert shown["period_end"] == "2065-01-01"
    assert shown["verification_due"] == "2034-06-30"
    assert shown["status"] == "monitored"
    assert shown["exposure"] == 80_000 and shown["retired"] == 1_000
    hist = json.loads(run(db, "history", vid, "--json").stdout)
    assert [e["event"] for e in hist["events"]] == [
        "Issued", "Verified", "ReversalRecorded", "Compensated", "Retired"]
    assert hist["events"][0]["recorded_by"] == "cli"
    listed = json.loads(run(db, "profiles", "--json").stdout)
    assert "carb-forest" in {p["name"] for p in listed}
    one = json.loads(run(db, "profiles", "icvcm-ccp", "--json").stdout)
    assert one["period_years"] == {"value": 40, "source": "ICVCM Assessment Framework s.9",
                                   "confidence": "V", "note": one["period_years"]["note"]}
    liab = json.loads(run(db, "liabilities", "--as-of", "2031-01-01", "--by", "program", "--json").stdout)
    assert liab["exposure"] == 80_000 and liab["groups"]["icvcm-ccp"]["exposure"] == 80_000
    buf = json.loads(run(db, "buffer", "--as-of", "2031-01-01", "--json").stdout)
    assert (buf["contributions"], buf["cancelled"], buf["on_hold"], buf["balance"]) == (20_000, 0, 0, 20_000)
    assert buf["coverage_ratio"] == 0.25


BAD_INPUT = [
    (2, ["issue", "--program", "icvcm-ccp", "--project", "X", "--quantity", "1.5", "--on", "2025-01-01"], "quantity"),
    (2, ["issue", "--program", "icvcm-ccp", "--project", "X", "--quantity", "-4", "--on", "2025-01-01"], "quantity"),
    (2, ["issue", "--program", "icvcm-ccp", "--project", "X", "--quantity", "4", "--on", "2025-02-30"], "on"),
    (1, ["issue", "--program", "nope", "--project", "X", "--quantity", "4", "--on", "2025-01-01"], "unknown program"),
    (1, ["reversal", "--vintage", "{vid}", "--on", "2030-01-01", "--quantity", "100001", "--cause", "storm"], "exceeds the 80,000 t still exposed"),
    (1, ["verify", "--vintage", "{vid}", "--on", "2024-12-31"], "before the issuance date"),
    (1, ["compensate", "--vintage", "{vid}", "--reversal", "R1", "--by", "buffer", "--quantity", "1", "--on", "2030-01-01"], "no reversal"),
    (1, ["retire", "--vintage", "4b0a4c8e-0000-4000-8000-000000000000", "--quantity", "1", "--on", "2030-01-01"], "no vintage"),
    (1, ["retire", "--vintage", "not-an-id", "--quantity", "1", "--on", "2030-01-01"], "not a vintage id"),
    (2, ["liabilities", "--by", "colour"], "by"),
    (2, ["compensate", "--vintage", "{vid}", "--reversal", "R1", "--by", "magic", "--quantity", "1", "--on", "2030-01-01"], "by"),
]


@pytest.mark.parametrize(("code", "args", "needle"), BAD_INPUT, ids=[" ".join(a[:1] + [n]) for _, a, n in BAD_INPUT])
def test_bad_input_one_line_exit_code_nothing_written(
    ledger: tuple[str, str], code: int, args: list[str], needle: str
) -> None:
    db, vid = ledger
    before = event_count(db)
    out = run(db, *[a.replace("{vid}", vid) for a in args])
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert event_count(db) == before


def test_compensation_above_due_rejected(ledger: tuple[str, str]) -> None:
    db, vid = ledger
    assert run(db, "reversal", "--vintage", vid, "--on", "2030-01-01", "--quantity", "10",
               "--cause", "storm").returncode == 0
    before = event_count(db)
    out = run(db, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "buffer",
              "--quantity", "11", "--on", "2030-01-02")
    assert out.returncode == 1 and "exceeds the 10 still due" in out.stderr
    assert event_count(db) == before


def test_bad_database_url_is_a_usage_error(tmp_path: Path) -> None:
    out = run("mysql://x/y", "liabilities")
    assert out.returncode == 2 and "unsupported URL" in out.stderr
    out = run(str(tmp_path / "missing" / "x.db"), "liabilities")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_a_file_name_a_url_would_misread(tmp_path: Path) -> None:
    """``?`` and ``#`` in a SQLite file name: the read models live in the same file as the
    events, not in one named by the part before the ``?``."""
    db = str(tmp_path / "registry?v=2 #1.db")
    out = run(db, "issue", "--program", "icvcm-ccp", "--project", "P1", "--quantity", "700",
              "--buffer", "70", "--on", "2025-01-01", "--json")
    assert out.returncode == 0, out.stderr
    out = run(db, "liabilities", "--as-of", "2026-01-01", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["exposure"] == 700
    stray = [p.name for p in tmp_path.iterdir() if not p.name.startswith("registry?v=2 #1.db")]
    assert stray == []
