"""Verification history that an export implies, so that a sweep after an import is truthful.

Why: a registry issues credits for a monitoring period only after that period's report was
verified. So each issuance of a project is evidence that the project was verified on or before
that issuance, and every earlier vintage of the project still under monitoring was verified
then too (a project is verified as a whole, not vintage by vintage). Without this, importing
years of exports makes one sweep record every old vintage as lapsed at once.

The rule (:func:`plan`): for each project, each of its issuances dated ``d`` verifies every
earlier-issued reversible vintage of the project (``issued_on < d < period_end``, not yet
verified on ``d``), dated:

- the verification date the export states for that issuance, where it states one (CARB's
  ``Date Invalidation Period Reduced`` is the date of a second verification), else
- the issuance date ``d`` itself: the latest the verification can have been, so that no lapse
  the data cannot rule out is hidden.

Only the implied verifications that change what the vintage's verifications say are recorded
(:func:`ledger.lapses.decisive_verifications`): the same lapses, cures and due date today as
recording every one, without one event per pair of a vintage and a later issuance of its
project (100,000 rows over 5,000 projects would otherwise imply about a million).

The ``verifier`` of each recorded ``Verified`` event says which rule dated it and names the
issuance that is the evidence (and the verification body the export names, if any).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from ledger.lapses import decisive_verifications


@dataclass(frozen=True)
class Known:
    """One vintage of a project as the importer knows it (from this file or the ledger)."""

    vid: str
    issued_on: date
    period_end: date
    reversible: bool
    verified: frozenset[date]
    interval_years: int | None
    grace_days: int


@dataclass(frozen=True)
class Evidence:
    """An issuance of the project: the verification it implies, and how it is dated."""

    on: date
    source_key: str
    verifier: str | None
    stated: bool


@dataclass(frozen=True)
class Verification:
    """One verification to record on one vintage."""

    vid: str
    on: date
    verifier: str


def describe(evidence: Evidence, program: str) -> str:
    """The ``verifier`` text: who, and which rule dated it (kept short: a name, not a log)."""
    rule = "date stated by the export" if evidence.stated else "dated by that issuance"
    who = f"{evidence.verifier}; " if evidence.verifier else ""
    key = (
        evidence.source_key if len(evidence.source_key) <= 80 else evidence.source_key[:77] + "..."
    )
    return f"{who}implied by {program} issuance {key} ({rule})"


def plan(
    program: str,
    vintages: Iterable[Known],
    evidence: Iterable[Evidence],
    today: date,
) -> list[Verification]:
    """The verifications one project's issuances imply for its earlier reversible vintages,
    those that change what each vintage's verifications say (see the module docstring)."""
    first: dict[date, Evidence] = {}
    for item in sorted(evidence, key=lambda e: (e.on, e.source_key)):
        first.setdefault(item.on, item)  # a date's verifier: its first issuance by key
    dates = sorted(first)
    todo: list[Verification] = []
    for vintage in vintages:
        if not vintage.reversible:
            continue
        start = bisect_right(dates, vintage.issued_on)
        stop = min(bisect_left(dates, vintage.period_end), bisect_right(dates, today))
        for on in decisive_verifications(
            issued_on=vintage.issued_on,
            period_end=vintage.period_end,
            recorded=vintage.verified,
            candidates=dates[start:stop],
            interval_years=vintage.interval_years,
            grace_days=vintage.grace_days,
        ):
            todo.append(Verification(vintage.vid, on, describe(first[on], program)))
    return todo


def by_vintage(items: Iterable[Verification]) -> dict[str, list[Verification]]:
    grouped: dict[str, list[Verification]] = defaultdict(list)
    for item in items:
        grouped[item.vid].append(item)
    return grouped


__all__ = ["Evidence", "Known", "Verification", "by_vintage", "describe", "plan"]
