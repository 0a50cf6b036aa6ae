"""The one set of limits on what the ledger accepts, checked where events are made.

Every face (CLI, HTTP, imports) reaches the aggregate, so checking here means an event the
ledger accepted always fits the read-model columns on every store (PostgreSQL refuses a NUL
in text and a string longer than its column, which SQLite would keep), and nothing a
terminal would interpret ever reaches ``history``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from ledger.errors import InvalidCommand

#: No issuance is a trillion tonnes; the bound keeps every figure within 64-bit columns.
MAX_TONNES = 10**12
#: Business dates outside these years are typing errors (and would overflow period ends).
FIRST_YEAR, LAST_YEAR = 1900, 2200
#: The same years as dates, for faces that check a date before it reaches the ledger.
EARLIEST, LATEST = date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)
#: Names that key read models and roll-ups (program, pool, risk class).
CODE_LENGTH = 64
#: Names of projects, transferees, insurers, serial numbers.
NAME_LENGTH = 200
#: Free text: reasons, notes, references.
TEXT_LENGTH = 2_000
#: An import's own key for an issuance.
KEY_LENGTH = 400

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # text may break lines


def check_text(field: str, value: Any, length: int, *, lines: bool = False,
               required: bool = False) -> None:
    """A string of at most ``length`` characters, with no control character (free text
    may hold line breaks and tabs); ``None`` passes unless ``required``."""
    if value is None:
        if required:
            raise InvalidCommand(f"{field}: must not be empty")
        return
    if not isinstance(value, str):
        raise InvalidCommand(f"{field}: {value!r} is not text")
    if required and not value.strip():
        raise InvalidCommand(f"{field}: must not be empty")
    if len(value) > length:
        raise InvalidCommand(f"{field}: {len(value):,} characters, more than {length:,}")
    bad = (_CONTROL_IN_TEXT if lines else _CONTROL).search(value)
    if bad:
        raise InvalidCommand(
            f"{field}: contains the control character {bad.group()!r}; text must be printable"
        )


def check_year(field: str, value: Any) -> None:
    """A calendar year within the ledger's years, or ``None``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{field}: {value!r} is not a year")
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise InvalidCommand(f"{field}: {value} is outside the years {FIRST_YEAR}-{LAST_YEAR}")
