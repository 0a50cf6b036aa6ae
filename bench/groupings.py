"""Every ``liabilities --by`` at a registry's size, in process, from the CLI, over HTTP and
in the report, on SQLite and PostgreSQL.

The ledger: 1,000,000 vintages over 50,000 projects (``--quick``: 100,000 over 5,000),
one in 50 non-reversible, issued in bulk with a sprinkle of reversals, compensations and
retirements, read models rebuilt. Building it takes minutes, so each store is built once and kept (an SQLite file
under the temp dir, a PostgreSQL schema), keyed by the benchmark version and the read
models' source; a changed read model builds a fresh one.

Every measurement alternates its subjects round by round (the order rotating), so a busy
machine slows them together; the ratios are to ``--by program`` in the same rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

from common import (
    BENCH_VERSION,
    CACHE,
    PG_BASE,
    PROGRAMS,
    alternate,
    median,
    p95,
    postgres_available,
    vintage_specs,
)

FULL = (1_000_000, 50_000)
QUICK = (100_000, 5_000)
GROUPS = ("program", "project", "pool", "vintage-year", "bearer")
BATCH = 20_000
TARGET_RATIO = 2.0
#: One vintage in this many cannot reverse (the liabilities count it as issued, no exposure).
NON_REVERSIBLE_EVERY = 50

NOTE = """
`in process`: `projections.queries.liabilities` called directly, every grouping (and the
unfiltered and `--program P` questions) once per round in a rotating order, at a varied
as-of date; `vs_program` is this row's p95 over `--by program`'s p95 (target: `--by
project` at most 2). `CLI`: the wall time of `permanence liabilities --by X --as-of D
--json` (output to /dev/null), by program and by project alternated. `HTTP`: one
uvicorn server on the same store, `GET /liabilities?by=X&as_of=D` (a fresh date each
round, so the server's answer cache never serves it). `report`: `projections.report.render_report`
(every figure of the report: its largest projects, which is `--by project` in process, and
also the buffer, the run-off and the yearly balance history) against `--by program`: what
the whole page costs to compute, shown for scale rather than against the 2x target.
`ratio_median` is the median of the per-round ratios.
"""


def _source_key() -> str:
    """What the cached ledgers depend on: this benchmark's version and the read models'
    source (a change there rebuilds the cache rather than measuring stale tables)."""
    digest = hashlib.sha1(str(BENCH_VERSION).encode())
    for name in ("tables", "issued", "projector", "first_pass"):
        path = SRC / "projections" / f"{name}.py"
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def build(db: str, vintages: int, projects: int) -> None:
    """Issue the ledger on ``db`` and rebuild its read models."""
    from permanence.config import Settings
    from permanence.runtime import Runtime

    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    try:
        for i in range(0, vintages, BATCH):
            specs = vintage_specs(min(BATCH, vintages - i), i, projects)
            for spec in specs[NON_REVERSIBLE_EVERY // 2 :: NON_REVERSIBLE_EVERY]:
                spec.update(reversible=False, buffer=0)  # e.g. biochar: issued, no exposure
            ids = rt.app.issue_many(specs)
            for vid in ids[:: BATCH // 20]:
                rt.app.record_reversal(vid, date(2030, 1, 1), 100, "storm")
                rt.app.compensate(vid, "R1", "buffer", 40, date(2030, 6, 1))
                rt.app.retire(vid, 10, date(2031, 1, 1))
        rt.projector.rebuild()
    finally:
        rt.close()


def sqlite_ledger(vintages: int, projects: int) -> str:
    """The cached SQLite ledger's path, built first if need be."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"groupings-{vintages}-{_source_key()}.db"
    done = path.with_suffix(".done")
    if not done.exists():
        for old in CACHE.glob(f"groupings-{vintages}-*"):
            old.unlink()
        _drop_other_versions()
        print(f"  building {path} (cached for later runs)", flush=True)
        build(str(path), vintages, projects)
        done.touch()
    return str(path)


def postgres_ledger(vintages: int, projects: int) -> str:
    """The cached PostgreSQL ledger's URL (a schema of its own), built first if need be."""
    import psycopg

    schema = f"bench_groupings_{vintages}_{_source_key()}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        built = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'bench_done'", (schema,)).fetchone()
        if not built:
            stale = conn.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                (f"bench_groupings_{vintages}_%",)).fetchall()
            for (name,) in stale:
                conn.execute(f"DROP SCHEMA {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
            print(f"  building PostgreSQL schema {schema} (kept for later runs)", flush=True)
            build(f"{PG_BASE}?schema={schema}", vintages, projects)
            conn.execute(f"CREATE TABLE {schema}.bench_done (at text)")
    return f"{PG_BASE}?schema={schema}"


def _days(n: int, seed: int = 7) -> list[date]:
    rng = random.Random(seed)
    return [date(2012, 1, 1) + timedelta(days=rng.randrange(0, 30 * 365)) for _ in range(n)]


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def in_process(db: str, rounds: int) -> list[dict[str, Any]]:
    """Every question once per round, in a rotating order; p50/p95 and ratio to by program."""
    from permanence.config import Settings
    from permanence.runtime import Runtime
    from projections.queries import Filters, liabilities

    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    engine = rt.engine
    subjects: dict[str, Callable[[int, date], object]] = {
        f"--by {g}": (lambda i, day, g=g: liabilities(engine, day, by=g)) for g in GROUPS
    }
    subjects["(totals)"] = lambda i, day: liabilities(engine, day)
    subjects["--program P"] = lambda i, day: liabilities(
        engine, day, Filters(program=PROGRAMS[i % len(PROGRAMS)]))
    names = list(subjects)
    samples: dict[str, list[float]] = {n: [] for n in names}
    days = _days(rounds)
    try:
        for name in names:  # warm the page cache once
            subjects[name](0, days[0])
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                ask, day = subjects[name], days[r]
                t = time.perf_counter()
                ask(r, day)
                samples[name].append((time.perf_counter() - t) * 1000)
    finally:
        rt.close()
    base = samples["--by program"]
    rows = []
    for name in names:
        s = samples[name]
        rows.append({"how": "in process", "question": name, "runs": len(s),
                     "p50_ms": median(s), "p95_ms": p95(s), "vs_program": p95(s) / p95(base),
                     "ratio_median": median([x / y for x, y in zip(s, base, strict=True)])})
    return rows


def _pair_rows(how: str, a_name: str, b_name: str, a: list[float], b: list[float],
               ratios: list[float], target: bool = True) -> list[dict[str, Any]]:
    second: dict[str, Any] = {
        "how": how, "question": b_name, "runs": len(b), "p50_ms": median(b), "p95_ms": p95(b),
        "vs_program": p95(b) / p95(a), "ratio_median": median(ratios)}
    if target:
        second["meets_target"] = p95(b) / p95(a) <= TARGET_RATIO
    return [{"how": how, "question": a_name, "runs": len(a), "p50_ms": median(a),
             "p95_ms": p95(a)}, second]


def cli(db: str, rounds: int) -> list[dict[str, Any]]:
    """Wall time of the command a user types, by program and by project alternated."""
    env = {**os.environ, "PERMANENCE_DB": db, "PYTHONPATH": _pythonpath()}
    days = _days(rounds, seed=11)

    def command(by: str) -> Callable[[int], float]:
        def run(r: int) -> float:
            argv = [sys.executable, "-c", "from permanence.cli import main; main()",
                    "liabilities", "--by", by, "--as-of", days[r].isoformat(), "--json"]
            t = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            return (time.perf_counter() - t) * 1000
        return run

    a, b, ratios = alternate(command("program"), command("project"), rounds)
    return _pair_rows("CLI", "liabilities --by program", "liabilities --by project", a, b, ratios)


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)


