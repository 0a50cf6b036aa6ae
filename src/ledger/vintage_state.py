"""A vintage's state, and how each of its events changes it.

The one place an event is applied: :meth:`VintageState.when` (what ``event.apply`` and
``event.mutate`` call), so the repository, the replay fold and the importer rebuild a vintage
the same way. Everything a vintage knows or computes builds on this state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import BaseAggregate

from ledger import clock
from ledger import events as ev
from ledger.lapses import cure_date
from ledger.profiles import Rules
from ledger.reversals import Reversal

_ISSUED_FIELDS = (
    "program", "pool", "project", "vintage_year", "vintage_start", "vintage_end",
    "serial_first", "serial_last", "quantity", "buffer", "crediting_start", "crediting_end",
    "risk_class", "source_key", "corresponding_adjustment", "authorization", "project_type",
    "reversible", "rules",
)


@dataclass(frozen=True)
class Dated:
    """A dated quantity (a retirement, a cancellation, a hold)."""

    on: date
    quantity: int


@dataclass(frozen=True)
class Transfer:
    """A liability transfer: to whom, from when, and for a fund after the period its term."""

    on: date
    to: str
    kind: str
    term_years: int | None = None
    monitoring: bool = False
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class Policy:
    """An insurance policy over the vintage's unavoidable reversals."""

    on: date
    until: date
    insurer: str
    limit: int

    def covers(self, t: date) -> bool:
        return self.on <= t <= self.until


class VintageState(BaseAggregate[UUID]):
    """The facts recorded on one vintage, as plain state (see :class:`ledger.vintage.Vintage`)."""

    program: str
    pool: str
    project: str
    vintage_year: int | None
    vintage_start: date | None
    vintage_end: date | None
    serial_first: str | None
    serial_last: str | None
    quantity: int
    buffer: int
    crediting_start: date | None
    crediting_end: date | None
    risk_class: str | None
    source_key: str | None
    corresponding_adjustment: str | None
    authorization: str | None
    project_type: str | None
    reversible: bool
    rules: Rules

    def __init__(self) -> None:
        """State is set by :meth:`when` from the ``Issued`` event."""

    # ------------------------------------------------------------------ events

    def when(self, event: ev.VintageEvent) -> None:
        """Apply an event to state (dispatch on its class name): every fold of a vintage's
        events ends here, through ``event.apply`` / ``event.mutate``."""
        self._memo: dict[str, Any] = {}
        getattr(self, f"_on_{type(event).__name__}")(event)

    def _on_Issued(self, e: ev.Issued) -> None:
        d = self.__dict__
        for name in _ISSUED_FIELDS:
            d[name] = getattr(e, name)
        self.issued_on = e.on
        rules = e.rules
        # the clock never moves after issuance: compute it once
        self._clock_start = clock.clock_start(rules.clock, e.on, e.crediting_start)
        self._period_end = clock.period_end(
            self._clock_start, rules.period_years, rules.whichever_later, e.crediting_end
        )
        self.verifications: list[date] = []
        self.risk: ev.RiskAssessed | None = None
        self.reversals: dict[str, Reversal] = {}
        self.retirements: list[Dated] = []
        self.cancellations: list[Dated] = []
        self.invalidations: list[Dated] = []
        self.holds: list[Dated] = []
        self.pool_cancellations: list[Dated] = []
        self.transfer: Transfer | None = None
        self.policies: list[Policy] = []
        self.period_ended_on: date | None = None
        self.labels: list[tuple[str, str]] = []

    def _on_Verified(self, e: ev.Verified) -> None:
        self.verifications.append(e.on)
        self._derive_cures()

    def _on_RiskAssessed(self, e: ev.RiskAssessed) -> None:
        self.risk = e

    def _on_ReversalRecorded(self, e: ev.ReversalRecorded) -> None:
        self.reversals[e.reversal_id] = Reversal(
            e.reversal_id, e.on, e.quantity, e.cause, e.classification, e.obligor
        )

    def _on_MonitoringLapsed(self, e: ev.MonitoringLapsed) -> None:
        self.reversals[e.reversal_id] = Reversal(
            e.reversal_id, e.on, e.quantity, "cessation", "avoidable", "proponent", lapse=True
        )
        self._derive_cures()

    def _on_LapseCured(self, e: ev.LapseCured) -> None:
        """Older streams recorded cures; they are derived from the verifications now."""

    def _on_LapseWithdrawn(self, e: ev.LapseWithdrawn) -> None:
        self.reversals[e.reversal_id].withdrawn = True

    def _on_LapseRevised(self, e: ev.LapseRevised) -> None:
        self.reversals[e.reversal_id].quantity = e.quantity

    def _on_DefaultWithdrawn(self, e: ev.DefaultWithdrawn) -> None:
        self.reversals[e.reversal_id].defaulted_on = None

    def _on_Compensated(self, e: ev.Compensated) -> None:
        self.reversals[e.reversal_id].compensations.append((e.on, e.route, e.quantity))

    def _on_ProponentDefaulted(self, e: ev.ProponentDefaulted) -> None:
        self.reversals[e.reversal_id].defaulted_on = e.on

    def _on_Retired(self, e: ev.Retired) -> None:
        self.retirements.append(Dated(e.on, e.quantity))

    def _on_Cancelled(self, e: ev.Cancelled) -> None:
        self.cancellations.append(Dated(e.on, e.quantity))

    def _on_Invalidated(self, e: ev.Invalidated) -> None:
        self.invalidations.append(Dated(e.on, e.quantity))

    def _on_BufferHeld(self, e: ev.BufferHeld) -> None:
        self.holds.append(Dated(e.on, e.quantity))

    def _on_BufferCancelled(self, e: ev.BufferCancelled) -> None:
        self.pool_cancellations.append(Dated(e.on, e.quantity))

    def _on_BufferReleased(self, e: ev.BufferReleased) -> None:
        self.holds.append(Dated(e.on, -e.quantity))

    def _on_LiabilityTransferred(self, e: ev.LiabilityTransferred) -> None:
        self.transfer = Transfer(e.on, e.to, e.kind, e.term_years, e.monitoring, e.timestamp)

    def _on_Insured(self, e: ev.Insured) -> None:
        self.policies.append(Policy(e.on, e.until, e.insurer, e.limit))

    def _on_PeriodEnded(self, e: ev.PeriodEnded) -> None:
        self.period_ended_on = e.on

    def _on_SandboxLabelled(self, e: ev.SandboxLabelled) -> None:
        self.labels.append((e.label, e.innovation))

    def _on_AuditNoted(self, e: ev.AuditNoted) -> None:
        pass

    def _derive_cures(self) -> None:
        """A curable lapse ends on the first verification dated on or after it."""
        curable = self.rules.lapse_curable
        for r in self.reversals.values():
            if r.lapse:
                r.cured_on = cure_date(r.on, self.verifications) if curable else None

