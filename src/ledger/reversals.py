"""A reversal's state, and who owes what of it on a business date.

Who owes is a function of dates, never of when something was recorded: the proponent owes
an avoidable reversal until its surrender deadline and the bearer (the pool, or the
transferee after a liability transfer) after it; an insurer owes its share of an
unavoidable one up to the policy's limit, the bearer the rest. Compensation by a route
settles its own obligor's share first, then any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ledger.classification import Classification

#: Which obligor a compensation route pays for.
ROUTE_OBLIGOR: dict[str, str] = {
    "buffer": "pool",
    "insurance": "insurer",
    "fund": "fund",
    "jurisdiction": "jurisdiction",
    "proponent": "proponent",
    "deduction": "proponent",
}


@dataclass
class Reversal:
    """A reversal (or lapse) as recorded: what was owed, and what has settled it."""

    reversal_id: str
    on: date
    quantity: int
    cause: str
    classification: Classification
    obligor: str
    lapse: bool = False
    compensations: list[tuple[date, str, int]] = field(default_factory=list)
    withdrawn: bool = False
    #: derived from the verifications (curable lapses only)
    cured_on: date | None = None
    #: the day a recorded default says the proponent defaulted (informational)
    defaulted_on: date | None = None

    @property
    def active(self) -> bool:
        return not self.withdrawn

    @property
    def compensated(self) -> int:
        return sum(q for _, _, q in self.compensations)

    def compensated_by(self, t: date) -> int:
        return sum(q for d, _, q in self.compensations if d <= t)

    @property
    def outstanding(self) -> int:
        """What is still owed on everything recorded."""
        if self.withdrawn or self.cured_on is not None:
            return 0
        return max(0, self.quantity - self.compensated)

    def in_force(self, t: date) -> bool:
        """Owed at ``t``: arisen, not withdrawn, not cured by then."""
        return (
            not self.withdrawn and t >= self.on
            and (self.cured_on is None or t < self.cured_on)
        )

    def outstanding_at(self, t: date) -> int:
        """What is owed at business date ``t``."""
        if not self.in_force(t):
            return 0
        return max(0, self.quantity - self.compensated_by(t))


def settle(gross: dict[str, int], compensations: list[tuple[date, str, int]], t: date) -> dict[str, int]:
    """Shares still owed after the compensations dated on or before ``t``: each pays its
    route's obligor first, then the others in turn."""
    owed = dict(gross)
    for d, route, quantity in sorted(compensations):
        if d > t:
            continue
        left = quantity
        mine = ROUTE_OBLIGOR.get(route)
        for name in ([mine] if mine in owed else []) + [k for k in owed if k != mine]:
            take = min(left, owed[name])
            owed[name] -= take
            left -= take
            if not left:
                break
    return {k: v for k, v in owed.items() if v > 0}