@contextmanager
def server(db: str) -> Iterator[tuple[int, str]]:
    """A uvicorn server on ``db`` (as ``bench/load.py`` starts one) and a registry token."""
    from load import SERVER, _free_port, _stop, _wait_ready

    from permanence import tokens as auth
    from permanence.config import Settings
    from permanence.runtime import Runtime

    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    try:
        token, _ = auth.create_token(rt.engine, f"groupings-bench-{uuid.uuid4().hex[:8]}", "registry")
    finally:
        rt.close()
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _pythonpath()}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, db, str(port)], env=env)
    try:
        _wait_ready(port, proc, time.monotonic() + 60)
        yield port, token
    finally:
        _stop(proc, terminate=True)


def http(db: str, rounds: int) -> list[dict[str, Any]]:
    """``GET /liabilities?by=program`` and ``?by=project`` alternated, a fresh date each round."""
    import httpx

    days = _days(rounds, seed=13)
    with server(db) as (port, token), httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    ) as client:

        def get(by: str) -> Callable[[int], float]:
            def run(r: int) -> float:
                t = time.perf_counter()
                response = client.get("/liabilities", params={"by": by, "as_of": days[r].isoformat()})
                response.raise_for_status()
                return (time.perf_counter() - t) * 1000
            return run

        get("program")(0)  # the server's first answer warms its imports
        a, b, ratios = alternate(get("program"), get("project"), rounds)
    return _pair_rows("HTTP", "GET /liabilities?by=program", "GET /liabilities?by=project",
                      a, b, ratios)


