"""What time and late facts make a vintage record: lapses and defaults as they arise, and
corrections of those the facts no longer support.

A lapse or a default is dated the day it arose, never the day a sweep ran; a verification
recorded late can show a recorded lapse never arose (:meth:`VintageCorrections.correct`).
"""

from __future__ import annotations

from datetime import date

from ledger import events as ev
from ledger.errors import NothingToDo
from ledger.exposure import ONE_DAY
from ledger.lapses import LapseDue
from ledger.reversals import Reversal
from ledger.vintage_checks import VintageChecks


class VintageCorrections(VintageChecks):
    """Lapses, defaults and their corrections."""

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

    def _why_withdrawn(self, r: Reversal, expected: list[LapseDue]) -> str:
        before = self.last_verified_at(r.on - ONE_DAY)
        said = (f"verified on {before}, so verification was next due "
                f"{self.verification_due_at(r.on - ONE_DAY)}" if before else "the facts changed")
        then = f"; the first lapse now arises {expected[0].on}" if expected else (
            "; no lapse arises")
        return f"no lapse arose on {r.on}: {said}{then}"

