"""Reversal classification: a cause taxonomy plus flags gives avoidable, unavoidable or
computational (CIWP recommendation 1).

Programs word these categories differently, so each profile may override the class of a
cause; an override can never make a proponent-controlled cause unavoidable (the ICVCM
floor), and the profile loader rejects any profile that tries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ledger.errors import InvalidCommand

Classification = Literal["avoidable", "unavoidable", "computational"]
CLASSIFICATIONS: tuple[Classification, ...] = ("avoidable", "unavoidable", "computational")


@dataclass(frozen=True)
class Cause:
    """One cause of reversal, its default class, and whether the proponent controls it."""

    name: str
    default: Classification
    proponent_controlled: bool
    description: str


CAUSES: dict[str, Cause] = {
    c.name: c
    for c in (
        Cause("wildfire", "unavoidable", False, "wildfire not due to negligence"),
        Cause("storm", "unavoidable", False, "storm, hurricane, wind-throw"),
        Cause("flood", "unavoidable", False, "flood"),
        Cause("drought", "unavoidable", False, "drought"),
        Cause("pest", "unavoidable", False, "insect pests"),
        Cause("disease", "unavoidable", False, "disease"),
        Cause("geological", "unavoidable", False, "earthquake, landslide, volcanic activity"),
        Cause("war", "unavoidable", False, "war or armed conflict"),
        Cause("terrorism", "unavoidable", False, "terrorism"),
        Cause("encroachment", "unavoidable", False, "unforeseeable encroachment"),
        Cause("leakage", "unavoidable", False, "geological storage leakage not due to negligence"),
        Cause("harvest", "avoidable", True, "timber harvest"),
        Cause("land-use-change", "avoidable", True, "conversion of land use"),
        Cause("mismanagement", "avoidable", True, "management failure"),
        Cause("cessation", "avoidable", True, "cessation of monitoring and verification"),
        Cause("termination", "avoidable", True, "early termination of the project"),
        Cause("model-error", "computational", False, "a model over-estimated the stock"),
        Cause("overestimation", "computational", False, "credits over-issued by calculation"),
    )
}


def classify(
    cause: str,
    *,
    negligence: bool = False,
    wilful: bool = False,
    within_control: bool = False,
    overrides: dict[str, Classification] | None = None,
) -> Classification:
    """Classify a reversal from its cause and flags, applying a profile's overrides.

    Negligence, wilful intent and control by the proponent make any cause avoidable:
    a wildfire the proponent started through negligence is the proponent's to compensate.
    """
    known = _check_cause(cause)
    if negligence or wilful or within_control:
        return "avoidable"
    chosen = (overrides or {}).get(cause, known.default)
    if known.proponent_controlled and chosen == "unavoidable":
        return "avoidable"
    return chosen


def floor_violations(overrides: dict[str, str]) -> list[str]:
    """Name every override that breaks the ICVCM floor or names an unknown cause/class."""
    problems = []
    for cause, chosen in overrides.items():
        known = CAUSES.get(cause)
        if known is None:
            problems.append(f"classification override names unknown cause {cause!r}")
        elif chosen not in CLASSIFICATIONS:
            problems.append(f"classification override for {cause!r}: unknown class {chosen!r}")
        elif known.proponent_controlled and chosen == "unavoidable":
            problems.append(
                f"ICVCM floor: proponent-controlled cause {cause!r} cannot be unavoidable"
            )
    return problems


def _check_cause(cause: str) -> Cause:
    known = CAUSES.get(cause)
    if known is None:
        raise InvalidCommand(
            f"cause: unknown cause {cause!r}; known causes: {', '.join(sorted(CAUSES))}"
        )
    return known
