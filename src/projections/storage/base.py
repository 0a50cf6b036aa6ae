"""The one ``MetaData`` and the column sizes every table of the ledger's database uses.

Sizes of names and keys come from :mod:`ledger.limits`, where the ledger checks them, so an
event the ledger accepted always fits its row (PostgreSQL refuses a longer string).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from ledger.limits import CODE_LENGTH, KEY_LENGTH, NAME_LENGTH

metadata = MetaData()
"""Every table of ours; read models carry ``info={"read_model": True}``."""

ID_LENGTH = 36  # a canonical UUID
DAY_LENGTH = 10  # YYYY-MM-DD
STAMP_LENGTH = 32  # a record time as fixed-width UTC text

__all__ = [
    "CODE_LENGTH", "DAY_LENGTH", "ID_LENGTH", "KEY_LENGTH", "NAME_LENGTH", "STAMP_LENGTH",
    "metadata",
]
