"""The pool models: independent, catastrophe, rising, default and combined reversals.

- ``independent``: each project, each year, has a reversal event with its annual probability
  and loses ``loss_fraction`` of its *remaining* exposure (exposure never regrows, so losses
  never exceed it). Every reversal is a pool loss (as if no avoidable one were compensated).
- ``catastrophe``: as independent, plus regional catastrophe years: each region, each year,
  is struck with ``CatastropheParams.annual_probability``; in a struck year its projects'
  probabilities and loss fractions are multiplied (capped at 1).
- ``rising``: hazard grows with climate change: ``p_t = min(1, p * (1 + trend) ** (t - 1))``
  in year t = 1..horizon.
- ``default``: a reversal's avoidable share is a pool loss only when the proponent defaults
  (``default_probability`` per event); the unavoidable share always is.
- ``combined``: all of the above at once.

Events are drawn sparsely (geometric gaps, then thinning), so the cost follows the number
of events, not scenarios x projects x years.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from risk.engine.common import (
    DEFAULT_LEVEL,
    RNG_BLOCK,
    BoolArray,
    FloatArray,
    IntArray,
    Progress,
    check_levels,
    check_run,
    chunk_count,
    chunk_rows,
    streams,
)
from risk.engine.contents import CatastropheParams, PoolContents
from risk.engine.summary import Run, StressResult, summarise
from risk.errors import StressTestRejected

Model = Literal["independent", "catastrophe", "rising", "default", "combined"]
MODELS: tuple[str, ...] = get_args(Model)


def simulate(
    contents: PoolContents,
    model: str = "independent",
    scenarios: int = 10_000,
    horizon: int = 100,
    seed: int = 0,
    levels: float | Sequence[float] = DEFAULT_LEVEL,
    chunk_size: int | None = None,
    catastrophe: CatastropheParams | None = None,
    progress: Progress | None = None,
) -> StressResult:
    """Run one model family over ``scenarios`` x ``horizon`` years and summarise the pool's fate.

    ``progress`` (optional) is called after each chunk with (chunks done, chunks in all).
    """
    flags = model_flags(model)
    levels_list = check_levels(levels)
    check_run(scenarios, horizon)
    cat = catastrophe or CatastropheParams()
    chunk = chunk_rows(chunk_size, contents.n_projects)
    paths = loss_paths(contents, flags, scenarios, horizon, seed, chunk, cat)
    parameters = {
        "pool": contents.summary(),
        "rng_block": RNG_BLOCK,
        **({"catastrophe": cat.to_dict()} if flags.catastrophe else {}),
    }
    return summarise(
        paths,
        balance=int(contents.buffer_balance),
        contributions=int(contents.annual_contributions),
        run=Run(model, scenarios, horizon, seed, levels_list),
        parameters=parameters,
        chunks=chunk_count(scenarios, chunk),
        progress=progress,
    )


@dataclass(frozen=True)
class Flags:
    """Which effects a pool model switches on."""

    catastrophe: bool
    rising: bool
    default: bool


_MODEL_FLAGS: dict[str, Flags] = {
    "independent": Flags(False, False, False),
    "catastrophe": Flags(True, False, False),
    "rising": Flags(False, True, False),
    "default": Flags(False, False, True),
    "combined": Flags(True, True, True),
}


def model_flags(model: str) -> Flags:
    """The switches of a pool model; an unknown name is rejected, naming the models."""
    if model not in _MODEL_FLAGS:
        raise StressTestRejected(f"model: {model!r} is not one of {', '.join(MODELS)}")
    return _MODEL_FLAGS[model]


@dataclass(frozen=True)
class _Layout:
    """Per-pool lookup tables, built once per run."""

    groups: list[tuple[IntArray, FloatArray]]
    region_index: IntArray
    n_regions: int
    by_region: IntArray
    region_start: IntArray
    region_count: IntArray


def _layout(contents: PoolContents) -> _Layout:
    """Group projects by probability octave so thinning keeps at least half the candidates."""
    p = contents.annual_probability
    positive = np.flatnonzero(p > 0)
    octave = np.floor(np.log2(p[positive])).astype(np.int64)
    groups = []
    for value in np.unique(octave):
        cols = positive[octave == value]
        groups.append((cols.astype(np.int64), p[cols]))
    _, region_index = np.unique(contents.region, return_inverse=True)
    region_index = region_index.astype(np.int64).ravel()
    n_regions = int(region_index.max()) + 1
    by_region = np.argsort(region_index, kind="stable").astype(np.int64)
    count = np.bincount(region_index, minlength=n_regions).astype(np.int64)
    start = (np.cumsum(count) - count).astype(np.int64)
    return _Layout(groups, region_index, n_regions, by_region, start, count)


@dataclass(frozen=True)
class _Events:
    """One year's reversal events in a chunk: scenario row, project, shock flag, default flag."""

    row: IntArray
    col: IntArray
    shocked: BoolArray
    defaulted: BoolArray


