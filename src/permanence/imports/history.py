"""Verification history that an export implies, so that a sweep after an import is truthful.

Why: a registry issues credits for a monitoring period only after that period's report was
verified. So each issuance of a project is evidence that the project was verified on or before
that issuance, and every earlier vintage of the project still under monitoring was verified
then too (a project is verified as a whole, not vintage by vintage). Without this, importing
years of exports makes one sweep record every old vintage as lapsed at once.

The rule (:func:`implied`, then :meth:`ledger.application.LedgerApp.verify_implied`): for each
project, each of its issuances dated ``d`` verifies every
earlier-issued reversible vintage of the project (``issued_on < d < period_end``, not yet
verified on ``d``), dated:

- the verification date the export states for that issuance, where it states one (CARB's
  ``Date Invalidation Period Reduced`` is the date of a second verification), else
- the issuance date ``d`` itself: the latest the verification can have been, so that no lapse
  the data cannot rule out is hidden.

Only the implied verifications that change what the vintage's verifications say are recorded
(``Vintage.verifications_implied_by``): the same lapses, cures and due date today as
recording every one, without one event per pair of a vintage and a later issuance of its
project (100,000 rows over 5,000 projects would otherwise imply about a million).

The ``verifier`` of each recorded ``Verified`` event says which rule dated it and names the
issuance that is the evidence (and the verification body the export names, if any).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Evidence:
    """An issuance of the project: the verification it implies, and how it is dated."""

    on: date
    source_key: str
    verifier: str | None
    stated: bool


def describe(evidence: Evidence, program: str) -> str:
    """The ``verifier`` text: who, and which rule dated it (kept short: a name, not a log)."""
    rule = "date stated by the export" if evidence.stated else "dated by that issuance"
    who = f"{evidence.verifier}; " if evidence.verifier else ""
    key = (
        evidence.source_key if len(evidence.source_key) <= 80 else evidence.source_key[:77] + "..."
    )
    return f"{who}implied by {program} issuance {key} ({rule})"


def implied(program: str, evidence: Iterable[Evidence]) -> dict[date, str]:
    """Each date one project's issuances imply a verification on, with the ``verifier`` text
    to record: the first issuance of that date by key is named as the evidence."""
    found: dict[date, str] = {}
    for item in sorted(evidence, key=lambda e: (e.on, e.source_key)):
        if item.on not in found:
            found[item.on] = describe(item, program)
    return found


__all__ = ["Evidence", "describe", "implied"]
