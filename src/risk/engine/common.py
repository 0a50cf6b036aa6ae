"""What every model of the engine shares: array types, random streams, chunking, run checks.

Randomness: scenarios are cut into fixed blocks of :data:`RNG_BLOCK` scenarios, each with
its own stream spawned from ``np.random.SeedSequence(seed)``; a chunk (the unit of memory
and of progress) is a whole number of blocks, so the same seed gives identical results
whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from risk.errors import StressTestRejected

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Progress = Callable[[int, int], None]
"""Called after each chunk of scenarios with (chunks done, chunks in all)."""

RNG_BLOCK = 64
"""Scenarios per random stream: fixes the draws whatever the chunk size."""
DEFAULT_LEVEL = 0.995
"""Solvency II calibrates capital to a 1-in-200-year loss."""
CHUNK_CELLS = 4_000_000
"""Default chunk: about this many scenario x project cells (32 MB of int64)."""


def streams(seed: int, scenarios: int) -> list[np.random.SeedSequence]:
    """One independent stream per block of :data:`RNG_BLOCK` scenarios."""
    return np.random.SeedSequence(seed).spawn(-(-scenarios // RNG_BLOCK))


def chunk_rows(requested: int | None, width: int) -> int:
    """Round to whole RNG blocks; by default about :data:`CHUNK_CELLS` cells per chunk."""
    if requested is None:
        requested = max(RNG_BLOCK, CHUNK_CELLS // max(width, 1))
    if requested < 1:
        raise StressTestRejected("chunk_size: must be at least 1")
    return max(1, -(-requested // RNG_BLOCK)) * RNG_BLOCK


def chunk_count(scenarios: int, chunk: int) -> int:
    """How many chunks a run of ``scenarios`` takes (the progress total)."""
    return -(-scenarios // chunk)


def check_levels(levels: float | Sequence[float]) -> list[float]:
    """VaR/ES levels as a list of probabilities strictly within (0, 1)."""
    values = [float(levels)] if isinstance(levels, (int, float)) else [float(x) for x in levels]
    if not values or any(not 0.0 < q < 1.0 for q in values):
        raise StressTestRejected(f"levels: {values} must be probabilities within (0, 1)")
    return values


def check_run(scenarios: int, horizon: int) -> None:
    """At least one scenario of at least one year."""
    if scenarios < 1:
        raise StressTestRejected("scenarios: must be at least 1")
    if horizon < 1:
        raise StressTestRejected("horizon: must be at least 1 year")


def level_key(level: float) -> str:
    """A level as a JSON key: ``0.995``."""
    return f"{level:g}"
