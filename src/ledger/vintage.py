"""The ``Vintage`` aggregate: one issuance batch, from issuance to the end of its period.

Commands (``verify``, ``record_reversal``, ...) check invariants in small ``_check_*``
helpers before any event is raised; ``when`` applies events to state. Derived values
(clock start, period end, verification due, lapses, exposure and liabilities as of a
date) are computed from that state alone, as functions of the facts' business dates, so
the aggregate, the projections and an offline replay of an export all agree, whatever
order the facts were recorded in.

The class is built in layers, one module each, so that each concern reads on its own:
:mod:`ledger.vintage_state` (state, and ``when``, the one place an event is applied),
:mod:`ledger.exposure` (clock, lapses, credits, bearers), :mod:`ledger.dues` (who owes what,
status, summary), :mod:`ledger.vintage_checks` (invariants), :mod:`ledger.corrections`
(lapses, defaults and their corrections), and here the commands. Stored events and the
vintage's topic (``ledger.vintage:Vintage``) are unchanged by that layering.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger import events as ev
from ledger.calendar import add_years
from ledger.classification import Classification, classify
from ledger.corrections import VintageCorrections
from ledger.errors import InvalidCommand, NothingToDo
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
from ledger.reversals import Reversal
from ledger.vintage_checks import (
    check_dates,
    check_minimum_buffer,
    check_vintage_period,
    check_whole,
)
from ledger.vintage_state import Dated, Policy, Transfer

__all__ = ["FIRST_YEAR", "LAST_YEAR", "MAX_TONNES", "Dated", "Policy", "Reversal", "Transfer",
           "Vintage"]

#: The longest term a permanence fund may take a vintage on for.
MAX_TERM_YEARS = 500


class Vintage(VintageCorrections):
    """One credit vintage (issuance batch) under a program profile's rules.

    Every figure is a function of the facts' business dates. Lapses, cures, lapse holds
    and defaults follow from the verification history and the deadlines, so facts
    recorded late or out of order give the figures they would have given in date order;
    :meth:`correct` withdraws or revises a recorded lapse or default they no longer
    support.
    """

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
        check_whole(quantity, "quantity", allow_zero=buffer != 0)
        check_whole(buffer, "buffer", allow_zero=True)
        if quantity == 0 and buffer == 0:
            raise InvalidCommand("quantity: an issuance of no credits at all")
        check_vintage_period(vintage_start, vintage_end)
        if crediting_start and crediting_end and crediting_end < crediting_start:
            raise InvalidCommand("crediting_end: before crediting_start")
        check_dates(on=on, vintage_start=vintage_start, vintage_end=vintage_end,
                     crediting_start=crediting_start, crediting_end=crediting_end)
        if enforce_minimum_buffer and reversible:
            check_minimum_buffer(rules, quantity, buffer)
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
        check_dates(period_start=period_start, period_end=period_end)
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
        check_whole(quantity, "quantity", allow_zero=False)
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
        check_whole(quantity, "quantity", allow_zero=False)
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
        check_whole(quantity, "quantity", allow_zero=False)
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
        check_whole(quantity, "quantity", allow_zero=False)
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
        check_whole(quantity, "quantity", allow_zero=False)
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
        check_dates(on=on)
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
        check_dates(on=on, until=until)
        check_text("insurer", insurer, NAME_LENGTH, required=True)
        check_whole(limit, "limit", allow_zero=False)
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


VINTAGE_TOPIC = get_topic(Vintage)
