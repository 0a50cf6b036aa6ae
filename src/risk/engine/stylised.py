"""The stylised pool: N credits, no contributions; each year an event with probability P
removes L credits. Its exhaustion probability has a closed form, so it checks the engine.

With exhaustion meaning a cumulative loss strictly greater than N, the pool is exhausted
by year T when at least ``N // L + 1`` events happened: P(K >= N // L + 1), K ~ Bin(T, P).
Its one-year loss is L with probability P, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from risk.engine.common import (
    DEFAULT_LEVEL,
    RNG_BLOCK,
    IntArray,
    Progress,
    check_levels,
    check_run,
    chunk_count,
    chunk_rows,
    streams,
)
from risk.engine.summary import Run, StressResult, summarise
from risk.errors import StressTestRejected


def events_to_exhaust(pool_size: int, event_loss: int) -> int:
    """Events of ``event_loss`` credits whose sum first exceeds ``pool_size``."""
    return pool_size // event_loss + 1


def simulate_stylised(
    pool_size: int,
    event_loss: int,
    annual_probability: float,
    horizon: int = 100,
    scenarios: int = 10_000,
    seed: int = 0,
    levels: float | Sequence[float] = DEFAULT_LEVEL,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> StressResult:
    """The stylised pool (N credits, events of L credits with probability P each year)."""
    check_stylised(pool_size, event_loss, annual_probability)
    check_run(scenarios, horizon)
    levels_list = check_levels(levels)
    chunk = chunk_rows(chunk_size, horizon)
    paths = _stylised_paths(event_loss, annual_probability, scenarios, horizon, seed, chunk)
    exact = binomial_exhaustion_probability(pool_size, event_loss, annual_probability, horizon)
    parameters = {
        "pool_size": pool_size,
        "event_loss": event_loss,
        "annual_probability": annual_probability,
        "events_to_exhaust": events_to_exhaust(pool_size, event_loss),
        "rng_block": RNG_BLOCK,
    }
    result = summarise(
        paths,
        balance=pool_size,
        contributions=0,
        run=Run("stylised", scenarios, horizon, seed, levels_list),
        parameters=parameters,
        chunks=chunk_count(scenarios, chunk),
        progress=progress,
    )
    return replace(result, exact_p_exhausted=exact)


def binomial_exhaustion_probability(
    pool_size: int, event_loss: int, annual_probability: float, horizon: int
) -> float:
    """Exact P(exhausted by ``horizon``): P(K >= N // L + 1), K ~ Bin(T, P)."""
    check_stylised(pool_size, event_loss, annual_probability)
    if horizon < 0:
        raise StressTestRejected("horizon: must not be negative")
    needed = events_to_exhaust(pool_size, event_loss)
    if needed > horizon:
        return 0.0
    if annual_probability >= 1.0:
        return 1.0
    if annual_probability <= 0.0:
        return 0.0
    terms = [_binomial_pmf(k, horizon, annual_probability) for k in range(needed, horizon + 1)]
    return min(1.0, math.fsum(terms))


def _binomial_pmf(k: int, n: int, p: float) -> float:
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return math.exp(log_pmf)


def check_stylised(pool_size: int, event_loss: int, annual_probability: float) -> None:
    """Whole credits of at least one, and a probability."""
    if pool_size < 1 or event_loss < 1:
        raise StressTestRejected("pool_size and event_loss: must be at least 1 credit")
    if not 0.0 <= annual_probability <= 1.0:
        raise StressTestRejected("annual_probability: must be within [0, 1]")


def _stylised_paths(
    event_loss: int,
    annual_probability: float,
    scenarios: int,
    horizon: int,
    seed: int,
    chunk: int,
) -> Iterator[IntArray]:
    """Loss paths of the stylised pool: L credits in each year an event happens."""
    spawned = streams(seed, scenarios)
    per_chunk = chunk // RNG_BLOCK
    for first in range(0, len(spawned), per_chunk):
        blocks = []
        for index, stream in enumerate(spawned[first : first + per_chunk]):
            rows = min(RNG_BLOCK, scenarios - (first + index) * RNG_BLOCK)
            events = np.random.default_rng(stream).random((rows, horizon)) < annual_probability
            blocks.append(events.astype(np.int64) * event_loss)
        yield np.concatenate(blocks)


__all__ = [
    "binomial_exhaustion_probability",
    "check_stylised",
    "events_to_exhaust",
    "simulate_stylised",
]
