"""The CLI contract: exit codes, one-line errors, JSON shapes, and nothing written on bad input."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import typer
from typer.testing import CliRunner

from ledger.events import CompensationRoute, TransfereeKind
from permanence import tokens as token_store
from permanence.cli import choices
from permanence.cli.main import app
from permanence.config import Settings
from permanence.imports import PARSERS
from permanence.runtime import Runtime
from projections.listings import STATUSES
from projections.queries import GROUP_BY_CHOICES
from scheduler.reminders import DEFAULT_HORIZON_DAYS, KINDS
from scheduler.sweep import CHUNK_SIZE

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


# ---------------------------------------------------------------------- a CLI that feels like one

ON_2035 = {"PERMANENCE_TODAY": "2035-01-01"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env or ON_2035)


@pytest.fixture
def story(db_url: str) -> dict[str, str]:
    """A small ledger told through the CLI: two programs, a reversal, its compensation,
    insurance, a retirement and a lapse recorded by a sweep."""
    ids = {}
    for key, program, project, year, quantity, buffer, on in (
        ("a", "icvcm-ccp", "AMAZON-7", "2024", "80000", "20000", "2025-01-01"),
        ("b", "carb-forest", "SIERRA-2", "2023", "50000", "9000", "2024-06-01"),
    ):
        done = invoke("--db", db_url, "issue", "--program", program, "--project", project,
                      "--vintage-year", year, "--quantity", quantity, "--buffer", buffer,
                      "--on", on, "--json")
        assert done.exit_code == 0, done.output
        ids[key] = json.loads(done.stdout)["vintage_id"]
    for args in (
        ("reversal", "--vintage", ids["b"], "--on", "2027-08-15", "--quantity", "4000",
         "--cause", "wildfire"),
        ("compensate", "--vintage", ids["b"], "--reversal", "R1", "--by", "buffer",
         "--quantity", "3000", "--on", "2027-10-01"),
        ("insure", "--vintage", ids["b"], "--insurer", "Example Re", "--from", "2028-01-01",
         "--to", "2060-12-31", "--limit", "5000"),
        ("retire", "--vintage", ids["a"], "--quantity", "10000", "--on", "2030-03-01"),
        ("sweep", "--as-of", "2034-07-01"),
    ):
        done = invoke("--db", db_url, *args)
        assert done.exit_code == 0, (args, done.output)
    return ids


CHOICES = [
    (["liabilities", "--by", "colour"], "--by", GROUP_BY_CHOICES),
    (["compensate", "--vintage", "x", "--reversal", "R1", "--by", "magic", "--quantity", "1",
      "--on", "2030-01-01"], "--by", get_args(CompensationRoute)),
    (["transfer", "--vintage", "x", "--to", "F", "--kind", "bank", "--on", "2030-01-01"],
     "--kind", get_args(TransfereeKind)),
    (["vintages", "--status", "asleep"], "--status", STATUSES),
    (["export", "--out", "x.jsonl", "--format", "xml"], "--format", ("jsonl", "cadt")),
    (["reminders", "--kind", "birthday"], "--kind", KINDS),
    (["token", "create", "--role", "admin", "--name", "n"], "--role", token_store.ROLES),
    (["import", "registry-x", "file.csv"], "FORMAT", tuple(PARSERS)),
]


@pytest.mark.parametrize(("args", "option", "allowed"), CHOICES, ids=[c[0][0] for c in CHOICES])
def test_a_choice_outside_its_enum_is_one_line_exit_2_naming_every_choice(
    db_url: str, story: dict[str, str], args: list[str], option: str, allowed: tuple[str, ...]
) -> None:
    before = event_count(db_url)
    done = invoke("--db", db_url, *args)
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert option in lines[0] or option.lower().lstrip("-") in lines[0].lower(), lines[0]
    assert all(f"'{choice}'" in lines[0] for choice in allowed), lines[0]
    assert event_count(db_url) == before


def test_each_enum_is_the_set_its_module_accepts() -> None:
    def values(enum: type[choices.Choice]) -> set[str]:
        return {member.value for member in enum}

    assert values(choices.GroupBy) == set(GROUP_BY_CHOICES)
    assert values(choices.Route) == set(get_args(CompensationRoute))
    assert values(choices.TransfereeKind) == set(get_args(TransfereeKind))
    assert values(choices.VintageStatus) == set(STATUSES)
    assert values(choices.ReminderKind) == set(KINDS)
    assert values(choices.Role) == set(token_store.ROLES)
    assert values(choices.ImportFormat) == set(PARSERS)
    from permanence.cli import imports, scheduling
    from permanence.imports.loader import BATCH

    assert (imports.BATCH, scheduling.CHUNK_SIZE, scheduling.DEFAULT_HORIZON_DAYS) == (
        BATCH, CHUNK_SIZE, DEFAULT_HORIZON_DAYS)


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(((*path, name), command))
        found += _commands(command, (*path, name))
    return found


def test_help_everywhere_with_h_flags_as_flags_choices_in_full_exit_codes() -> None:
    root = invoke("-h")
    assert root.exit_code == 0 and root.stdout.startswith("Usage:")
    text = " ".join(root.stdout.split())
    assert "Exit codes: 0 done; 1 refused" in text and "2 malformed input" in text
    assert "before or after the command" in text
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 30
    for path, command in commands:
        done = invoke(*path, "-h")
        assert done.exit_code == 0, (path, done.output)
        assert done.stdout.startswith("Usage:") and "<bool>" not in done.stdout, (path, done.stdout)
        for param in command.params:
            if getattr(param, "is_flag", False) and not param.hidden:
                # a flag's line names the flag and, after it, its help: no value
                line = next(x for x in done.stdout.splitlines() if param.opts[0] in x)
                after = line.split(param.opts[0], 1)[1]
                assert not re.match(r"\s?<|\s?[A-Z]{2,}\b", after), (path, line)
    assert "<program|project|pool|vintage-year|bearer>" in invoke("liabilities", "-h").stdout
    assert "<fund|insurer|jurisdiction>" in invoke("transfer", "-h").stdout


def test_version_from_the_package_metadata() -> None:
    done = invoke("--version")
    assert done.exit_code == 0
    assert done.stdout.strip() == f"permanence {importlib.metadata.version('permanence')}"


def test_global_options_after_the_command(db_url: str, story: dict[str, str]) -> None:
    before = invoke("--db", db_url, "liabilities", "--as-of", "2035-01-01", "--json")
    after = invoke("liabilities", "--as-of", "2035-01-01", "--json", "--db", db_url)
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["exposure"] == 130_000  # 80,000 + 50,000 issued
    equals = invoke("buffer", f"--db={db_url}", "--json")
    assert equals.exit_code == 0 and len(json.loads(equals.stdout)["pools"]) == 2
    nested = invoke("token", "list", "--db", db_url, "--json")
    assert nested.exit_code == 0 and json.loads(nested.stdout) == []


REPR = re.compile(r"\{'|\{\}|\[\]|'\s*:|\bNone\b|\bTrue\b|\bFalse\b|<[a-z_.]+ object")


def test_human_output_has_no_python_reprs(db_url: str, story: dict[str, str]) -> None:
    a, b = story["a"], story["b"]
    commands = [
        ("show", a), ("show", b[:8]), ("history", b), ("profiles",), ("profiles", "carb-forest"),
        ("liabilities",), ("liabilities", "--by", "program"), ("liabilities", "--by", "bearer"),
        ("liabilities", "--pool", "carb-forest"), ("buffer",), ("buffer", "--pool", "carb-forest"),
        ("runoff",), ("vintages",), ("reminders", "--all"), ("projections", "status"),
        ("audit", "--program", "carb-forest"), ("token", "list"), ("head",),
        ("simulate", "--from", "2030-01-01", "--to", "2034-01-01"),
    ]
    for args in commands:
        done = invoke("--db", db_url, *args)
        assert done.exit_code == 0, (args, done.output)
        assert done.stdout.strip(), args
        assert not REPR.search(done.stdout), (args, REPR.search(done.stdout), done.stdout)
        if args[0] not in ("history", "audit"):  # tables, at most as wide as a pipe is given
            assert all(len(line) <= 160 for line in done.stdout.splitlines()), args
    # a pool asked for is shown once, not once as the total and again as its only row
    pool = invoke("--db", db_url, "buffer", "--pool", "carb-forest").stdout
    assert sum("carb-forest" in line for line in pool.splitlines()) == 1, pool
    # the simulation fits a terminal of 100 columns
    sim = invoke("--db", db_url, "simulate", "--from", "2030-01-01", "--to", "2034-01-01").stdout
    assert max(len(line) for line in sim.splitlines()) <= 100, sim


def test_runoff_plot_says_where_it_wrote(db_url: str, story: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "ladder.png"
    done = invoke("--db", db_url, "runoff", "--plot", str(target))
    assert done.exit_code == 0, done.output
    assert target.stat().st_size > 0
    assert f"plot written to {target}" in done.stdout


@pytest.mark.parametrize("args", [("list",), ("revoke", "someone"),
                                  ("create", "--role", "trustee", "--name", "t1")])
def test_token_commands_never_create_a_ledger(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "typo.db"
    done = invoke("--db", str(missing), "token", *args)
    assert done.exit_code == 1, done.output
    assert done.stderr.startswith(f"error: no ledger at {missing}")
    assert list(tmp_path.iterdir()) == []


def test_rebuild_reports_progress_to_its_callback(runtime: Runtime, db_url: str,
                                                  story: dict[str, str]) -> None:
    expected = runtime.app.recorder.max_notification_id()
    for parallel in (False, True):
        if parallel and not db_url.endswith(".db"):
            continue  # the two-process first pass is SQLite's
        if parallel:
            runtime.projector.parallel_from = 1  # share even this small log among workers
        calls: list[tuple[int, int]] = []
        processed = runtime.projector.rebuild(progress=lambda done, total, seen=calls: seen.append(
            (done, total)))
        assert processed == expected
        assert calls[-1] == (processed, processed)  # the end
        assert calls[0][0] == 0 and calls[0][1] >= processed  # the start, with the estimate
        assert len(calls) >= 3  # start, each page or phase, end
        assert all(done <= total for done, total in calls)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_rebuild_draws_progress_on_a_terminal_unless_quiet(sqlite_url: str) -> None:
    assert invoke("--db", sqlite_url, "issue", "--program", "icvcm-ccp", "--project", "P1",
                  "--quantity", "100", "--on", "2025-01-01").exit_code == 0

    def rebuild(*extra: str) -> tuple[str, str]:
        """stdout, and what a terminal on stderr showed."""
        master, slave = pty.openpty()
        done = subprocess.Popen([*EXE, "--db", sqlite_url, "projections", "rebuild", *extra],
                                stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        shown = b""
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            elif done.poll() is not None:
                break
        out = done.communicate(timeout=60)[0]
        os.close(master)
        assert done.returncode == 0, shown
        return out, shown.decode(errors="replace")

    out, terminal = rebuild()
    assert "rebuilding read models" in terminal
    assert out.strip() == "rebuilt from 1 events"
    out, terminal = rebuild("--quiet")
    assert "rebuilding" not in terminal and out.strip() == "rebuilt from 1 events"


def test_a_read_command_loads_no_http_plotting_or_numeric_stack(sqlite_url: str) -> None:
    assert invoke("--db", sqlite_url, "issue", "--program", "icvcm-ccp", "--project", "P1",
                  "--quantity", "100", "--on", "2025-01-01").exit_code == 0
    probe = (
        "import sys, json\n"
        "from permanence.cli.main import main\n"
        f"sys.argv = ['permanence', '--db', {sqlite_url!r}, 'liabilities', '--json',"
        " '--as-of', '2030-01-01']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout)["exposure"] == 100
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    heavy = {"fastapi", "uvicorn", "matplotlib", "numpy", "starlette", "rich", "jinja2",
             "permanence.http", "permanence.imports", "risk.engine"}
    assert not loaded & heavy, sorted(loaded & heavy)