def loss_paths(
    contents: PoolContents,
    flags: Flags,
    scenarios: int,
    horizon: int,
    seed: int,
    chunk: int,
    cat: CatastropheParams,
) -> Iterator[IntArray]:
    """Yield pool losses per scenario and year, one (chunk x horizon) array at a time."""
    layout = _layout(contents)
    spawned = streams(seed, scenarios)
    per_chunk = chunk // RNG_BLOCK
    for first in range(0, len(spawned), per_chunk):
        gens = [np.random.default_rng(s) for s in spawned[first : first + per_chunk]]
        start = first * RNG_BLOCK
        rows = min(scenarios, start + len(gens) * RNG_BLOCK) - start
        yield _chunk_losses(contents, layout, flags, cat, gens, rows, horizon)


def _chunk_losses(
    contents: PoolContents,
    layout: _Layout,
    flags: Flags,
    cat: CatastropheParams,
    gens: list[np.random.Generator],
    rows: int,
    horizon: int,
) -> IntArray:
    remaining = np.tile(contents.exposure, (rows, 1))
    losses = np.zeros((rows, horizon), dtype=np.int64)
    growth = 1.0 + contents.hazard_trend if flags.rising else 1.0
    for year in range(horizon):
        factor = growth**year
        events = _chunk_events(contents, layout, flags, cat, gens, rows, factor)
        pool_loss = _apply(contents, remaining, events, flags, cat)
        per_row = np.bincount(events.row, weights=pool_loss.astype(np.float64), minlength=rows)
        losses[:, year] = np.rint(per_row).astype(np.int64)
    return losses


def _chunk_events(
    contents: PoolContents,
    layout: _Layout,
    flags: Flags,
    cat: CatastropheParams,
    gens: list[np.random.Generator],
    rows: int,
    factor: float,
) -> _Events:
    parts = []
    for index, gen in enumerate(gens):
        offset = index * RNG_BLOCK
        block_rows = min(RNG_BLOCK, rows - offset)
        events = _block_events(gen, block_rows, contents, layout, flags, cat, factor)
        parts.append(replace(events, row=events.row + offset))
    return _Events(
        row=np.concatenate([e.row for e in parts]),
        col=np.concatenate([e.col for e in parts]),
        shocked=np.concatenate([e.shocked for e in parts]),
        defaulted=np.concatenate([e.defaulted for e in parts]),
    )


def _block_events(
    gen: np.random.Generator,
    rows: int,
    contents: PoolContents,
    layout: _Layout,
    flags: Flags,
    cat: CatastropheParams,
    factor: float,
) -> _Events:
    """One block's events for one year; the draw order is fixed, so results are reproducible."""
    width = contents.n_projects
    keys = [_group_keys(gen, rows, width, cols, p, factor) for cols, p in layout.groups]
    shock: BoolArray | None = None
    if flags.catastrophe:
        shock = gen.random((rows, layout.n_regions)) < cat.annual_probability
        keys.append(_shock_keys(gen, shock, contents, layout, cat, factor))
    key = _union(keys) if flags.catastrophe else _concat(keys)
    row, col = np.divmod(key, width)
    shocked = (
        shock[row, layout.region_index[col]] if shock is not None else np.zeros(key.size, bool)
    )
    defaulted = (
        gen.random(key.size) < contents.default_probability
        if flags.default
        else np.ones(key.size, dtype=bool)
    )
    return _Events(row, col, shocked, defaulted)


