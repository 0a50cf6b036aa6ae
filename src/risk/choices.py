"""The stress test's choices as enums: light enough for a command line to import at start-up
(no numpy), so its help can list every choice."""

from __future__ import annotations

from enum import StrEnum


class StressModel(StrEnum):
    """The loss models: five simulated pool models, the backtest and the stylised pool."""

    independent = "independent"
    catastrophe = "catastrophe"
    rising = "rising"
    default = "default"
    combined = "combined"
    backtest = "backtest"
    stylised = "stylised"


class RegionBy(StrEnum):
    """What a catastrophe region is when no mapping is given: a program or a project."""

    program = "program"
    project = "project"


MODEL_HELP: dict[str, str] = {
    "independent": "each project reverses independently with its annual probability",
    "catastrophe": "independent, plus regional catastrophe years",
    "rising": "hazard growing by --hazard-trend a year",
    "default": "avoidable losses fall on the pool only when the proponent defaults",
    "combined": "catastrophe, rising hazard and defaults at once",
    "backtest": "the pool's recorded losses replayed against its balance",
    "stylised": "N credits, events of L credits with probability P a year (closed form)",
}


__all__ = ["MODEL_HELP", "RegionBy", "StressModel"]
