"""Benchmark of the Monte Carlo stress tester: 10,000 scenarios x 100 years x 5,000 projects.

Targets on the reference 2-core machine: at most 30 s wall time and 2 GB peak memory per model.
Each model runs in its own child process so its peak resident memory (``VmHWM``) is its
own. Usage: ``.venv/bin/python bench/stress.py [--quick]``; ``run(quick)`` returns the rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

from risk.engine import CatastropheParams, PoolContents, simulate

MODELS = ("independent", "catastrophe")
FULL = {"scenarios": 10_000, "horizon": 100, "projects": 5_000}
QUICK = {"scenarios": 1_000, "horizon": 100, "projects": 1_000}
TARGET_SECONDS = 30.0
TARGET_MB = 2048.0
SEED = 2025
CATASTROPHE = CatastropheParams(annual_probability=0.02, probability_multiplier=5.0)


def pool(projects: int) -> PoolContents:
    """A synthetic, reproducible pool: mixed hazards, 20 regions, 20% of exposure buffered."""
    rng = np.random.default_rng(SEED)
    exposure = rng.lognormal(mean=11.5, sigma=1.0, size=projects).astype(np.int64) + 1_000
    return PoolContents(
        buffer_balance=int(exposure.sum() * 0.20),
        exposure=exposure,
        annual_probability=rng.uniform(0.001, 0.01, size=projects),
        loss_fraction=rng.uniform(0.05, 0.6, size=projects),
        region=rng.integers(0, 20, size=projects),
        avoidable_share=rng.uniform(0.0, 0.5, size=projects),
        default_probability=0.1,
        hazard_trend=0.01,
        annual_contributions=0,
    )


def measure(model: str, quick: bool) -> dict[str, Any]:
    """Run one model in this process and return its figures (call it in a fresh process)."""
    size = QUICK if quick else FULL
    contents = pool(size["projects"])
    started = time.perf_counter()
    result = simulate(
        contents,
        model=model,
        scenarios=size["scenarios"],
        horizon=size["horizon"],
        seed=SEED,
        catastrophe=CATASTROPHE,
    )
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    return {
        "model": model,
        "scenarios": size["scenarios"],
        "years": size["horizon"],
        "projects": size["projects"],
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "p_exhausted": result.p_exhausted,
        "one_year_var_995": result.one_year_var_at(0.995),
        "horizon_quantile_995": result.horizon_quantile_at(0.995),
        "horizon_expected_loss": result.horizon_expected_loss,
        "within_target": seconds <= TARGET_SECONDS and peak_mb <= TARGET_MB,
    }


def peak_rss_mb() -> float:
    """This process's own peak resident memory.

    ``ru_maxrss`` also carries the peak of the process it was forked from (Linux keeps it
    across ``exec``), so a child of a large parent, such as ``make bench`` after the
    million-vintage rebuild, would report the parent's figure. ``VmHWM`` belongs to this
    program's own address space; ``ru_maxrss`` is the fallback where there is no /proc.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every model, each in a child process, and return one row per model."""
    rows = []
    for model in MODELS:
        command = [sys.executable, __file__, "--one", model] + (["--quick"] if quick else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        (
            "| model | scenarios | years | projects | wall time (s) | peak memory (MB) "
            "| P(exhausted) | one-year VaR 99.5% (credits) | 99.5% horizon loss (credits) "
            "| within target |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['scenarios']:,} | {row['years']} | {row['projects']:,} "
            f"| {row['seconds']:.1f} | {row['peak_mb']:.0f} | {row['p_exhausted']:.4f} "
            f"| {row['one_year_var_995']:,.0f} | {row['horizon_quantile_995']:,.0f} "
            f"| {'yes' if row['within_target'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: the full run by default, ``--quick`` for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 scenarios x 1,000 projects")
    parser.add_argument("--one", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.quick)))
        return
    print(markdown(run(args.quick)))


if __name__ == "__main__":
    main()
