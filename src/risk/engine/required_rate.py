"""The buffer rate a pool needs: the smallest balance, as a share of exposure, keeping the
probability of exhaustion at or under a target."""

from __future__ import annotations

import numpy as np

from risk.engine.common import IntArray, Progress, check_run, chunk_count, chunk_rows
from risk.engine.contents import CatastropheParams, PoolContents
from risk.engine.pool_models import loss_paths, model_flags
from risk.engine.summary import exhaustion_years
from risk.errors import StressTestRejected


def required_contribution_rate(
    contents: PoolContents,
    target_ruin_probability: float,
    model: str = "independent",
    scenarios: int = 2_000,
    horizon: int = 100,
    seed: int = 0,
    tolerance: float = 1e-4,
    chunk_size: int | None = None,
    catastrophe: CatastropheParams | None = None,
    progress: Progress | None = None,
) -> float:
    """Smallest buffer rate (balance as a share of total exposure) keeping ruin <= target.

    Bisection on one fixed-seed set of loss paths: the balance changes neither events nor
    losses, so every candidate rate faces the same scenarios and ruin falls monotonically.
    ``progress`` is told after each chunk of paths drawn.
    """
    if not 0.0 <= target_ruin_probability < 1.0:
        raise StressTestRejected("target_ruin_probability: must be within [0, 1)")
    if not 0.0 < tolerance < 1.0:
        raise StressTestRejected("tolerance: must be within (0, 1)")
    check_run(scenarios, horizon)
    flags = model_flags(model)
    chunk = chunk_rows(chunk_size, contents.n_projects)
    cat = catastrophe or CatastropheParams()
    total = chunk_count(scenarios, chunk)
    drawn: list[IntArray] = []
    for done, paths in enumerate(
        loss_paths(contents, flags, scenarios, horizon, seed, chunk, cat), start=1
    ):
        drawn.append(paths)
        if progress is not None:
            progress(done, total)
    return _bisect_rate(np.concatenate(drawn), contents, target_ruin_probability, tolerance)


def _bisect_rate(paths: IntArray, contents: PoolContents, target: float, tolerance: float) -> float:
    exposure = contents.total_exposure
    contributions = int(contents.annual_contributions)

    def ruin(rate: float) -> float:
        balance = round(rate * exposure)
        return float((exhaustion_years(paths, balance, contributions) > 0).mean())

    if ruin(0.0) <= target:
        return 0.0
    low, high = 0.0, 1.0
    if ruin(high) > target:
        raise StressTestRejected(
            f"target_ruin_probability: {target} cannot be met by holding the whole exposure"
        )
    while high - low > tolerance:
        middle = (low + high) / 2
        if ruin(middle) <= target:
            high = middle
        else:
            low = middle
    return high


__all__ = ["required_contribution_rate"]
