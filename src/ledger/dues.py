"""Who owes what on a vintage, as of a business date: reversal shares and their deadlines,
defaults, insurance, holds, the vintage's status, and its summary.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.calendar import add_days
from ledger.exposure import ONE_DAY, VintageExposure
from ledger.obligors import OBLIGORS
from ledger.reversals import Reversal, settle


class VintageDues(VintageExposure):
    """Obligations of a vintage as of any date, and the plain summary the faces show."""

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

    def reversal_room_at(self, t: date) -> int:
        """What a reversal dated ``t`` that spans a project's vintages takes from this one
        at most before it spills into an earlier one: the pool's exposure then, less every
        reversal not cured."""
        return self.exposure_at(t) - sum(
            r.quantity for r in self.reversals.values() if r.cured_on is None
        )

    def avoidable_owed_on(self, t: date) -> list[Reversal]:
        """Avoidable reversals by ``t`` with something still owed, while the period runs:
        what a proponent's surrender of credits on ``t`` settles."""
        if t >= self.period_end:
            return []
        return [r for r in self.reversals.values()
                if r.classification == "avoidable" and r.outstanding > 0 and r.on <= t]

    def due_at(self, t: date) -> dict[str, int]:
        """Reversals minus compensation dated on or before ``t``, by obligor."""
        due = dict.fromkeys(OBLIGORS, 0)
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

def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _serials(first: str | None, last: str | None) -> str | None:
    return f"{first}-{last}" if first and last else first

