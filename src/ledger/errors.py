"""Domain errors: every rejected command raises a subclass of :class:`LedgerError`.

One base class lets the faces (CLI, HTTP) turn any rejection into one clear line and a
non-zero exit or a 4xx, without knowing each rule.
"""

from __future__ import annotations


class LedgerError(Exception):
    """A command was rejected; nothing was recorded."""


class InvalidCommand(LedgerError):
    """The command's values break a rule (quantity, date, state)."""


class NotFound(LedgerError):
    """Something named does not exist (a vintage, program, reversal, pool): 404 over HTTP."""


class UnknownProgram(NotFound):
    """No program profile has the given name."""


class UnknownVintage(NotFound):
    """No vintage has the given identifier."""


class AmbiguousVintage(LedgerError):
    """A vintage id prefix matches more than one vintage; the message lists them, so the
    user can give a longer prefix (a bad request rather than an unknown vintage)."""


class UnknownReversal(NotFound):
    """The vintage has no reversal with the given identifier."""


class ProfileRejected(LedgerError):
    """A program profile file is malformed or falls below the ICVCM floor."""


class NothingToDo(LedgerError):
    """A time-driven command found nothing due (a lapse already recorded, say)."""