def report(db: str, rounds: int) -> list[dict[str, Any]]:
    """The report's figures (its largest projects among them) against ``--by program``."""
    from permanence.config import Settings
    from permanence.runtime import Runtime
    from projections.queries import liabilities
    from projections.report import render_report

    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    days = _days(rounds, seed=17)
    try:
        a, b, ratios = alternate(
            lambda r: _timed(lambda: liabilities(rt.engine, days[r], by="program")) * 1000,
            lambda r: _timed(lambda: render_report(rt.engine, days[r])) * 1000, rounds)
    finally:
        rt.close()
    return _pair_rows("report", "liabilities --by program", "the whole report page (figures, "
                      "largest projects, charts)", a, b, ratios, target=False)


def measure(db: str, store: str, vintages: int, projects: int, quick: bool) -> list[dict[str, Any]]:
    rounds, few = (12, 3) if quick else (30, 5)
    rows = in_process(db, rounds) + cli(db, few) + http(db, few * 2) + report(db, few)
    return [{"store": store, "vintages": vintages, "projects": projects, **r} for r in rows]


def run(quick: bool = False, stores: tuple[str, ...] = ("sqlite", "postgresql")) -> list[dict[str, Any]]:
    vintages, projects = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    if "sqlite" in stores:
        rows += measure(sqlite_ledger(vintages, projects), "SQLite", vintages, projects, quick)
    if "postgresql" in stores and postgres_available():
        rows += measure(postgres_ledger(vintages, projects), "PostgreSQL", vintages, projects, quick)
    return rows


def _drop_other_versions() -> None:
    """Cached ledgers of other benchmark versions are never read again."""
    for other in CACHE.parent.glob("permanence-bench-v*"):
        if other != CACHE:
            shutil.rmtree(other, ignore_errors=True)


def clear_cache() -> None:
    """Remove the cached ledgers (files and PostgreSQL schemas)."""
    _drop_other_versions()
    shutil.rmtree(CACHE, ignore_errors=True)
    if postgres_available():
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            for (name,) in conn.execute("SELECT schema_name FROM information_schema.schemata "
                                        "WHERE schema_name LIKE 'bench_groupings_%'").fetchall():
                conn.execute(f"DROP SCHEMA {name} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} vintages")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--clear-cache", action="store_true", help="drop the cached ledgers and exit")
    args = parser.parse_args()
    if args.clear_cache:
        clear_cache()
        return
    for r in run(args.quick, tuple(args.store or ("sqlite", "postgresql"))):
        print(r, flush=True)


if __name__ == "__main__":
    main()
