"""``make demo``: a short story told with the real CLI on an embedded SQLite file.

Two programs, a verification, a reversal and its compensation, a retirement, a history,
a simulated future in which a lapse arises, the sweep that records it, a verification
report that arrives late and withdraws another lapse, insurance, the trustee's figures
and the report. The story is set on 2035-01-01: ``PERMANENCE_TODAY`` fixes "today" (the
ledger refuses facts dated after it).
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
REPORT = OUT / "report.html"
TODAY = "2035-01-01"


def say(text: str) -> None:
    print(f"\n\033[1m# {text}\033[0m")


def permanence(*args: str, show: bool = True, refused: bool = False) -> str:
    """Run one CLI command as a user would, print it and its output, return the output
    (``refused``: the command must fail, and its one-line error is shown)."""
    env = {**os.environ, "PERMANENCE_DB": str(DB), "PERMANENCE_TODAY": TODAY}
    if show:
        print(f"$ permanence {' '.join(shlex.quote(a) for a in args)}")
    done = subprocess.run(
        [sys.executable, "-m", "permanence.cli", *args], env=env, capture_output=True, text=True,
        check=False,
    )
    if refused:
        if done.returncode == 0:
            raise SystemExit(f"demo step should have been refused: permanence {' '.join(args)}")
        print(done.stderr.strip())
        return done.stderr
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

    say("Find vintages (any command takes the first 8 characters of an id)")
    permanence("vintages")

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
    permanence("history", b[:8])

    say("The first vintage as of 2034-07-01: verification was due on 2034-06-30")
    permanence("show", a[:8], "--as-of", "2034-07-01")

    if _has_command("simulate"):
        say("What if nobody verifies again? Simulate the scheduler on a copy of the ledger")
        permanence("simulate", "--from", "2030-01-01", "--to", "2036-01-01", "--step", "1y")
    if _has_command("sweep"):
        say("A third vintage, issued 2026-02-01 and never verified, as far as the ledger knows")
        c = json.loads(permanence(
            "issue", "--program", "icvcm-ccp", "--project", "MANGROVE-3", "--vintage-year", "2025",
            "--quantity", "30000", "--buffer", "7500", "--on", "2026-02-01", "--json"))["vintage_id"]
        say("The daily sweep, run for 2034-07-01, records the lapses, each dated the day it arose")
        permanence("sweep", "--as-of", "2034-07-01")
        permanence("sweep", "--as-of", "2034-07-02")
        say("The third vintage's verification report (dated 2031-01-20) arrives late: "
            "its lapse never arose, and a correcting event says why")
        permanence("verify", "--vintage", c, "--on", "2031-01-20")
        permanence("history", c[:8])

    say("Insurance covers the second vintage's unavoidable reversals up to 5,000 t")
    permanence("insure", "--vintage", b, "--insurer", "Example Re", "--from", "2028-01-01",
               "--to", "2060-12-31", "--limit", "5000")
    permanence("reversal", "--vintage", b, "--on", "2033-09-01", "--quantity", "6000",
               "--cause", "wildfire")
    permanence("show", b[:8], "--as-of", "2034-01-01")

    say(f"Nothing is dated after today ({TODAY}); looking ahead is what simulate is for")
    permanence("sweep", "--as-of", "2040-01-01", refused=True)

    say("The trustee's figures as of 2035-01-01")
    permanence("liabilities", "--as-of", "2035-01-01", "--by", "program")
    permanence("buffer", "--as-of", "2035-01-01")
    permanence("runoff", "--as-of", "2035-01-01")

    say("Part of the first vintage comes from an innovation-sandbox pilot: disclosed as CCP-I")
    permanence("label", "--vintage", a[:8], "--label", "CCP-I",
               "--innovation", "Remote-sensing baseline (pilot)", "--on", "2030-01-01")

    say("Stress tests: can each pool absorb what may come? (recorded on the pool)")
    permanence("stress-test", "--pool", "icvcm-ccp", "--as-of", "2035-01-01", "--model",
               "combined", "--scenarios", "2000", "--horizon", "50", "--quiet")
    permanence("stress-test", "--pool", "carb-forest", "--as-of", "2035-01-01", "--model",
               "backtest", "--allocation", "wildfire=6000", "--allocation", "pests=3000",
               "--quiet")

    say("The trustee report: one HTML file, charts inline")
    permanence("report", "--out", str(REPORT), "--as-of", "2035-01-01")
    print(f"\nOpen {REPORT} in a browser. The ledger is {DB}.")


def _has_command(name: str) -> bool:
    from permanence.cli.main import app

    return any(c.name == name for c in app.registered_commands)


if __name__ == "__main__":
    main()
