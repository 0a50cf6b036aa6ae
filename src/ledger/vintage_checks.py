"""The invariants a vintage's commands check before any event is raised.

Small ``check_*`` functions of plain values, and the checks that need the vintage's state;
each raises :class:`~ledger.errors.InvalidCommand` (or ``UnknownReversal``) naming the field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ledger import events as ev
from ledger.dues import VintageDues
from ledger.errors import InvalidCommand, UnknownReversal
from ledger.limits import FIRST_YEAR, LAST_YEAR, MAX_TONNES
from ledger.profiles import Rules
from ledger.reversals import ROUTE_OBLIGOR, Reversal


class VintageChecks(VintageDues):
    """Checks of a command against the vintage's state."""

    # ------------------------------------------------------------------ checks

    def _check_dated(self, event_class: type[ev.VintageEvent], on: date) -> None:
        check_dates(on=on)
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
        check_whole(quantity, "quantity", allow_zero=False)
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

def check_whole(value: Any, field: str, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{field}: {value!r} is not a whole number of tonnes")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidCommand(f"{field}: must be a positive whole number of tonnes, got {value}")
    if value > MAX_TONNES:
        raise InvalidCommand(f"{field}: {value} exceeds the largest quantity, {MAX_TONNES:,} t")


def check_dates(**values: date | None) -> None:
    for name, value in values.items():
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise InvalidCommand(f"{name}: {value!r} is not a date")
        if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise InvalidCommand(f"{name}: {value} is outside the years {FIRST_YEAR}-{LAST_YEAR}")


def check_minimum_buffer(rules: Rules, quantity: int, buffer: int) -> None:
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


def check_vintage_period(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise InvalidCommand("vintage_end: before vintage_start")


