"""Parsers for registries' public export formats: pure functions from a CSV file to records.

Each format module exposes ``FORMAT`` and ``parse(path)``, which streams
:mod:`~permanence.imports.records` (``IssuanceRecord``, ..., ``Rejected``, ``Skipped``) in file
order without touching the ledger, so an importer can show progress (:func:`count_rows`), count
duplicates and rejections, and decide what to send to the ledger. That importer is
:mod:`permanence.imports.loader` (``permanence import``), kept out of this package's namespace
so that the parsers import nothing from the ledger.

The modules: one per format (``acr``, ``acr_credits``, ``art``, ``car``, ``car_credits``,
``carb``, ``gold_standard``, ``isometric``, ``verra``); ``cells`` and ``credit_rows`` (reading
cells and credit rows); ``records`` (what parsers yield). The importer: ``loader`` (the run:
issuances, implied verifications, then command batches handed to ``LedgerApp``), ``files``
(checking a file first, the rejects file), ``issuance`` (the issuance command a row becomes),
``history`` (the verifications issuances imply), ``commands`` and ``marks`` (every other
record as a keyed, idempotent command), ``causes``, ``summary`` (what an import did) and
``read_model`` (duplicate checks and the reconciliation)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from . import acr, acr_credits, art, car, car_credits, carb, gold_standard, isometric, verra
from .cells import ImportFormatError, count_rows
from .records import (
    BufferRetirementRecord,
    CreditRecord,
    InvalidationRecord,
    IssuanceRecord,
    ParseResult,
    Record,
    Rejected,
    RetirementRecord,
    ReversalRecord,
    Skipped,
    SurrenderRecord,
)

Parser = Callable[[Path], Iterator[ParseResult]]

_MODULES = (
    acr,
    car,
    art,
    verra,
    gold_standard,
    isometric,
    carb,
    acr_credits.RETIREMENTS,
    acr_credits.CANCELLATIONS,
    car_credits.RETIREMENTS,
    car_credits.CANCELLATIONS,
)

PARSERS: dict[str, Parser] = {module.FORMAT: module.parse for module in _MODULES}
"""Format name (``acr``, ``car``, ``art``, ``verra``, ``gold-standard``, ``isometric``,
``carb``) to its ``parse`` function."""

PROGRAMS: dict[str, str] = {module.FORMAT: module.PROGRAM for module in _MODULES}
"""Format name to the program-profile name its records carry."""

UNKNOWN_REVERSIBLE: dict[str, bool] = {
    module.FORMAT: getattr(module, "UNKNOWN_TYPE_REVERSIBLE", True) for module in _MODULES
}
"""Format name to whether a row whose project type no profile scope names is recorded as
reversible (each format module documents its default; True unless it says otherwise: an
unknown type is treated as carrying the obligation, and reported as a finding)."""

DERIVED_BUFFER: frozenset[str] = frozenset(
    module.FORMAT for module in _MODULES if getattr(module, "BUFFER_FROM_PROFILE", False)
)
"""Formats whose exports omit a buffer the program withholds at a flat rate (Gold Standard)."""


def parse(fmt: str, path: Path) -> Iterator[ParseResult]:
    """Parse ``path`` as format ``fmt``; an unknown format is a ``ValueError`` naming the known."""
    try:
        parser = PARSERS[fmt]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown import format {fmt!r}; known formats: {known}") from None
    return parser(Path(path))


__all__ = [
    "DERIVED_BUFFER",
    "PARSERS",
    "PROGRAMS",
    "UNKNOWN_REVERSIBLE",
    "BufferRetirementRecord",
    "CreditRecord",
    "ImportFormatError",
    "InvalidationRecord",
    "IssuanceRecord",
    "ParseResult",
    "Parser",
    "Record",
    "Rejected",
    "RetirementRecord",
    "ReversalRecord",
    "Skipped",
    "SurrenderRecord",
    "count_rows",
    "parse",
]
