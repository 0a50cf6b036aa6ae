"""The ``Vintage`` aggregate: one issuance batch, from issuance to the end of its period.

Commands (``verify``, ``record_reversal``, ...) check invariants in small ``_check_*``
helpers before any event is raised; ``when`` applies events to state. Derived values
(clock start, period end, verification due, lapses, exposure and liabilities as of a
date) are computed from that state alone, as functions of the facts' business dates, so
the aggregate, the projections and an offline replay of an export all agree, whatever
order the facts were recorded in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import BaseAggregate
from eventsourcing.utils import get_topic

from ledger import clock
from ledger import events as ev
from ledger.calendar import add_days, add_years
from ledger.classification import Classification, classify
from ledger.errors import InvalidCommand, NothingToDo, UnknownReversal
from ledger.lapses import LapseDue, cure_date, due_as_of, expected_lapses, owed_in_full
from ledger.limits import (
    CODE_LENGTH,
    FIRST_YEAR,
    KEY_LENGTH,
    LAST_YEAR,
    MAX_TONNES,
    NAME_LENGTH,
    TEXT_LENGTH,
    check_text,
    check_year,
)
from ledger.profiles import Rules
from ledger.reversals import ROUTE_OBLIGOR, Reversal, settle

__all__ = ["FIRST_YEAR", "LAST_YEAR", "MAX_TONNES", "Dated", "Policy", "Reversal", "Transfer",
           "Vintage"]

ONE_DAY = timedelta(days=1)
#: The longest term a permanence fund may take a vintage on for.
MAX_TERM_YEARS = 500
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


class Vintage(BaseAggregate[UUID]):
    """One credit vintage (issuance batch) under a program profile's rules.

    Every figure is a function of the facts' business dates. Lapses, cures, lapse holds
    and defaults follow from the verification history and the deadlines, so facts
    recorded late or out of order give the figures they would have given in date order;
    :meth:`correct` withdraws or revises a recorded lapse or default they no longer
    support.
    """

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
        enforce_minimum_buffer: bool = True,
    ) -> Vintage:
        """Issue a vintage; its stream and its permanence clock begin here.

        ``enforce_minimum_buffer=False`` is for imports whose exports do not say what was
        withheld for the buffer (the registry applied its own rule then).
        """
        check_text("project", project, NAME_LENGTH, required=True)
        check_text("program", program, CODE_LENGTH, required=True)
        check_text("pool", pool, CODE_LENGTH, required=True)
        for name, value, length in (
            ("serial_first", serial_first, NAME_LENGTH), ("serial_last", serial_last, NAME_LENGTH),
            ("risk_class", risk_class, CODE_LENGTH), ("source_key", source_key, KEY_LENGTH),
            ("corresponding_adjustment", corresponding_adjustment, 100),
            ("authorization", authorization, NAME_LENGTH), ("project_type", project_type, NAME_LENGTH),
        ):
            check_text(name, value, length)
        check_year("vintage_year", vintage_year)
        _check_whole(quantity, "quantity", allow_zero=buffer != 0)
        _check_whole(buffer, "buffer", allow_zero=True)
        if quantity == 0 and buffer == 0:
            raise InvalidCommand("quantity: an issuance of no credits at all")
        _check_vintage_period(vintage_start, vintage_end)
        if crediting_start and crediting_end and crediting_end < crediting_start:
            raise InvalidCommand("crediting_end: before crediting_start")
        _check_dates(on=on, vintage_start=vintage_start, vintage_end=vintage_end,
                     crediting_start=crediting_start, crediting_end=crediting_end)
        if enforce_minimum_buffer and reversible:
            _check_minimum_buffer(rules, quantity, buffer)
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
        """Record a verification. What it changes (a lapse that never arose, a cure as of
        its date where the profile allows one) follows from its date: see :meth:`correct`."""
        self._check_dated(ev.Verified, on)
        check_text("verifier", verifier, NAME_LENGTH)
        _check_dates(period_start=period_start, period_end=period_end)
        if period_start and period_end and period_end < period_start:
            raise InvalidCommand("period_end: the monitoring period ends before it starts")
        if period_end and period_end > on:
            raise InvalidCommand("period_end: a monitoring period cannot end after its verification")
        self.trigger_event(
            ev.Verified, on=on, period_start=period_start, period_end=period_end, verifier=verifier
        )

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
        check_text("tool", tool, NAME_LENGTH, required=True)
        check_text("tool_version", tool_version, CODE_LENGTH, required=True)
        for category in category_probabilities:
            check_text("category", category, CODE_LENGTH, required=True)
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
        check_text("cause", cause, CODE_LENGTH, required=True)
        check_text("note", note, TEXT_LENGTH, lines=True)
        self._check_can_reverse()
        self._check_caps(reversal=(on, quantity))
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
            obligor=self.bearer_kind_at(on) if classification == "unavoidable" else "proponent",
            note=note,
        )
        return reversal_id, classification

    def record_lapses(self, as_of: date) -> list[str]:
        """Record each lapse the verification history says arose by ``as_of`` and is not
        recorded yet, dated the day it arose (never the day the sweep ran)."""
        recorded = {r.on for r in self.reversals.values() if r.lapse and r.active}
        due = [e for e in self.expected_lapses() if e.on <= as_of and e.on not in recorded]
        if not due:
            raise NothingToDo(f"vintage {self.id}: no lapse has arisen by {as_of}")
        ids = []
        for lapse in due:
            reversal_id = f"L{len(self.reversals) + 1}"
            self.trigger_event(
                ev.MonitoringLapsed,
                on=lapse.on,
                reversal_id=reversal_id,
                quantity=lapse.quantity,
                basis=self.rules.liability_basis,
                verification_due=lapse.verification_due,
            )
            ids.append(reversal_id)
        return ids

    def record_lapse(self, as_of: date) -> str:
        """The first lapse :meth:`record_lapses` records."""
        return self.record_lapses(as_of)[0]

    def correct(self) -> int:
        """Withdraw or revise what was recorded on facts that have since changed: a lapse a
        verification dated before it shows never arose, a lapse whose exposure changed, a
        default the reversal no longer supports. Returns how many corrections it made."""
        expected = {e.on: e for e in self.expected_lapses()}
        made = 0
        for r in list(self.reversals.values()):
            if not r.lapse or r.withdrawn:
                continue
            lapse = expected.get(r.on)
            if lapse is None:
                self.trigger_event(ev.LapseWithdrawn, on=r.on, reversal_id=r.reversal_id,
                                   reason=self._why_withdrawn(r, list(expected.values())))
                made += 1
            elif lapse.quantity != r.quantity:
                self.trigger_event(
                    ev.LapseRevised, on=r.on, reversal_id=r.reversal_id, quantity=lapse.quantity,
                    reason=f"{self.still_exposed_at(r.on):,} of {self.quantity:,} credits were "
                           f"still exposed on {r.on}: the lapse owes {lapse.quantity:,}, "
                           f"not {r.quantity:,}",
                )
                made += 1
        for r in list(self.reversals.values()):
            if r.defaulted_on is not None and self.default_day(r) != r.defaulted_on:
                why = "the reversal was withdrawn" if r.withdrawn else (
                    f"nothing was owed at the surrender deadline {self.surrender_deadline(r)}")
                self.trigger_event(ev.DefaultWithdrawn, on=r.defaulted_on,
                                   reversal_id=r.reversal_id, reason=why)
                made += 1
        return made

    def compensate(
        self,
        reversal_id: str,
        route: ev.CompensationRoute,
        quantity: int,
        on: date,
        reference: str | None = None,
    ) -> None:
        """Record compensation of a reversal; never more than what is still due, and only
        by a route whose obligor owes it then (the buffer pays an avoidable reversal only
        after the proponent's default)."""
        reversal = self._check_reversal(reversal_id)
        self._check_dated(ev.Compensated, on)
        check_text("reference", reference, TEXT_LENGTH, lines=True)
        _check_whole(quantity, "quantity", allow_zero=False)
        if on < reversal.on:
            raise InvalidCommand(
                f"on: compensation dated {on} precedes reversal {reversal_id} of {reversal.on}"
            )
        if quantity > reversal.outstanding:
            raise InvalidCommand(
                f"quantity: compensation of {quantity:,} exceeds the {reversal.outstanding:,} "
                f"still due on reversal {reversal_id}"
            )
        self._check_route(reversal, route, on)
        self.trigger_event(
            ev.Compensated,
            on=on,
            reversal_id=reversal_id,
            route=route,
            quantity=quantity,
            reference=reference,
        )

    def record_defaults(self, as_of: date) -> list[str]:
        """Record each avoidable reversal still owed past its surrender deadline by
        ``as_of`` (dated the day after the deadline); its remainder is the bearer's."""
        done = []
        for r in list(self.reversals.values()):
            day = self.default_day(r)
            if day is None or day > as_of or r.defaulted_on is not None:
                continue
            owed = r.outstanding_at(day - ONE_DAY)
            self.trigger_event(ev.ProponentDefaulted, on=day, reversal_id=r.reversal_id,
                               quantity=owed)
            done.append(r.reversal_id)
        if not done:
            raise NothingToDo(f"vintage {self.id}: no default by {as_of}")
        return done

    def record_default(self, reversal_id: str, as_of: date) -> None:
        """Record one reversal's default (see :meth:`record_defaults`)."""
        reversal = self._check_reversal(reversal_id)
        day = self.default_day(reversal)
        if day is None or day > as_of or reversal.defaulted_on is not None:
            raise NothingToDo(f"reversal {reversal_id}: no default by {as_of}")
        self.trigger_event(ev.ProponentDefaulted, on=day, reversal_id=reversal_id,
                           quantity=reversal.outstanding_at(day - ONE_DAY))

    def retire(self, quantity: int, on: date, beneficiary: str | None = None) -> None:
        """Retire credits; retirement does not reduce exposure."""
        self._check_dated(ev.Retired, on)
        check_text("beneficiary", beneficiary, NAME_LENGTH)
        self._check_outstanding(quantity, "retire")
        self.trigger_event(ev.Retired, on=on, quantity=quantity, beneficiary=beneficiary)

    def cancel(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.Cancelled, on)
        check_text("reason", reason, TEXT_LENGTH, lines=True)
        self._check_outstanding(quantity, "cancel")
        self._check_caps(gone=(on, quantity), verb="cancel")
        self.trigger_event(ev.Cancelled, on=on, quantity=quantity, reason=reason)

    def invalidate(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.Invalidated, on)
        check_text("reason", reason, TEXT_LENGTH, lines=True)
        self._check_outstanding(quantity, "invalidate")
        self._check_caps(gone=(on, quantity), verb="invalidate")
        self.trigger_event(ev.Invalidated, on=on, quantity=quantity, reason=reason)

    def hold_buffer(self, quantity: int, on: date, reason: str | None = None) -> None:
        self._check_dated(ev.BufferHeld, on)
        check_text("reason", reason, TEXT_LENGTH, lines=True)
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.buffer - self.on_hold:
            raise InvalidCommand(
                f"quantity: cannot hold {quantity}; only {self.buffer - self.on_hold} "
                "buffer credits are not on hold"
            )
        self.trigger_event(ev.BufferHeld, on=on, quantity=quantity, reason=reason)

    def cancel_buffer(self, quantity: int, on: date, reason: str) -> None:
        """Record the pool cancelling buffer credits of this vintage's contribution for a
        reversal outside the ledger (see :class:`~ledger.events.BufferCancelled`)."""
        self._check_dated(ev.BufferCancelled, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        check_text("reason", reason, TEXT_LENGTH, lines=True, required=True)
        left = self.buffer - sum(d.quantity for d in self.pool_cancellations)
        if quantity > left:
            raise InvalidCommand(
                f"quantity: cannot cancel {quantity:,} buffer credits; {left:,} of the "
                f"{self.buffer:,} contributed are left"
            )
        self.trigger_event(ev.BufferCancelled, on=on, quantity=quantity, reason=reason)

    def release_buffer(self, quantity: int, on: date) -> None:
        self._check_dated(ev.BufferReleased, on)
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.on_hold:
            raise InvalidCommand(f"quantity: only {self.on_hold} buffer credits are on hold")
        self.trigger_event(ev.BufferReleased, on=on, quantity=quantity)

    def transfer_liability(
        self,
        to: str,
        kind: ev.TransfereeKind,
        on: date,
        term_years: int | None = None,
        monitoring: bool = False,
    ) -> None:
        """Move liability to a permanence fund, an insurer or a jurisdiction: from ``on``
        to the period end, or, with ``term_years``, for that term after the period end
        (the CIWP's permanence fund, which may take the vintage on at or after it)."""
        _check_dates(on=on)
        check_text("to", to, NAME_LENGTH, required=True)
        if on < self.issued_on:
            raise InvalidCommand(f"on: {on} is before the issuance date {self.issued_on}")
        if self.transfer is not None:
            raise InvalidCommand(
                f"vintage {self.id}: liability already transferred to {self.transfer.to}"
            )
        self._check_can_reverse()
        if term_years is not None:
            if isinstance(term_years, bool) or not isinstance(term_years, int) or not (
                0 < term_years <= MAX_TERM_YEARS
            ):
                raise InvalidCommand(
                    f"term_years: must be a whole number of years from 1 to {MAX_TERM_YEARS}"
                )
            if monitoring:
                raise InvalidCommand(
                    "monitoring: a fund taking a vintage on after its period takes no "
                    "monitoring obligation"
                )
            if on >= add_years(self.period_end, term_years):
                raise InvalidCommand(f"on: the term would have ended before {on}")
        elif on >= self.period_end:
            raise InvalidCommand(
                f"on: the period of vintage {self.id} ended {self.period_end}; a permanence "
                "fund takes a vintage on after its period for a term (term_years)"
            )
        self.trigger_event(ev.LiabilityTransferred, on=on, to=to, kind=kind,
                           term_years=term_years, monitoring=monitoring)

    def insure(self, insurer: str, on: date, until: date, limit: int) -> None:
        """Record an insurance policy over unavoidable reversals from ``on`` to ``until``
        (inclusive; it may run past the period end), up to ``limit`` tonnes."""
        _check_dates(on=on, until=until)
        check_text("insurer", insurer, NAME_LENGTH, required=True)
        _check_whole(limit, "limit", allow_zero=False)
        if on < self.issued_on:
            raise InvalidCommand(f"on: {on} is before the issuance date {self.issued_on}")
        if until < on:
            raise InvalidCommand(f"until: the term ends ({until}) before it starts ({on})")
        self._check_can_reverse()
        self.trigger_event(ev.Insured, on=on, insurer=insurer, until=until, limit=limit)

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
        check_text("label", label, CODE_LENGTH, required=True)
        check_text("innovation", innovation, TEXT_LENGTH, lines=True, required=True)
        self.trigger_event(ev.SandboxLabelled, on=on, label=label, innovation=innovation)

    def note(self, text: str, on: date) -> None:
        self._check_dated(ev.AuditNoted, on)
        check_text("text", text, TEXT_LENGTH, lines=True, required=True)
        self.trigger_event(ev.AuditNoted, on=on, text=text)

    # ------------------------------------------------------------------ checks

    def _check_dated(self, event_class: type[ev.VintageEvent], on: date) -> None:
        _check_dates(on=on)
        if on < self.issued_on:
            raise InvalidCommand(f"on: {on} is before the issuance date {self.issued_on}")
        if event_class in ev.AUDIT_FACTS:
            return
        if self.carrying(on) or on < self.period_end:
            return
        raise InvalidCommand(
            f"on: the monitoring period of vintage {self.id} ends {self.period_end}; "
            "only audit facts may be recorded after it"
        )

    def _check_can_reverse(self) -> None:
        if not self.reversible:
            kind = f" ({self.project_type})" if self.project_type else ""
            raise InvalidCommand(
                f"vintage {self.id}: credits of this project type{kind} cannot reverse; "
                "they carry no permanence obligation"
            )

    def _check_caps(
        self,
        reversal: tuple[date, int] | None = None,
        gone: tuple[date, int] | None = None,
        verb: str = "",
    ) -> None:
        """Reversals dated by any day never exceed what was exposed that day: checked for
        the whole vintage, so facts valid together are accepted in any order."""
        reversals = [(r.on, r.quantity) for r in self.reversals.values()
                     if r.active and not r.lapse]
        if reversal is not None:
            reversals.append(reversal)
        gone_list = [(d.on, d.quantity) for d in self.cancellations + self.invalidations]
        if gone is not None:
            gone_list.append(gone)
        for day in sorted({d for d, _ in reversals}):
            carried = self._carried(day, gone_list)
            total = sum(q for d, q in reversals if d <= day)
            if total <= carried:
                continue
            if gone is not None:
                raise InvalidCommand(
                    f"quantity: cannot {verb} {gone[1]:,} on {gone[0]}: reversals by {day} "
                    f"({total:,}) would exceed the {carried:,} t left exposed"
                )
            assert reversal is not None
            on, quantity = reversal
            if day == on:
                earlier = total - quantity
                raise InvalidCommand(
                    f"quantity: a reversal of {quantity:,} on {on} exceeds the "
                    f"{max(0, carried - earlier):,} t still exposed then ({carried:,} exposed, "
                    f"{earlier:,} already reversed)"
                )
            raise InvalidCommand(
                f"quantity: a reversal of {quantity:,} on {on} would bring reversals by {day} "
                f"to {total:,}, above the {carried:,} t exposed then"
            )

    def _check_outstanding(self, quantity: int, verb: str) -> None:
        _check_whole(quantity, "quantity", allow_zero=False)
        if quantity > self.outstanding_credits:
            raise InvalidCommand(
                f"quantity: cannot {verb} {quantity}; only {self.outstanding_credits} "
                "credits are outstanding"
            )

    def _check_reversal(self, reversal_id: str) -> Reversal:
        found = self.reversals.get(reversal_id)
        if found is None:
            raise UnknownReversal(f"reversal: vintage {self.id} has no reversal {reversal_id!r}")
        if found.withdrawn:
            raise InvalidCommand(f"reversal: {reversal_id} was withdrawn (it never arose)")
        return found

    def _check_route(self, reversal: Reversal, route: str, on: date) -> None:
        """A route pays its own obligor: it must owe part of this reversal on ``on``."""
        obligor = ROUTE_OBLIGOR.get(route, "proponent")
        if obligor == "proponent":
            return  # a proponent may always settle
        owing = self._gross_shares(reversal, on)
        if obligor in owing:
            return
        if route == "buffer" and reversal.classification == "avoidable":
            deadline = self.surrender_deadline(reversal)
            when = (f"after its surrender deadline {deadline}" if deadline
                    else "after a default, and this profile sets no deadline")
            raise InvalidCommand(
                f"by: the buffer pays an avoidable reversal only after the proponent's "
                f"default ({reversal.reversal_id}: {when})"
            )
        owed = ", ".join(sorted(owing)) or "nobody"
        raise InvalidCommand(
            f"by: {route} pays what the {obligor} owes; reversal {reversal.reversal_id} is owed "
            f"by the {owed} on {on}"
        )

    # ------------------------------------------------------------------ events

    def when(self, event: ev.VintageEvent) -> None:
        """Apply an event to state (dispatch on its class name)."""
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

    # ------------------------------------------------------------------ derived: clock

    @property
    def clock_start(self) -> date:
        """S: the issuance date, or the first crediting-period start under that clock."""
        return self._clock_start

    @property
    def period_end(self) -> date:
        """E = S + period_years; under "whichever is later", at least the crediting end."""
        return self._period_end

    @property
    def exposure_start(self) -> date:
        return max(self.issued_on, self.clock_start)

    @property
    def period_closed(self) -> bool:
        return self.period_ended_on is not None

    @property
    def fund_term(self) -> tuple[date, date] | None:
        """[start, end) over which a permanence fund bears the vintage after its period."""
        t = self.transfer
        if t is None or t.term_years is None:
            return None
        return max(t.on, self.period_end), add_years(self.period_end, t.term_years)

    @property
    def bearing_end(self) -> date:
        """The day exposure ends for good: the period end, or a fund's term end."""
        term = self.fund_term
        return term[1] if term else self.period_end

    def carrying(self, t: date) -> bool:
        """Whether anyone bears the vintage's exposure at ``t``."""
        if not self.reversible or t < self.exposure_start:
            return False
        if t < self.period_end:
            return True
        term = self.fund_term
        return term is not None and term[0] <= t < term[1]

    @property
    def last_verified(self) -> date | None:
        return max(self.verifications) if self.verifications else None

    def last_verified_at(self, t: date) -> date | None:
        return max((v for v in self.verifications if v <= t), default=None)

    def verification_due_at(self, t: date) -> date | None:
        """D(t) = (the last verification dated on or before t, or I) + the interval."""
        return due_as_of(t, self.issued_on, self.verifications,
                         self.rules.verification_interval_years)

    @property
    def verification_due(self) -> date | None:
        """D on everything recorded."""
        return self.verification_due_at(date.max)

    def lapse_arises_at(self, t: date) -> date | None:
        """D(t) + grace + 1 day, if D(t) falls within the period."""
        return clock.lapse_arises_on(self.verification_due_at(t), self.period_end,
                                     self.rules.grace_days)

    @property
    def lapse_arises_on(self) -> date | None:
        return self.lapse_arises_at(date.max)

    # ------------------------------------------------------------------ derived: lapses

    def expected_lapses(self) -> list[LapseDue]:
        """The lapses the facts imply (see :mod:`ledger.lapses`)."""
        found = self._memo.get("lapses")
        if found is None:
            found = expected_lapses(
                issued_on=self.issued_on,
                period_end=self.period_end,
                verifications=self.verifications,
                interval_years=self.rules.verification_interval_years,
                grace_days=self.rules.grace_days,
                curable=self.rules.lapse_curable,
                owed=owed_in_full(self.rules.liability_basis, self.quantity, self.buffer)
                if self.reversible else 0,
                quantity=self.quantity,
                exposed_on=self.still_exposed_at,
            )
            self._memo["lapses"] = found
        return list(found)

    def next_lapse_on(self) -> date | None:
        """The first lapse the facts imply that is not recorded yet (the sweep's index)."""
        recorded = {r.on for r in self.reversals.values() if r.lapse and r.active}
        return next((e.on for e in self.expected_lapses() if e.on not in recorded), None)

    @property
    def lapse_recorded(self) -> bool:
        return self.open_lapse is not None

    @property
    def open_lapse(self) -> Reversal | None:
        return next((r for r in self.reversals.values()
                     if r.lapse and r.active and r.cured_on is None), None)

    def is_lapsing(self, as_of: date) -> bool:
        """True when a lapse has arisen by ``as_of`` and is not yet recorded."""
        day = self.next_lapse_on()
        return day is not None and day <= as_of

    def _why_withdrawn(self, r: Reversal, expected: list[LapseDue]) -> str:
        before = self.last_verified_at(r.on - ONE_DAY)
        said = (f"verified on {before}, so verification was next due "
                f"{self.verification_due_at(r.on - ONE_DAY)}" if before else "the facts changed")
        then = f"; the first lapse now arises {expected[0].on}" if expected else (
            "; no lapse arises")
        return f"no lapse arose on {r.on}: {said}{then}"

    # ------------------------------------------------------------------ derived: credits

    @property
    def outstanding_credits(self) -> int:
        """Credits neither retired, cancelled nor invalidated."""
        gone = self.retirements + self.cancellations + self.invalidations
        return self.quantity - sum(d.quantity for d in gone)

    @property
    def on_hold(self) -> int:
        """Buffer credits put on hold by hand (a lapse's hold is derived: :meth:`on_hold_at`)."""
        return sum(d.quantity for d in self.holds)

    def gone_at(self, t: date) -> int:
        return sum(d.quantity for d in self.cancellations + self.invalidations if d.on <= t)

    def _carried(self, t: date, gone: list[tuple[date, int]]) -> int:
        if not self.carrying(t):
            return 0
        return max(0, self.quantity - sum(q for d, q in gone if d <= t))

    def carried_at(self, t: date) -> int:
        """Exposure at ``t`` whoever bears it: Q minus credits cancelled or invalidated."""
        return max(0, self.quantity - self.gone_at(t)) if self.carrying(t) else 0

    def reversed_at(self, t: date) -> int:
        """Credits physically reversed by ``t`` (lapses are liabilities, not lost carbon)."""
        return sum(r.quantity for r in self.reversals.values()
                   if r.active and not r.lapse and r.on <= t)

    def still_exposed_at(self, t: date) -> int:
        return max(0, self.carried_at(t) - self.reversed_at(t))

    # ------------------------------------------------------------------ derived: bearers

    def bearer_kind_at(self, t: date) -> str:
        """``pool``, or the transferee's kind while it bears the vintage."""
        return self.transfer.kind if self._transferred(t) and self.transfer else "pool"

    def bearer_at(self, t: date) -> str:
        """Who bears future reversals: the pool, or the transferee while it bears them."""
        return self.transfer.to if self._transferred(t) and self.transfer else self.pool

    def _transferred(self, t: date) -> bool:
        tr = self.transfer
        if tr is None or t < tr.on:
            return False
        term = self.fund_term
        if term is not None:
            return term[0] <= t < term[1]
        return True

    def exposure_at(self, t: date) -> int:
        """Exposure borne by the pool at ``t`` (0 before issuance and from E on)."""
        return 0 if self._transferred(t) else self.carried_at(t)

    def transferred_at(self, t: date) -> int:
        """Exposure borne by the transferee at ``t``."""
        return self.carried_at(t) if self._transferred(t) else 0

    def _monitoring_moved(self, t: date) -> bool:
        tr = self.transfer
        return tr is not None and tr.monitoring and tr.term_years is None and t >= tr.on

    # ------------------------------------------------------------------ derived: dues

    def surrender_deadline(self, reversal: Reversal) -> date | None:
        """Last day the proponent may compensate an avoidable reversal before defaulting."""
        days = self.rules.surrender_deadline_days
        if reversal.classification != "avoidable" or days is None:
            return None
        if reversal.lapse and self._monitoring_moved(reversal.on):
            return None  # the transferee owes its own lapse directly
        return add_days(reversal.on, days)

    def default_day(self, reversal: Reversal) -> date | None:
        """The day an avoidable reversal still owed at its deadline passes to the bearer."""
        deadline = self.surrender_deadline(reversal)
        if deadline is None or reversal.withdrawn:
            return None
        return deadline + ONE_DAY if reversal.outstanding_at(deadline) > 0 else None

    def defaults_on(self, reversal: Reversal) -> date | None:
        """The default day of a reversal whose default is not recorded yet."""
        return None if reversal.defaulted_on is not None else self.default_day(reversal)

    def next_default_on(self) -> date | None:
        return min((d for r in self.reversals.values() if (d := self.defaults_on(r))),
                   default=None)

    def obligor_at(self, reversal: Reversal, t: date) -> str:
        """Who owes (the main share of) a reversal at ``t``."""
        if reversal.classification == "unavoidable":
            return self.bearer_kind_at(reversal.on)
        if reversal.lapse and self._monitoring_moved(reversal.on) and self.transfer:
            return self.transfer.kind
        deadline = self.surrender_deadline(reversal)
        if deadline is not None and t > deadline:
            return self.bearer_kind_at(reversal.on)
        return "proponent"

    def _gross_shares(self, reversal: Reversal, t: date) -> dict[str, int]:
        """Who owes how much of a reversal at ``t``, before any compensation."""
        if reversal.classification != "unavoidable":
            return {self.obligor_at(reversal, t): reversal.quantity}
        insured = self._insured().get(reversal.reversal_id, 0)
        shares = {"insurer": insured} if insured else {}
        rest = reversal.quantity - insured
        if rest > 0:
            kind = self.bearer_kind_at(reversal.on)
            shares[kind] = shares.get(kind, 0) + rest
        return shares

    def shares_at(self, reversal: Reversal, t: date) -> dict[str, int]:
        """What each obligor still owes of a reversal at ``t``."""
        if not reversal.in_force(t):
            return {}
        return settle(self._gross_shares(reversal, t), reversal.compensations, t)

    def _insured(self) -> dict[str, int]:
        """Each unavoidable reversal's insured share: policies in date order, each up to
        its limit, reversals in date order."""
        found = self._memo.get("insured")
        if found is None:
            found = {}
            used = [0] * len(self.policies)
            policies = sorted(range(len(self.policies)), key=lambda i: self.policies[i].on)
            covered = sorted(
                (r for r in self.reversals.values()
                 if r.active and r.classification == "unavoidable"),
                key=lambda r: r.on,
            )
            for r in covered:
                for i in policies:
                    p = self.policies[i]
                    if p.covers(r.on) and used[i] < p.limit:
                        take = min(r.quantity, p.limit - used[i])
                        used[i] += take
                        found[r.reversal_id] = take
                        break
            self._memo["insured"] = found
        return dict(found)

    def due_at(self, t: date) -> dict[str, int]:
        """Reversals minus compensation dated on or before ``t``, by obligor."""
        due = dict.fromkeys(ev.OBLIGORS, 0)
        for r in self.reversals.values():
            for obligor, owed in self.shares_at(r, t).items():
                due[obligor] += owed
        return due

    def buffer_cancelled_at(self, t: date) -> int:
        """Buffer credits drawn to compensate this vintage's reversals by ``t`` (the pool's
        balance caps what is actually cancelled: see the buffer query)."""
        return sum(
            q for r in self.reversals.values() if r.active for d, route, q in r.compensations
            if route == "buffer" and d <= t
        ) + sum(d.quantity for d in self.pool_cancellations if d.on <= t)

    def on_hold_at(self, t: date) -> int:
        """Buffer credits on hold at ``t``: by hand, and all of them while a lapse holds them."""
        held = sum(d.quantity for d in self.holds if d.on <= t)
        if self.rules.lapse_holds_buffer and any(
            r.lapse and r.in_force(t) for r in self.reversals.values()
        ):
            return max(held, self.buffer)
        return held

    def status_at(self, t: date) -> str:
        """not-issued, non-reversible, monitored, overdue, lapsed, transferred or ended."""
        if t < self.issued_on:
            return "not-issued"
        if not self.reversible:
            return "non-reversible"
        if self._transferred(t) and self.carrying(t):
            return "transferred"
        if t >= self.period_end or (self.period_ended_on and t >= self.period_ended_on):
            return "ended"
        if any(r.lapse and r.in_force(t) for r in self.reversals.values()):
            return "lapsed"
        arises = self.lapse_arises_at(t)
        if arises is not None and t >= arises:
            return "overdue"
        return "monitored"

    def breakpoints(self) -> list[date]:
        """Every date on which an as-of figure of this vintage can change."""
        days = {self.issued_on, self.exposure_start, self.period_end}
        for d in self.cancellations + self.invalidations + self.holds + self.pool_cancellations:
            days.add(d.on)
        if self.transfer is not None:
            days.add(self.transfer.on)
            term = self.fund_term
            if term is not None:
                days.update(term)
        for p in self.policies:
            days.update((p.on, p.until + ONE_DAY))
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
        t = as_of
        return {
            "vintage_id": str(self.id),
            "program": self.program,
            "pool": self.pool,
            "project": self.project,
            "project_type": self.project_type,
            "reversible": self.reversible,
            "vintage_year": self.vintage_year,
            "serials": _serials(self.serial_first, self.serial_last),
            "quantity": self.quantity,
            "buffer": self.buffer,
            "issued_on": self.issued_on.isoformat(),
            "clock_start": self.clock_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "last_verified": _iso(self.last_verified_at(t)),
            "verification_due": _iso(self.verification_due_at(t)),
            "lapse_arises_on": _iso(self.lapse_arises_at(t)) if self.reversible else None,
            "as_of": t.isoformat(),
            "status": self.status_at(t),
            "exposure": self.exposure_at(t),
            "still_exposed": self.still_exposed_at(t),
            "bearer": self.bearer_at(t),
            "due": self.due_at(t),
            "outstanding_credits": self.quantity - sum(
                d.quantity for d in self.retirements + self.cancellations + self.invalidations
                if d.on <= t),
            "retired": sum(d.quantity for d in self.retirements if d.on <= t),
            "on_hold": self.on_hold_at(t),
            "reversals": [
                {
                    "reversal_id": r.reversal_id,
                    "on": r.on.isoformat(),
                    "quantity": r.quantity,
                    "cause": r.cause,
                    "classification": r.classification,
                    "obligor": self.obligor_at(r, t),
                    "owed": self.shares_at(r, t),
                    "compensated": r.compensated_by(t),
                    "outstanding": r.outstanding_at(t),
                    "cured_on": _iso(r.cured_on) if r.cured_on and r.cured_on <= t else None,
                }
                for r in sorted(self.reversals.values(), key=lambda r: r.on)
                if r.active and r.on <= t
            ],
            "transfer": None if self.transfer is None or self.transfer.on > t else {
                "on": self.transfer.on.isoformat(),
                "to": self.transfer.to,
                "kind": self.transfer.kind,
                "term_years": self.transfer.term_years,
                "monitoring": self.transfer.monitoring,
            },
            "insurance": [
                {"insurer": p.insurer, "from": p.on.isoformat(), "until": p.until.isoformat(),
                 "limit": p.limit}
                for p in self.policies if p.on <= t
            ],
            "labels": [{"label": a, "innovation": b} for a, b in self.labels],
            "risk": None if self.risk is None or self.risk.on > t else {
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


def _check_minimum_buffer(rules: Rules, quantity: int, buffer: int) -> None:
    """The profile's minimum buffer rate, of all credits issued (to whole tonnes)."""
    rate = rules.minimum_buffer_rate
    if not rate:
        return
    total = quantity + buffer
    need = int(rate * total)
    if buffer < need:
        raise InvalidCommand(
            f"buffer: {buffer:,} is {buffer / total:.1%} of the {total:,} credits issued; "
            f"profile {rules.profile} withholds at least {rate:.0%} ({need:,})"
        )


def _check_vintage_period(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise InvalidCommand("vintage_end: before vintage_start")


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _serials(first: str | None, last: str | None) -> str | None:
    return f"{first}-{last}" if first and last else first


VINTAGE_TOPIC = get_topic(Vintage)
