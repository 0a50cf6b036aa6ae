"""The engine's inputs: what a pool holds and insures, and the catastrophe assumption.

One array entry per project: exposure borne by the pool (whole credits), the annual
reversal probability, the share of remaining exposure an event takes, a region code,
the avoidable share of a loss; plus the pool's balance and stated assumptions. Built by
:mod:`risk.pool_contents` from the read models, or directly (tests, benchmarks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from risk.engine.common import FloatArray, IntArray
from risk.errors import StressTestRejected


@dataclass(frozen=True)
class PoolContents:
    """What the pool holds and what it insures, one array entry per project."""

    buffer_balance: int
    exposure: IntArray
    annual_probability: FloatArray
    loss_fraction: FloatArray
    region: IntArray
    avoidable_share: FloatArray
    default_probability: float
    hazard_trend: float
    annual_contributions: int = 0

    def __post_init__(self) -> None:
        n = _check_exposure(self)
        for name in ("annual_probability", "loss_fraction", "avoidable_share"):
            object.__setattr__(self, name, _unit_array(getattr(self, name), name, n))
        object.__setattr__(self, "region", _int_array(self.region, "region", n))
        _check_scalars(self)

    @classmethod
    def homogeneous(
        cls,
        n_projects: int,
        exposure: int,
        annual_probability: float,
        loss_fraction: float,
        buffer_balance: int,
        regions: int = 1,
        avoidable_share: float = 0.0,
        default_probability: float = 0.0,
        hazard_trend: float = 0.0,
        annual_contributions: int = 0,
    ) -> PoolContents:
        """Identical projects spread round-robin over ``regions``: handy for tests and benches."""
        if n_projects < 1 or regions < 1:
            raise StressTestRejected("n_projects and regions must be at least 1")
        return cls(
            buffer_balance=buffer_balance,
            exposure=np.full(n_projects, exposure, dtype=np.int64),
            annual_probability=np.full(n_projects, annual_probability),
            loss_fraction=np.full(n_projects, loss_fraction),
            region=np.arange(n_projects, dtype=np.int64) % regions,
            avoidable_share=np.full(n_projects, avoidable_share),
            default_probability=default_probability,
            hazard_trend=hazard_trend,
            annual_contributions=annual_contributions,
        )

    @property
    def n_projects(self) -> int:
        """Number of projects insured by the pool."""
        return int(self.exposure.size)

    @property
    def total_exposure(self) -> int:
        """Sum of exposure borne by the pool."""
        return int(self.exposure.sum())

    def with_balance(self, buffer_balance: int) -> PoolContents:
        """The same pool holding a different balance (for contribution-rate searches)."""
        return replace(self, buffer_balance=buffer_balance)

    def summary(self) -> dict[str, Any]:
        """Published parameters of the pool (JSON-ready)."""
        return {
            "n_projects": self.n_projects,
            "total_exposure": self.total_exposure,
            "buffer_balance": int(self.buffer_balance),
            "annual_contributions": int(self.annual_contributions),
            "mean_annual_probability": float(self.annual_probability.mean()),
            "mean_loss_fraction": float(self.loss_fraction.mean()),
            "regions": int(np.unique(self.region).size),
            "mean_avoidable_share": float(self.avoidable_share.mean()),
            "default_probability": float(self.default_probability),
            "hazard_trend": float(self.hazard_trend),
        }


def _check_exposure(contents: PoolContents) -> int:
    exposure = np.asarray(contents.exposure)
    if exposure.ndim != 1 or exposure.size == 0:
        raise StressTestRejected("exposure: expected a non-empty one-dimensional array")
    if not np.issubdtype(exposure.dtype, np.integer):
        raise StressTestRejected("exposure: quantities are whole credits (an integer array)")
    if (exposure < 0).any():
        raise StressTestRejected("exposure: must not be negative")
    object.__setattr__(contents, "exposure", exposure.astype(np.int64))
    return int(exposure.size)


def _unit_array(values: Any, name: str, n: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise StressTestRejected(f"{name}: expected {n} values, one per project")
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise StressTestRejected(f"{name}: every value must be within [0, 1]")
    return array


def _int_array(values: Any, name: str, n: int) -> IntArray:
    array = np.asarray(values)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise StressTestRejected(f"{name}: expected {n} integer codes, one per project")
    return array.astype(np.int64)


def _check_scalars(contents: PoolContents) -> None:
    if int(contents.buffer_balance) < 0:
        raise StressTestRejected("buffer_balance: must not be negative")
    if int(contents.annual_contributions) < 0:
        raise StressTestRejected("annual_contributions: must not be negative")
    if not 0.0 <= contents.default_probability <= 1.0:
        raise StressTestRejected("default_probability: must be within [0, 1]")
    if not (math.isfinite(contents.hazard_trend) and contents.hazard_trend > -1.0):
        raise StressTestRejected("hazard_trend: must be greater than -1")


@dataclass(frozen=True)
class CatastropheParams:
    """A regional shock year: how often it strikes a region and how much worse it makes it."""

    annual_probability: float = 0.02
    probability_multiplier: float = 5.0
    loss_multiplier: float = 1.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.annual_probability <= 1.0:
            raise StressTestRejected("catastrophe.annual_probability: must be within [0, 1]")
        if self.probability_multiplier < 1.0 or self.loss_multiplier < 1.0:
            raise StressTestRejected("catastrophe multipliers: must be at least 1")

    def to_dict(self) -> dict[str, float]:
        """Published parameters (JSON-ready)."""
        return {
            "annual_probability": self.annual_probability,
            "probability_multiplier": self.probability_multiplier,
            "loss_multiplier": self.loss_multiplier,
        }


__all__ = ["CatastropheParams", "PoolContents"]
