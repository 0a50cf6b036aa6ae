"""What a vintage carries, and when: its clock, its verification due dates and lapses, its
credits and who bears its exposure, each as of a business date.

Pure functions of the state (:mod:`ledger.vintage_state`), so the aggregate, the read side
and an offline replay of an export compute them one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from ledger import clock
from ledger.calendar import add_years
from ledger.lapses import (
    LapseDue,
    decisive_verifications,
    due_as_of,
    expected_lapses,
    owed_in_full,
)
from ledger.reversals import Reversal
from ledger.vintage_state import VintageState

ONE_DAY = timedelta(days=1)


class VintageExposure(VintageState):
    """The clock, lapses, credits and bearers of a vintage as of any date."""

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

    def open_on(self, t: date) -> bool:
        """Whether a fact dated ``t`` falls within the vintage's open period: issued by
        then, before the period end, and the period not closed."""
        return self.issued_on <= t < self.period_end and not self.period_closed

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

    def verifications_implied_by(self, issuances: Sequence[date], today: date) -> list[date]:
        """Of the verifications later issuances of the project imply (one each, dated the
        issuance or the verification it states; sorted), those worth recording: within the
        period and by ``today``, and changing what the verifications say (the lapses, their
        cures, the due date today: see :func:`ledger.lapses.decisive_verifications`)."""
        if not self.reversible or self.period_closed:
            return []
        start, end = self.issued_on, min(self.period_end, today + ONE_DAY)
        return decisive_verifications(
            issued_on=self.issued_on,
            period_end=self.period_end,
            recorded=frozenset(self.verifications),
            candidates=[d for d in issuances if start < d < end],
            interval_years=self.rules.verification_interval_years,
            grace_days=self.rules.grace_days,
        )

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

