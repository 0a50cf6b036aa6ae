"""``make demo``: a short story told with the real CLI on an embedded SQLite file.

Two programs, a verification, a reversal and its compensation, a retirement, a history,
then a simulated future in which a lapse arises, the trustee's figures and the report.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

OUT = Path("demo-out")
DB = OUT / "permanence.db"


def say(text: str) -> None:
    print(f"\n\033[1m# {text}\033[0m")


def permanence(*args: str, show: bool = True) -> str:
    """Run one CLI command as a user would, print it and its output, return the output."""
    env = {**os.environ, "PERMANENCE_DB": str(DB)}
    if show:
        print(f"$ permanence {' '.join(shlex.quote(a) for a in args)}")
    done = subprocess.run(
        [sys.executable, "-m", "permanence.cli", *args], env=env, capture_output=True, text=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        raise SystemExit(f"demo step failed: permanence {' '.join(args)}")
    if show:
        print(done.stdout.rstrip())
    return done.stdout


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)

    say("Program profiles are data, each rule with its source and confidence")
    permanence("profiles")

    say("Two issuances under two programs and two buffer pools")
    a = json.loads(permanence(
        "issue", "--program", "icvcm-ccp", "--project", "AMAZON-REDD-7", "--vintage-year", "2024",
        "--quantity", "80000", "--buffer", "20000", "--on", "2025-01-01",
        "--serials", "100000-179999", "--json"))["vintage_id"]
    b = json.loads(permanence(
        "issue", "--program", "carb-forest", "--project", "SIERRA-FOREST-2", "--vintage-year", "2023",
        "--quantity", "50000", "--buffer", "9000", "--on", "2024-06-01", "--json"))["vintage_id"]

    say("A verification of the first vintage")
    permanence("verify", "--vintage", a, "--on", "2029-06-30", "--verifier", "Example VVB")

    say("A wildfire reverses 4,000 t of the second: unavoidable, so the pool owes it")
    permanence("reversal", "--vintage", b, "--on", "2027-08-15", "--quantity", "4000",
               "--cause", "wildfire", "--json")
    permanence("compensate", "--vintage", b, "--reversal", "R1", "--by", "buffer",
               "--quantity", "4000", "--on", "2027-10-01")

    say("A retirement (it does not reduce the exposure: retired carbon must stay stored)")
    permanence("retire", "--vintage", a, "--quantity", "10000", "--on", "2030-03-01",
               "--beneficiary", "Example Airline")

    say("The audit trail of the second vintage")
    permanence("history", b)

    say("The first vintage as of 2034-07-01: verification was due on 2034-06-30")
    permanence("show", a, "--as-of", "2034-07-01")

    if _has_command("simulate"):
        say("What if nobody verifies again? Simulate the scheduler on a copy of the ledger")
        permanence("simulate", "--from", "2030-01-01", "--to", "2036-01-01", "--step", "1y")
    if _has_command("sweep"):
        say("The daily sweep, run for 2034-07-01, records the lapse once, dated the day it arose")
        permanence("sweep", "--as-of", "2034-07-01")
        permanence("sweep", "--as-of", "2034-07-02")

    say("The trustee's figures as of 2035-01-01")
    permanence("liabilities", "--as-of", "2035-01-01", "--by", "program")
    permanence("buffer", "--as-of", "2035-01-01")
    permanence("runoff", "--as-of", "2035-01-01")

    say("The trustee report")
    permanence("report", "--out", str(OUT / "report"), "--as-of", "2035-01-01")
    print(f"\nOpen {OUT / 'report' / 'index.html'} in a browser. The ledger is {DB}.")


def _has_command(name: str) -> bool:
    from permanence.cli import app

    return any(c.name == name for c in app.registered_commands)


if __name__ == "__main__":
    main()
