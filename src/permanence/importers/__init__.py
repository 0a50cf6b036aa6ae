"""Parsers for registries' public export formats: pure functions from a CSV file to records.

Each format module exposes ``FORMAT`` and ``parse(path)``, which streams
:mod:`~permanence.importers.records` (``IssuanceRecord``, ..., ``Rejected``, ``Skipped``) in file
order without touching the ledger, so an importer can show progress (:func:`count_rows`), count
duplicates and rejections, and decide what to send to the ledger. That importer is
:mod:`permanence.importers.loader` (``permanence import``), kept out of this package's namespace
so that the parsers import nothing from the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from . import acr, art, car, carb, gold_standard, isometric, verra
from .cells import ImportFormatError, count_rows
from .records import (
    BufferRetirementRecord,
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

PARSERS: dict[str, Parser] = {
    module.FORMAT: module.parse for module in (acr, car, art, verra, gold_standard, isometric, carb)
}
"""Format name (``acr``, ``car``, ``art``, ``verra``, ``gold-standard``, ``isometric``,
``carb``) to its ``parse`` function."""

PROGRAMS: dict[str, str] = {
    module.FORMAT: module.PROGRAM
    for module in (acr, car, art, verra, gold_standard, isometric, carb)
}
"""Format name to the program-profile name its records carry."""


def parse(fmt: str, path: Path) -> Iterator[ParseResult]:
    """Parse ``path`` as format ``fmt``; an unknown format is a ``ValueError`` naming the known."""
    try:
        parser = PARSERS[fmt]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown import format {fmt!r}; known formats: {known}") from None
    return parser(Path(path))


__all__ = [
    "PARSERS",
    "PROGRAMS",
    "BufferRetirementRecord",
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
