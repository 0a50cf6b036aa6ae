"""The issuance command a row becomes: its deterministic id, whether its credits can reverse,
and any buffer its program withholds though the export does not state it."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

from ledger.application import vintage_id_for
from ledger.profiles import ProfileCatalog

from . import DERIVED_BUFFER, UNKNOWN_REVERSIBLE
from .records import IssuanceRecord
from .summary import ImportSummary


class IssuanceSpecs:
    """Issuance specs of one file's rows, with the unknown project types they met."""

    def __init__(self, catalog: ProfileCatalog, fmt: str) -> None:
        self.catalog = catalog
        self.fmt = fmt
        self._unknown_types: dict[tuple[Any, ...], list[int]] = defaultdict(list)

    def spec(self, record: IssuanceRecord, summary: ImportSummary) -> dict[str, Any]:
        """The issuance command: with whether the credits can reverse, and any buffer the
        program withholds though the file does not state it."""
        vid = vintage_id_for(record.program, record.source_key)
        reversible = self._reversible(record, summary)
        spec = _spec(record, vid)
        spec["reversible"] = reversible
        spec["buffer"] = record.buffer + self._derived_buffer(record, reversible, summary)
        # an export records what the registry did under its rules then (Verra's buffer is a
        # separate account, not stated per issuance): the minimum applies to new issuance
        spec["enforce_minimum_buffer"] = False
        return spec

    def _reversible(self, record: IssuanceRecord, summary: ImportSummary) -> bool:
        """The source's own statement, else the profile's scope, else the format's default
        (and a finding: an unknown type must be looked at)."""
        if record.reversible_stated is not None:
            return record.reversible_stated
        profile = self.catalog.get(record.program)
        answer = profile.reversible(record.project_type, record.methodology)
        if answer is not None:
            return answer
        default = UNKNOWN_REVERSIBLE.get(self.fmt, True)
        key = (record.program, record.project_type, record.methodology, default)
        self._unknown_types[key].append(record.line)
        return default

    def unknown_type_findings(self) -> list[str]:
        """One finding per unknown project type, naming its rows (a file of 6,000 rows of
        one type gives one finding, not 6,000)."""
        out = []
        for (program, project_type, methodology, default), lines in self._unknown_types.items():
            where = ", ".join(str(n) for n in lines[:5]) + (
                f" and {len(lines) - 5:,} more" if len(lines) > 5 else "")
            out.append(
                f"{len(lines):,} row(s) (line {where}): project type {project_type!r} "
                f"(methodology {methodology!r}) is not in profile {program}'s reversal scope; "
                f"recorded as {'reversible' if default else 'non-reversible'}, the {self.fmt} "
                "format's default"
            )
        return out

    def _derived_buffer(
        self, record: IssuanceRecord, reversible: bool, summary: ImportSummary
    ) -> int:
        """Gold Standard withholds a flat share of sequestration credits that its issuance
        export does not state: derive it from the profile (quantity is the 1 - rate part)."""
        if record.buffer or not reversible or self.fmt not in DERIVED_BUFFER:
            return 0
        profile = self.catalog.get(record.program)
        if profile.reversible(record.project_type, record.methodology) is not True:
            return 0  # only types the profile names as land use and forest, never a default
        rate = profile.buffer_rate.value
        if profile.buffer_method.value != "flat" or not rate:
            return 0
        share = Fraction(str(rate))
        derived = int(Fraction(record.quantity) * share / (1 - share) + Fraction(1, 2))
        if derived:
            summary.findings.append(
                f"line {record.line}: buffer of {derived} derived from profile "
                f"{record.program}'s flat rate {rate} (the file states none)"
            )
            summary.tally("buffer", "file", derived)
        return derived

    # ------------------------------------------------------------------ verification history


def _serial(prefix: str | None, number: str | None) -> str | None:
    """A serial as stored: its numbering space kept (``GS1-1-UG-GS11236-16-2024-30307-1``),
    so that ``check`` compares serials only within one space."""
    if number is None or not prefix:
        return number
    return f"{prefix}-{number}"



def _spec(record: IssuanceRecord, vid: str) -> dict[str, Any]:
    return {
        "vintage_id": vid,
        "program": record.program,
        "project": record.project,
        "quantity": record.quantity,
        "buffer": record.buffer,
        "on": record.issued_on,
        "vintage_year": record.vintage_year,
        "vintage_start": record.vintage_start,
        "vintage_end": record.vintage_end,
        "serial_first": _serial(record.serial_prefix, record.serial_first),
        "serial_last": _serial(record.serial_prefix, record.serial_last),
        "crediting_start": record.crediting_start,
        "source_key": record.source_key,
        "corresponding_adjustment": record.corresponding_adjustment,
        "authorization": record.authorization,
        "project_type": record.project_type,
    }

