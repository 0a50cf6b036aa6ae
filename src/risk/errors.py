"""Risk errors: members of the ledger's one family, so each face maps them in one place.

A stress test or an assessment that breaks a rule is an :class:`~ledger.errors.InvalidCommand`
(a 400 over HTTP, exit 1 on the CLI unless the face says a bad value is malformed input);
a pool the ledger does not know is a :class:`~ledger.errors.NotFound` (404). They are also
``ValueError`` so a pydantic validator that raises one reports it as a validation error
naming the field.
"""

from __future__ import annotations

from ledger.errors import InvalidCommand, NotFound


class StressTestRejected(InvalidCommand, ValueError):
    """A stress-test input breaks a rule; the message names the field and the problem."""


class RiskAssessmentRejected(InvalidCommand, ValueError):
    """An assessment or a risk tool breaks a rule; the message names the field."""


class UnknownPool(NotFound):
    """No pool of the ledger has the given name; the message names the pools it has."""


__all__ = ["RiskAssessmentRejected", "StressTestRejected", "UnknownPool"]
