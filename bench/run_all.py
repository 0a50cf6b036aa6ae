"""``make bench``: run every benchmark once and write the figures to docs/benchmarks.md.

Each ``bench/NAME.py`` exposes ``run(quick) -> list[dict]``. All figures in the page come
from this one run on this machine, so ratios between them are meaningful; absolute numbers
move with the machine's load (the page records it before and after every section).

- ``python bench/run_all.py``: everything (``make bench``); ``--quick``: smaller sizes, for
  development; ``--only NAME...``: rerun those sections, keeping the page's others;
  ``--list``: the names; ``--out PATH``: write another page (a trial run).
- ``bench/groupings.py`` (and the PostgreSQL half of ``bench/read_models.py``) keep the
  1,000,000-vintage ledgers they build (under the temp dir and in a PostgreSQL schema,
  keyed by the benchmark version and the read models' source), so a second run skips
  building them; ``python bench/groupings.py --clear-cache`` drops them.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmarks import ``common`` (and one another)

from common import load_text, machine

DOC = HERE.parent / "docs" / "benchmarks.md"

#: (module, title, targets in words)
SUITE = (
    ("cli_start", "CLI start (issue 17, item 2)",
     ("a read command (`liabilities --json` on a small ledger) at most 1.5x the wall time of "
      "`python -c \"import sqlalchemy, pydantic, eventsourcing.application, typer\"`")),
    ("ingest", "Bulk issuance (issues 2 and 17, item 3)",
     ("the ledger on SQLite at least 1/4 of raw `sqlite3.executemany` of the same rows; on "
      "PostgreSQL at least 1/3 of raw psycopg `executemany` (or `COPY`) of the same rows "
      "into a table of the same shape; A/B alternated, median of ratios")),
    ("read_models", "Read models: rebuild and queries (issues 3 and 17, items 4 and 5)",
     ("rebuild at least 0.8 of the write floor of the same rows, on SQLite and on PostgreSQL "
      "against its own floor; the later-events rebuild no slower per event than the first "
      "pass; `liabilities --by program` p95 <= 50 ms and an as-of query p95 <= 200 ms at "
      "1,000,000 vintages")),
    ("groupings", "Linear groupings (issue 17, item 1)",
     ("at 1,000,000 vintages over 50,000 projects, `liabilities --by project` p95 at most 2x "
      "that of `--by program`, on SQLite and PostgreSQL; the same for "
      "`GET /liabilities?by=project` and the report's largest projects")),
    ("sweep", "Scheduler sweep (issues 4 and 17, item 5)",
     ("a sweep with nothing due in at most 50 ms; time to record 10,000 lapses among "
      "1,000,000; on SQLite and PostgreSQL")),
    ("stress", "Stress tester (issue 5)", "10,000 scenarios x 100 years x 5,000 projects in <= 30 s and <= 2 GB"),
    ("imports", "Registry import (issue 6)", "import rate of a 100,000-row ACR-shaped file"),
    ("export", "Tamper-evident export (issue 6)", "verify-export throughput"),
    ("load", "HTTP read API under ingest (issues 7 and 17, item 5)",
     ">= 500 reads/s, p95 <= 50 ms, no errors; on SQLite and PostgreSQL"),
    ("overlaps", "Serial-overlap check (issue 14)", "100,000 vintages in at most 10 s"),
)


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys and not isinstance(r[k], (list, dict))]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


RERUN = " *(re-run)*"


def _merged(page: str, fresh: list[str]) -> list[str]:
    """Keep the page's other sections, in suite order, replacing the ones just re-run."""
    old = {}
    for chunk in page.split("\n## ")[1:]:
        title = chunk.split("\n", 1)[0].removesuffix(RERUN)  # an earlier re-run keeps its mark
        old[title] = "## " + chunk.rstrip() + "\n"
    new = {s.split("\n", 1)[0][3:]: s.replace("\n", RERUN + "\n", 1) for s in fresh}
    return [new.get(title) or old[title] for _, title, _ in SUITE if title in new or title in old]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks; write docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", nargs="*", help="benchmark names to run (other sections kept)")
    parser.add_argument("--skip", nargs="*", default=[], help="benchmark names to leave out")
    parser.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    parser.add_argument("--out", type=Path, default=DOC,
                        help=f"the page to write (default {DOC.relative_to(HERE.parent)})")
    args = parser.parse_args()
    doc: Path = args.out
    if args.list:
        for name, title, _ in SUITE:
            print(f"{name:<12} {title}")
        return
    unknown = (set(args.only or []) | set(args.skip)) - {name for name, _, _ in SUITE}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    at_start = machine()
    sections = []
    for name, title, target in SUITE:
        if (args.only and name not in args.only) or name in args.skip:
            continue
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        before = machine()
        try:
            module = load(name)
            rows = module.run(args.quick)
            body = table(rows) if rows else "(no rows)"
            note = getattr(module, "NOTE", "").strip()  # how to read the table; kept with it
            if note:
                body += "\n\n" + note
        except Exception:  # noqa: BLE001 - a failed benchmark is reported, not hidden
            body = "FAILED:\n\n```\n" + traceback.format_exc() + "```"
        print(body, flush=True)
        quick = " --quick" if args.quick else ""
        sections.append(
            f"## {title}\n\nTarget: {target}.\n\n{body}\n\n"
            f"(`bench/{name}.py`, {time.perf_counter() - t:.0f} s; {load_text(before, machine())}. "
            f"Rerun alone: `python bench/run_all.py --only {name}{quick}`.)\n"
        )
    at_end = machine()
    header = (
        "# Benchmarks\n\n"
        f"Written by {'`python bench/run_all.py --quick`' if args.quick else '`make bench`'} "
        f"on {started:%Y-%m-%d %H:%M} UTC; "
        f"{at_end['cpus']} CPUs, Python {platform.python_version()}; "
        f"{load_text(at_start, at_end)}. All figures come from one run; each ratio "
        "is measured A/B alternated in that run (median of the rounds' ratios where stated), "
        "so compare ratios rather than absolute numbers across runs. Each section names the "
        "command that reruns it alone (`--quick`: smaller sizes, for development; `--list`: "
        "the names).\n\n"
    )
    doc.parent.mkdir(exist_ok=True)
    if args.only and doc.exists():
        page = doc.read_text(encoding="utf-8")
        sections = _merged(page, sections)
        # the full run's header stays (its date and load are those of the other sections)
        kept = [p for p in page.split("\n## ")[0].split("\n\n") if not p.startswith("Sections re-run")]
        header = "\n\n".join(kept).rstrip() + "\n\n"
        stamp = f"{started:%Y-%m-%d %H:%M}"
        header += (f"Sections re-run on their own are marked *(re-run)* (last on {stamp} UTC; "
                   f"{load_text(at_start, at_end)}).\n\n")
    doc.write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
