"""What an import did, record kind by record kind: counts, rejections, findings and the
reconciliation of the file's tonnes with the ledger's (the CLI's and HTTP's JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from eventsourcing.persistence import DataError

from ledger.errors import LedgerError

from .records import (
    BufferRetirementRecord,
    CreditRecord,
    InvalidationRecord,
    IssuanceRecord,
    Record,
    RetirementRecord,
    ReversalRecord,
    SurrenderRecord,
)

Kind = Literal[
    "issuance",
    "reversal",
    "buffer_retirement",
    "surrender",
    "invalidation",
    "retirement",
    "cancellation",
]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: What one record may make the ledger raise besides a LedgerError (a value too large to
#: store, ...): the record is rejected with the reason, and the rest of the file goes on.
ROW_FAULTS: tuple[type[BaseException], ...] = (
    LedgerError,
    ValueError,
    TypeError,
    OverflowError,
    DataError,
)
Status = Literal["imported", "duplicate", "rejected"]

_KIND_OF: dict[type, Kind] = {
    IssuanceRecord: "issuance",
    ReversalRecord: "reversal",
    BufferRetirementRecord: "buffer_retirement",
    SurrenderRecord: "surrender",
    InvalidationRecord: "invalidation",
    RetirementRecord: "retirement",
}


def kind_of(record: Record) -> Kind:
    if isinstance(record, CreditRecord):
        return "retirement" if record.action == "retire" else "cancellation"
    return _KIND_OF[type(record)]




@dataclass
class KindCount:
    """Records of one kind, by what became of them."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0

    def count(self, status: Status, n: int = 1) -> None:
        if status == "imported":
            self.imported += n
        elif status == "duplicate":
            self.duplicates += n
        else:
            self.rejected += n


@dataclass(frozen=True)
class Reject:
    """One line of the rejects file: the source line, why, and the row as read."""

    line: int
    reason: str
    raw: str


@dataclass
class ImportSummary:
    """What one import did; ``as_dict`` is the CLI's JSON."""

    format: str
    file: str
    program: str
    read: int = 0
    skipped: int = 0
    unreadable: int = 0
    kinds: dict[str, KindCount] = field(default_factory=lambda: {k: KindCount() for k in KINDS})
    quantity: int = 0
    buffer: int = 0
    file_quantity: int = 0
    file_buffer: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: str | None = None
    #: Things a registry's data team should know that are not rejections (an unknown project
    #: type given the format's default, a comment that could not be read, ...).
    findings: list[str] = field(default_factory=list)
    #: Tonnes per figure: stated by the file, rejected, and held by the ledger afterwards.
    tonnes: dict[str, dict[str, int]] = field(default_factory=dict)
    non_reversible: int = 0
    verifications: int = 0

    def tally(self, figure: str, column: str, n: int) -> None:
        row = self.tonnes.setdefault(figure, {"file": 0, "rejected": 0, "repeated": 0})
        row[column] = row.get(column, 0) + n

    @property
    def unexplained(self) -> dict[str, int]:
        """Per figure, what neither the ledger nor the rejected rows account for."""
        out = {}
        for figure, row in self.tonnes.items():
            if "ledger" not in row:
                continue
            gap = row["file"] - row["rejected"] - row["repeated"] - row["ledger"]
            if gap:
                out[figure] = gap
        return out

    @property
    def failed(self) -> bool:
        """Exit 1: every row was rejected, or a difference nothing explains."""
        nothing = self.read > 0 and self.imported + self.duplicates == 0 and self.rejected > 0
        return nothing or bool(self.unexplained)

    @property
    def imported(self) -> int:
        return sum(k.imported for k in self.kinds.values())

    @property
    def duplicates(self) -> int:
        return sum(k.duplicates for k in self.kinds.values())

    @property
    def rejected(self) -> int:
        """Every line of the rejects file: unreadable rows plus records the ledger refused."""
        return self.unreadable + sum(k.rejected for k in self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.file,
            "program": self.program,
            "read": self.read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "unreadable": self.unreadable,
            "kinds": {name: vars(count) for name, count in self.kinds.items() if count.read},
            "totals": {"quantity": self.quantity, "buffer": self.buffer},
            "file_totals": {"quantity": self.file_quantity, "buffer": self.file_buffer},
            "non_reversible_issued": self.non_reversible,
            "verifications_implied": self.verifications,
            "reconciliation": self.tonnes,
            "unexplained": self.unexplained,
            "findings": self.findings,
            "rejects_file": self.rejects_file,
        }

