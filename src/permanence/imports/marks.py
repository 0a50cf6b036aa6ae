"""The marks the importer leaves on the events it records, so that an import is idempotent.

Each record becomes a command whose effect can be recognised in the ledger afterwards by its
mark (a reversal's note, a compensation's reference, a cancellation's reason, ...);
:class:`Marks` tallies them from a vintage's events, beside the vintage in a batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from ledger.batches import Loaded
from ledger.events import (
    BufferCancelled,
    BufferHeld,
    Cancelled,
    Compensated,
    Invalidated,
    Retired,
    ReversalRecorded,
    VintageEvent,
)

from .records import CreditRecord


def reversal_note(program: str, key: str) -> str:
    return f"{program} reversal {key}"


def buffer_reference(program: str, issuance: str, reversal: str, on: date | None) -> str:
    text = f"{program} buffer {issuance} for {reversal}"
    return text if on is None else f"{text} on {on.isoformat()}"


def invalidation_reason(program: str, key: str) -> str:
    return f"{program} {key}: invalidated or canceled"


@dataclass
class Marks:
    """What earlier commands left on one vintage, keyed the way the importer keys them."""

    reversals: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    compensations: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalidations: Counter[str] = field(default_factory=Counter)
    retirements: Counter[tuple[date, str | None]] = field(default_factory=Counter)
    holds: Counter[str] = field(default_factory=Counter)
    pool_cancellations: Counter[str] = field(default_factory=Counter)
    cancellations: Counter[str] = field(default_factory=Counter)

    def see(self, event: VintageEvent) -> None:
        if isinstance(event, ReversalRecorded) and event.note:
            self.reversals.setdefault(event.note, []).append((event.reversal_id, event.quantity))
        elif isinstance(event, Compensated) and event.reference:
            self.compensations[(event.route, event.reference)] += event.quantity
        elif isinstance(event, Invalidated) and event.reason:
            self.invalidations[event.reason] += event.quantity
        elif isinstance(event, Retired):
            self.retirements[(event.on, event.beneficiary)] += event.quantity
        elif isinstance(event, BufferCancelled):
            self.pool_cancellations[event.reason] += event.quantity
        elif isinstance(event, BufferHeld) and event.reason:
            self.holds[event.reason] += event.quantity
        elif isinstance(event, Cancelled) and event.reason:
            self.cancellations[event.reason] += event.quantity


#: A vintage loaded for a batch with its marks, kept in step with what the commands trigger.
Tracked = Loaded[Marks]


def credit_mark(record: CreditRecord) -> str:
    """A cancellation's reason as recorded: the program, the date and the stated reason."""
    return f"{record.program} cancellation {record.on.isoformat()}: {record.reason or 'unstated'}"

