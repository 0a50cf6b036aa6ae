"""A CLI that answers at once: a read command's wall time beside the imports it cannot avoid.

On a small ledger (1,000 vintages), ``permanence liabilities --json`` as a user runs it (a
fresh interpreter each time) against ``python -c "import sqlalchemy, pydantic,
eventsourcing.application, typer"``, alternated round by round; ``vs_imports`` is the
median of the per-round ratios (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

from common import alternate, median, p95, sqlite_store, vintage_specs

BASELINE = "import sqlalchemy, pydantic, eventsourcing.application, typer"
TARGET = 1.5


def _wall(argv: list[str], env: dict[str, str]) -> Callable[[int], float]:
    def run(_: int) -> float:
        t = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - t) * 1000
    return run


def run(quick: bool = False) -> list[dict[str, Any]]:
    from permanence.config import Settings
    from permanence.runtime import Runtime

    rounds = 5 if quick else 15
    with sqlite_store() as db:
        rt = Runtime(Settings(db=db))
        try:
            rt.app.issue_many(vintage_specs(1_000))
        finally:
            rt.close()
        path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PERMANENCE_DB": db, "PYTHONPATH": path}
        imports = _wall([sys.executable, "-c", BASELINE], env)
        command = _wall([sys.executable, "-c", "from permanence.cli import main; main()",
                         "liabilities", "--json"], env)
        imports(0), command(0)  # both warm in the page cache
        a, b, ratios = alternate(imports, command, rounds)
    return [
        {"benchmark": "cli start", "command": f'python -c "{BASELINE}"', "runs": rounds,
         "p50_ms": median(a), "p95_ms": p95(a)},
        {"benchmark": "cli start", "command": "permanence liabilities --json (1,000 vintages)",
         "runs": rounds, "p50_ms": median(b), "p95_ms": p95(b), "vs_imports": median(ratios),
         "meets_target": median(ratios) <= TARGET},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
