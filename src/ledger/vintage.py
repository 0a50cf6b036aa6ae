"""The ``Vintage`` aggregate: one issuance batch, from issuance to the end of its period.

Commands (``verify``, ``record_reversal``, ...) check invariants in small ``_check_*``
helpers before any event is raised; ``when`` applies events to state. Derived values
(clock start, period end, verification due, exposure and liabilities as of a date) are
computed from that state alone, so the aggregate, the projections and an offline replay
of an export all agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import BaseAggregate
from eventsourcing.utils import get_topic

from ledger import clock
from ledger import events as ev
from ledger.calendar import add_days
from ledger.classification import Classification, classify
from ledger.errors import InvalidCommand, NothingToDo, UnknownReversal
from ledger.profiles import Rules

ONE_DAY = timedelta(days=1)
#: No issuance is a trillion tonnes; the bound keeps every figure within 64-bit columns.
MAX_TONNES = 10**12
#: Business dates outside these years are typing errors (and would overflow period ends).
FIRST_YEAR, LAST_YEAR = 1900, 2200
_ISSUED_FIELDS = (
    "program", "pool", "project", "vintage_year", "vintage_start", "vintage_end",
    "serial_first", "serial_last", "quantity", "buffer", "crediting_start", "crediting_end",
    "risk_class", "source_key", "corresponding_adjustment", "authorization", "project_type",
    "reversible", "rules",
)


@dataclass
class Reversal:
    """A reversal's state: what was owed, by whom, and what has settled it."""

    reversal_id: str
    on: date
    quantity: int
    cause: str
    classification: Classification
    obligor: str
    lapse: bool = False
    compensations: list[tuple[date, str, int]] = field(default_factory=list)
    cured_on: date | None = None
    defaulted_on: date | None = None

    @property
    def compensated(self) -> int:
        return sum(q for _, _, q in self.compensations)

    @property
    def outstanding(self) -> int:
        """What is still owed, on everything recorded."""
        if self.cured_on is not None:
            return 0
        return self.quantity - self.compensated

    def outstanding_at(self, t: date) -> int:
        """What is owed at business date ``t``."""
        if t < self.on or (self.cured_on is not None and t >= self.cured_on):
            return 0
        return self.quantity - sum(q for d, _, q in self.compensations if d <= t)


@dataclass(frozen=True)
class Dated:
    """A dated quantity (a retirement, a cancellation, a hold)."""

    on: date
    quantity: int