def _concat(keys: list[IntArray]) -> IntArray:
    """Probability groups hold disjoint projects, so their events never coincide."""
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


def _union(keys: list[IntArray]) -> IntArray:
    """Base and catastrophe events may coincide: one event per project-year (sorted)."""
    key = np.sort(_concat(keys))
    return key[np.concatenate(([True], key[1:] != key[:-1]))] if key.size else key


def _group_keys(
    gen: np.random.Generator,
    rows: int,
    width: int,
    cols: IntArray,
    p: FloatArray,
    factor: float,
) -> IntArray:
    """Bernoulli events for one probability group: candidates at the group's top rate, thinned."""
    p_eff = np.minimum(p * factor, 1.0)
    top = float(p_eff.max())
    position = _bernoulli_positions(gen, rows * cols.size, top)
    row, local = np.divmod(position, cols.size)
    if float(p_eff.min()) < top:
        keep = gen.random(position.size) * top < p_eff[local]
        row, local = row[keep], local[keep]
    return row * width + cols[local]


def _bernoulli_positions(gen: np.random.Generator, n: int, p: float) -> IntArray:
    """Indices of successes among ``n`` Bernoulli(p) trials, via geometric gaps (sorted)."""
    if n <= 0 or p <= 0.0:
        return np.zeros(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n, dtype=np.int64)
    found: list[IntArray] = []
    last = -1
    while True:
        left = n - 1 - last
        draws = int(left * p + 4.0 * math.sqrt(left * p) + 16)
        # Clip huge gaps (tiny p) so the cumulative sum cannot overflow; any gap > n is out.
        gaps = np.minimum(gen.geometric(p, size=draws), n + 1).astype(np.int64)
        position = last + np.cumsum(gaps)
        if position[-1] >= n:
            found.append(position[position < n])
            return np.concatenate(found)
        found.append(position)
        last = int(position[-1])


def _shock_keys(
    gen: np.random.Generator,
    shock: BoolArray,
    contents: PoolContents,
    layout: _Layout,
    cat: CatastropheParams,
    factor: float,
) -> IntArray:
    """Extra events in shocked region-years, lifting each project's probability to p * m."""
    rows, regions = np.nonzero(shock)
    counts = layout.region_count[regions]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    within = np.arange(total) - np.repeat(ends - counts, counts)
    cols = layout.by_region[np.repeat(layout.region_start[regions], counts) + within]
    base = np.minimum(contents.annual_probability[cols] * factor, 1.0)
    lifted = np.minimum(base * cat.probability_multiplier, 1.0)
    extra = np.where(base < 1.0, (lifted - base) / np.maximum(1.0 - base, 1e-300), 0.0)
    hit = gen.random(total) < extra
    return np.repeat(rows, counts)[hit] * contents.n_projects + cols[hit]


def _apply(
    contents: PoolContents,
    remaining: IntArray,
    events: _Events,
    flags: Flags,
    cat: CatastropheParams,
) -> IntArray:
    """Take each event's loss from the remaining exposure; return the part the pool bears."""
    row, col = events.row, events.col
    fraction = contents.loss_fraction[col]
    if flags.catastrophe:
        fraction = np.minimum(np.where(events.shocked, fraction * cat.loss_multiplier, fraction), 1)
    left = remaining[row, col]
    loss = np.rint(fraction * left).astype(np.int64)
    remaining[row, col] = left - loss
    if not flags.default:
        return loss
    avoidable = np.rint(loss * contents.avoidable_share[col]).astype(np.int64)
    return loss - avoidable + np.where(events.defaulted, avoidable, 0)


__all__ = ["MODELS", "Flags", "Model", "loss_paths", "model_flags", "simulate"]
