"""``make bench``: run every benchmark once and write the figures to docs/benchmarks.md.

Each ``bench/NAME.py`` exposes ``run(quick) -> list[dict]``. All figures in the page come
from this one run on this machine, so ratios between them are meaningful; absolute numbers
move with the machine's load (the page records it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"

#: (module, title, targets in words)
SUITE = (
    ("ingest", "Bulk issuance (issue 2)",
     "at least 50,000 events/s on SQLite, i.e. at least 1/6 of the raw sqlite3 baseline"),
    ("read_models", "Read models (issue 3)",
     ("rebuild at least 100,000 events/s on SQLite; liabilities by program p95 <= 50 ms and "
      "an as-of query p95 <= 200 ms at 1,000,000 vintages")),
    ("sweep", "Scheduler sweep (issue 4)",
     "a sweep with nothing due in at most 50 ms; time to record 10,000 lapses among 1,000,000"),
    ("stress", "Stress tester (issue 5)", "10,000 scenarios x 100 years x 5,000 projects in <= 30 s and <= 2 GB"),
    ("imports", "Registry import (issue 6)", "import rate of a 100,000-row ACR-shaped file"),
    ("export", "Tamper-evident export (issue 6)", "verify-export throughput"),
    ("load", "HTTP read API under ingest (issue 7)", ">= 500 reads/s, p95 <= 50 ms, no errors"),
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", nargs="*", help="benchmark names to run (page left unchanged)")
    parser.add_argument("--skip", nargs="*", default=[], help="benchmark names to leave out")
    args = parser.parse_args()
    started = datetime.now(UTC)
    sections = []
    for name, title, target in SUITE:
        if (args.only and name not in args.only) or name in args.skip:
            continue
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"== {name}", flush=True)
        t = time.perf_counter()
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
        sections.append(f"## {title}\n\nTarget: {target}.\n\n{body}\n\n"
                        f"(`bench/{name}.py`, {time.perf_counter() - t:.0f} s)\n")
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench`{' --quick' if args.quick else ''} on {started:%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average at the end "
        f"{load_avg}. All figures come from one run; the machine is shared, so compare ratios "
        "within a run rather than absolute numbers across runs.\n\n"
    )
    DOC.parent.mkdir(exist_ok=True)
    if args.only and DOC.exists():
        page = DOC.read_text(encoding="utf-8")
        sections = _merged(page, sections)
        # the full run's header stays (its date and load are those of the other sections)
        kept = [p for p in page.split("\n## ")[0].split("\n\n") if not p.startswith("Sections re-run")]
        header = "\n\n".join(kept).rstrip() + "\n\n"
        stamp = f"{started:%Y-%m-%d %H:%M}"
        header += (f"Sections re-run on their own are marked *(re-run)* (last on {stamp} UTC, "
                   f"load average at the end {load_avg}).\n\n")
    DOC.write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