class Vintage(BaseAggregate[UUID]):
    """One credit vintage (issuance batch) under a program profile's rules."""

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

    # ------------------------------------------------------------------ commands

    @classmethod
    def issue(
        cls,
        *,
        vintage_id: UUID,
        program: str,
        pool: str,
        project: str,
        quantity: int,
        buffer: int,
        on: date,
        rules: Rules,
        vintage_year: int | None = None,
        vintage_start: date | None = None,
        vintage_end: date | None = None,
        serial_first: str | None = None,
        serial_last: str | None = None,
        crediting_start: date | None = None,
        crediting_end: date | None = None,
        risk_class: str | None = None,
        source_key: str | None = None,
        corresponding_adjustment: str | None = None,
        authorization: str | None = None,
        project_type: str | None = None,
        reversible: bool = True,
    ) -> Vintage:
        """Issue a vintage; its stream and its permanence clock begin here."""
        _check_non_empty("project", project)
        _check_whole(quantity, "quantity", allow_zero=False)
        _check_whole(buffer, "buffer", allow_zero=True)
        _check_vintage_period(vintage_start, vintage_end)
        if crediting_start and crediting_end and crediting_end < crediting_start:
            raise InvalidCommand("crediting_end: before crediting_start")
        _check_dates(on=on, vintage_start=vintage_start, vintage_end=vintage_end,
                     crediting_start=crediting_start, crediting_end=crediting_end)
        event = ev.Issued(
            originator_id=vintage_id,
            originator_version=cls.INITIAL_VERSION,
            originator_topic=VINTAGE_TOPIC,
            timestamp=ev.Issued.create_timestamp(),
            on=on,
            program=program,
            pool=pool,
            project=project,
            vintage_year=vintage_year,
            vintage_start=vintage_start,
            vintage_end=vintage_end,
            serial_first=serial_first,
            serial_last=serial_last,
            quantity=quantity,
            buffer=buffer,
            crediting_start=crediting_start,
            crediting_end=crediting_end,
            risk_class=risk_class,
            source_key=source_key,
            corresponding_adjustment=corresponding_adjustment,
            authorization=authorization,
            project_type=project_type,
            reversible=reversible,
            rules=rules,
        )
        vintage: Vintage = event.mutate(None)
        vintage.pending_events.append(event)
        return vintage

    def verify(
        self,
        on: date,
        period_start: date | None = None,
        period_end: date | None = None,
        verifier: str | None = None,
    ) -> None:
        """Record a verification; it may cure a lapse where the profile allows it."""
        self._check_dated(ev.Verified, on)
        if period_start and period_end and period_end < period_start:
            raise InvalidCommand("period_end: the monitoring period ends before it starts")
        if period_end and period_end > on:
            raise InvalidCommand("period_end: a monitoring period cannot end after its verification")
        lapse = self.open_lapse
        self.trigger_event(
            ev.Verified, on=on, period_start=period_start, period_end=period_end, verifier=verifier
        )
        if lapse is not None and self.rules.lapse_curable and on >= lapse.on:
            self.trigger_event(ev.LapseCured, on=on, reversal_id=lapse.reversal_id)
            if self.on_hold > 0:
                self.trigger_event(ev.BufferReleased, on=on, quantity=self.on_hold)

    def assess_risk(
        self,
        on: date,
        tool: str,
        tool_version: str,
        buffer_rate: float,
        annual_probability: float,
        category_probabilities: dict[str, float],
        passed: bool = True,
    ) -> None:
        """Record a project-level risk assessment on this vintage."""
        self._check_dated(ev.RiskAssessed, on)
        if not 0 <= buffer_rate <= 1 or not 0 <= annual_probability <= 1:
            raise InvalidCommand("buffer_rate and annual_probability must lie between 0 and 1")
        self.trigger_event(
            ev.RiskAssessed,
            on=on,
            tool=tool,
            tool_version=tool_version,
            buffer_rate=buffer_rate,
            annual_probability=annual_probability,
            category_probabilities=category_probabilities,
            passed=passed,
        )

    def record_reversal(
        self,
        on: date,
        quantity: int,
        cause: str,
        negligence: bool = False,
        wilful: bool = False,
        within_control: bool = False,
        note: str | None = None,
    ) -> tuple[str, Classification]:
        """Record a reversal, classify it, and name who owes its compensation."""
        self._check_dated(ev.ReversalRecorded, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        self._check_reversible(quantity)
        classification = classify(
            cause,
            negligence=negligence,
            wilful=wilful,
            within_control=within_control,
            overrides=self.rules.classification_overrides,
        )
        reversal_id = f"R{len(self.reversals) + 1}"
        self.trigger_event(
            ev.ReversalRecorded,
            on=on,
            reversal_id=reversal_id,
            quantity=quantity,
            cause=cause,
            negligence=negligence,
            wilful=wilful,
            within_control=within_control,
            classification=classification,
            obligor="pool" if classification == "unavoidable" else "proponent",
            note=note,
        )
        return reversal_id, classification

    def record_lapse(self, as_of: date) -> str:
        """Record the monitoring lapse that has arisen by ``as_of`` (once; dated when it arose)."""
        arises = self.lapse_arises_on
        if arises is None or as_of < arises or self.lapse_recorded or self.period_closed:
            raise NothingToDo(f"vintage {self.id}: no lapse has arisen by {as_of}")
        basis = self.rules.liability_basis
        owed = {"none": 0, "buffer_contribution": self.buffer}.get(basis, self.quantity + self.buffer)
        # never more than what is left to reverse: earlier reversals already count
        quantity = min(owed, self.quantity + self.buffer - self._reversed())
        reversal_id = f"L{len(self.reversals) + 1}"
        self.trigger_event(
            ev.MonitoringLapsed,
            on=arises,
            reversal_id=reversal_id,
            quantity=quantity,
            basis=self.rules.liability_basis,
            verification_due=self.verification_due,
        )
        held = self.buffer - self.on_hold
        if self.rules.lapse_holds_buffer and held > 0:
            self.trigger_event(ev.BufferHeld, on=arises, quantity=held, reason="monitoring lapsed")
        return reversal_id

    def compensate(
        self,
        reversal_id: str,
        route: ev.CompensationRoute,
        quantity: int,
        on: date,
        reference: str | None = None,
    ) -> None:
        """Record compensation of a reversal; never more than what is still due."""
        reversal = self._check_reversal(reversal_id)
        self._check_dated(ev.Compensated, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        if on < reversal.on:
            raise InvalidCommand(
                f"on: compensation dated {on} precedes reversal {reversal_id} of {reversal.on}"
            )
        if quantity > reversal.outstanding:
            raise InvalidCommand(
                f"quantity: compensation of {quantity} exceeds the {reversal.outstanding} "
                f"still due on reversal {reversal_id}"
            )
        self.trigger_event(
            ev.Compensated,
            on=on,
            reversal_id=reversal_id,
            route=route,
            quantity=quantity,
            reference=reference,
        )

    def record_default(self, reversal_id: str, as_of: date) -> None:
        """Move an avoidable reversal left uncompensated past the deadline to the pool."""
        reversal = self._check_reversal(reversal_id)
        deadline = self.surrender_deadline(reversal)
        if deadline is None or as_of <= deadline or reversal.defaulted_on is not None:
            raise NothingToDo(f"reversal {reversal_id}: no default by {as_of}")
        owed = reversal.outstanding_at(deadline)
        if owed <= 0:
            raise NothingToDo(f"reversal {reversal_id}: settled by its deadline")
        self.trigger_event(
            ev.ProponentDefaulted, on=deadline + ONE_DAY, reversal_id=reversal_id, quantity=owed
        )

    def retire(self, quantity: int, on: date, beneficiary: str | None = None) -> None:
        """Retire credits; retirement does not reduce exposure."""
        self._check_dated(ev.Retired, on)
        self._check_outstanding(quantity, "retire")
        self.trigger_event(ev.Retired, on=on, quantity=quantity, beneficiary=beneficiary)

    def cancel(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.Cancelled, on)
        self._check_outstanding(quantity, "cancel")
        self.trigger_event(ev.Cancelled, on=on, quantity=quantity, reason=reason)

    def invalidate(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.Invalidated, on)
        self._check_outstanding(quantity, "invalidate")
        self.trigger_event(ev.Invalidated, on=on, quantity=quantity, reason=reason)

    def hold_buffer(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.BufferHeld, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.buffer - self.on_hold:
            raise InvalidCommand(
                f"quantity: cannot hold {quantity}; only {self.buffer - self.on_hold} "
                "buffer credits are not on hold"
            )
        self.trigger_event(ev.BufferHeld, on=on, quantity=quantity, reason=reason)

    def release_buffer(self, quantity: int, on: date) -> None:
        self._check_dated(ev.BufferReleased, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.on_hold:
            raise InvalidCommand(f"quantity: only {self.on_hold} buffer credits are on hold")
        self.trigger_event(ev.BufferReleased, on=on, quantity=quantity)

    def transfer_liability(self, to: str, kind: ev.TransfereeKind, on: date) -> None:
        """Move liability to a permanence fund, an insurer or a jurisdiction."""
        self._check_dated(ev.LiabilityTransferred, on)
        _check_non_empty("to", to)
        if self.transfer is not None:
            raise InvalidCommand(f"vintage {self.id}: liability already transferred to {self.transfer[1]}")
        self.trigger_event(ev.LiabilityTransferred, on=on, to=to, kind=kind)

    def end_period(self, on: date) -> None:
        """Record the end of the monitoring and compensation period."""
        if self.period_ended_on is not None:
            raise NothingToDo(f"vintage {self.id}: period already ended on {self.period_ended_on}")
        if on < self.period_end:
            raise NothingToDo(f"vintage {self.id}: the period ends on {self.period_end}, not {on}")
        self.trigger_event(ev.PeriodEnded, on=self.period_end)

    def label_sandbox(self, label: str, innovation: str, on: date) -> None:
        """Label credits from an innovation pilot, disclosing the innovation."""
        self._check_dated(ev.SandboxLabelled, on)
        _check_non_empty("label", label)
        _check_non_empty("innovation", innovation)
        self.trigger_event(ev.SandboxLabelled, on=on, label=label, innovation=innovation)

    def note(self, text: str, on: date) -> None:
        self._check_dated(ev.AuditNoted, on)
        _check_non_empty("text", text)
        self.trigger_event(ev.AuditNoted, on=on, text=text)

    # ------------------------------------------------------------------ checks

    def _check_dated(self, event_class: type[ev.VintageEvent], on: date) -> None:
        _check_dates(on=on)
        if on < self.issued_on:
            raise InvalidCommand(f"on: {on} is before the issuance date {self.issued_on}")
        if event_class in ev.AUDIT_FACTS:
            return
        if self.period_closed or on >= self.period_end:
            raise InvalidCommand(
                f"on: the monitoring period of vintage {self.id} ends {self.period_end}; "
                "only audit facts may be recorded after it"
            )

    def _check_reversible(self, quantity: int) -> None:
        issued = self.quantity + self.buffer
        reversed_so_far = self._reversed()
        if reversed_so_far + quantity > issued:
            raise InvalidCommand(
                f"quantity: a reversal of {quantity} exceeds what was issued "
                f"({issued}, of which {reversed_so_far} already reversed)"
            )

    def _reversed(self) -> int:
        return sum(r.quantity for r in self.reversals.values() if r.cured_on is None)

    def _check_outstanding(self, quantity: int, verb: str) -> None:
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.outstanding_credits:
            raise InvalidCommand(
                f"quantity: cannot {verb} {quantity}; only {self.outstanding_credits} "
                "credits are outstanding"
            )

    def _check_reversal(self, reversal_id: str) -> Reversal:
        try:
            return self.reversals[reversal_id]
        except KeyError:
            raise UnknownReversal(
                f"reversal: vintage {self.id} has no reversal {reversal_id!r}"
            ) from None

    # ------------------------------------------------------------------ events

    def when(self, event: ev.VintageEvent) -> None:
        """Apply an event to state (dispatch on its class name)."""
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
        self.transfer: tuple[date, str, str] | None = None
        self.period_ended_on: date | None = None
        self.labels: list[tuple[str, str]] = []

    def _on_Verified(self, e: ev.Verified) -> None:
        self.verifications.append(e.on)

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

    def _on_LapseCured(self, e: ev.LapseCured) -> None:
        self.reversals[e.reversal_id].cured_on = e.on

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

    def _on_BufferReleased(self, e: ev.BufferReleased) -> None:
        self.holds.append(Dated(e.on, -e.quantity))

    def _on_LiabilityTransferred(self, e: ev.LiabilityTransferred) -> None:
        self.transfer = (e.on, e.to, e.kind)

    def _on_PeriodEnded(self, e: ev.PeriodEnded) -> None:
        self.period_ended_on = e.on

    def _on_SandboxLabelled(self, e: ev.SandboxLabelled) -> None:
        self.labels.append((e.label, e.innovation))

    def _on_AuditNoted(self, e: ev.AuditNoted) -> None:
        pass

    # ------------------------------------------------------------------ derived

    @property
    def clock_start(self) -> date:
        """S: the issuance date, or the first crediting-period start under that clock."""
        return self._clock_start

    @property
    def period_end(self) -> date:
        """E = S + period_years; under "whichever is later", at least the crediting end."""
        return self._period_end

    @property
    def period_closed(self) -> bool:
        return self.period_ended_on is not None

    @property
    def last_verified(self) -> date | None:
        return max(self.verifications) if self.verifications else None

    @property
    def verification_due(self) -> date | None:
        """D = (last verification, or issuance) + the profile's interval."""
        return clock.verification_due(
            self.last_verified or self.issued_on, self.rules.verification_interval_years
        )

    @property
    def lapse_arises_on(self) -> date | None:
        """The day a lapse's obligation arises (D + grace + 1), if D falls within the period."""
        return clock.lapse_arises_on(self.verification_due, self.period_end, self.rules.grace_days)

    @property
    def lapse_recorded(self) -> bool:
        return any(r.lapse and r.cured_on is None for r in self.reversals.values())

    @property
    def open_lapse(self) -> Reversal | None:
        return next((r for r in self.reversals.values() if r.lapse and r.cured_on is None), None)

    @property
    def outstanding_credits(self) -> int:
        """Credits neither retired, cancelled nor invalidated."""
        gone = self.retirements + self.cancellations + self.invalidations
        return self.quantity - sum(d.quantity for d in gone)

    @property
    def on_hold(self) -> int:
        return sum(d.quantity for d in self.holds)

    def surrender_deadline(self, reversal: Reversal) -> date | None:
        """Last day the proponent may compensate an avoidable reversal before defaulting."""
        days = self.rules.surrender_deadline_days
        if reversal.classification != "avoidable" or days is None:
            return None
        return add_days(reversal.on, days)

    def defaults_on(self, reversal: Reversal) -> date | None:
        """The day an avoidable reversal still owed at its deadline passes to the pool, if it
        has not already (None: no deadline, defaulted, or settled in time)."""
        deadline = self.surrender_deadline(reversal)
        if deadline is None or reversal.defaulted_on is not None:
            return None
        return deadline + ONE_DAY if reversal.outstanding_at(deadline) > 0 else None

    def is_lapsing(self, as_of: date) -> bool:
        """True when a lapse has arisen by ``as_of`` and is not yet recorded."""
        arises = self.lapse_arises_on
        return (
            arises is not None and as_of >= arises and not self.lapse_recorded
            and not self.period_closed
        )

    def exposure_at(self, t: date) -> int:
        """Q minus credits cancelled or invalidated, while S <= t < E, issued, untransferred."""
        if t < self.issued_on or t < self.clock_start or t >= self.period_end:
            return 0
        if self.transfer is not None and t >= self.transfer[0]:
            return 0
        gone = sum(d.quantity for d in self.cancellations + self.invalidations if d.on <= t)
        return self.quantity - gone

    def transferred_at(self, t: date) -> int:
        """Exposure borne by the transferee after a liability transfer."""
        if self.transfer is None or t < self.transfer[0] or t >= self.period_end:
            return 0
        gone = sum(d.quantity for d in self.cancellations + self.invalidations if d.on <= t)
        return self.quantity - gone

    def due_at(self, t: date) -> dict[str, int]:
        """Reversals minus compensation recorded on or before ``t``, by obligor."""
        due = {"proponent": 0, "pool": 0}
        for r in self.reversals.values():
            owed = r.outstanding_at(t)
            if owed:
                due[self.obligor_at(r, t)] += owed
        return due

    def obligor_at(self, reversal: Reversal, t: date) -> str:
        """The proponent owes an avoidable reversal until its deadline passes, then the pool."""
        deadline = self.surrender_deadline(reversal)
        if reversal.obligor == "proponent" and deadline is not None and t > deadline:
            return "pool"
        return reversal.obligor

    def buffer_cancelled_at(self, t: date) -> int:
        """Buffer credits cancelled to compensate this vintage's reversals by ``t``."""
        return sum(
            q for r in self.reversals.values() for d, route, q in r.compensations
            if route == "buffer" and d <= t
        )

    def on_hold_at(self, t: date) -> int:
        return sum(d.quantity for d in self.holds if d.on <= t)

    def bearer_at(self, t: date) -> str:
        """Who bears future reversals: the pool, or the transferee after a transfer."""
        if self.transfer is not None and t >= self.transfer[0]:
            return self.transfer[1]
        return self.pool

    def status_at(self, t: date) -> str:
        """not-issued, monitored, overdue, lapsed, transferred or ended, as of ``t``."""
        if t < self.issued_on:
            return "not-issued"
        if t >= self.period_end or (self.period_ended_on and t >= self.period_ended_on):
            return "ended"
        if self.transfer is not None and t >= self.transfer[0]:
            return "transferred"
        lapse = self.open_lapse
        if lapse is not None and t >= lapse.on:
            return "lapsed"
        arises = self.lapse_arises_on
        if arises is not None and t >= arises:
            return "overdue"
        return "monitored"

    def breakpoints(self) -> list[date]:
        """Every date on which an as-of figure of this vintage can change."""
        days = {self.issued_on, self.clock_start, self.period_end}
        for d in self.cancellations + self.invalidations + self.holds:
            days.add(d.on)
        if self.transfer is not None:
            days.add(self.transfer[0])
        for r in self.reversals.values():
            days.add(r.on)
            days.update(d for d, _, _ in r.compensations)
            if r.cured_on is not None:
                days.add(r.cured_on)
            deadline = self.surrender_deadline(r)
            if deadline is not None:
                days.add(deadline + ONE_DAY)
        return sorted(days)

    def summary(self, as_of: date) -> dict[str, Any]:
        """Plain values describing the vintage as of a business date."""
        return {
            "vintage_id": str(self.id),
            "program": self.program,
            "pool": self.pool,
            "project": self.project,
            "vintage_year": self.vintage_year,
            "serials": _serials(self.serial_first, self.serial_last),
            "quantity": self.quantity,
            "buffer": self.buffer,
            "issued_on": self.issued_on.isoformat(),
            "clock_start": self.clock_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "last_verified": _iso(self.last_verified),
            "verification_due": _iso(self.verification_due),
            "lapse_arises_on": _iso(self.lapse_arises_on),
            "as_of": as_of.isoformat(),
            "status": self.status_at(as_of),
            "exposure": self.exposure_at(as_of),
            "bearer": self.bearer_at(as_of),
            "due": self.due_at(as_of),
            "outstanding_credits": self.outstanding_credits,
            "retired": sum(d.quantity for d in self.retirements),
            "on_hold": self.on_hold_at(as_of),
            "reversals": [
                {
                    "reversal_id": r.reversal_id,
                    "on": r.on.isoformat(),
                    "quantity": r.quantity,
                    "cause": r.cause,
                    "classification": r.classification,
                    "obligor": self.obligor_at(r, as_of),
                    "compensated": r.compensated,
                    "outstanding": r.outstanding,
                    "cured_on": _iso(r.cured_on),
                }
                for r in self.reversals.values()
            ],
            "labels": [{"label": a, "innovation": b} for a, b in self.labels],
            "risk": None if self.risk is None else {
                "on": self.risk.on.isoformat(),
                "tool": self.risk.tool,
                "tool_version": self.risk.tool_version,
                "buffer_rate": self.risk.buffer_rate,
                "annual_probability": self.risk.annual_probability,
            },
            "rules": {"profile": self.rules.profile, "version": self.rules.profile_version},
            "version": self.version,
        }


def _check_whole(value: Any, field: str, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{field}: {value!r} is not a whole number of tonnes")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidCommand(f"{field}: must be a positive whole number of tonnes, got {value}")
    if value > MAX_TONNES:
        raise InvalidCommand(f"{field}: {value} exceeds the largest quantity, {MAX_TONNES:,} t")


def _check_dates(**values: date | None) -> None:
    for name, value in values.items():
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise InvalidCommand(f"{name}: {value!r} is not a date")
        if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise InvalidCommand(f"{name}: {value} is outside the years {FIRST_YEAR}-{LAST_YEAR}")


def _check_non_empty(field: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidCommand(f"{field}: must not be empty")


def _check_vintage_period(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise InvalidCommand("vintage_end: before vintage_start")


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _serials(first: str | None, last: str | None) -> str | None:
    return f"{first}-{last}" if first and last else first


VINTAGE_TOPIC = get_topic(Vintage)
