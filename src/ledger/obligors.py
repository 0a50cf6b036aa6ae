"""Who owes a reversal's compensation, by kind: the ``due`` figures have one key each.

A module of its own, with no pydantic models, so that the read side can name the keys
without loading every event class (a read command answers before the write side loads).
"""

from __future__ import annotations

from typing import Literal

Obligor = Literal["proponent", "pool", "fund", "jurisdiction", "insurer"]
OBLIGORS: tuple[str, ...] = ("proponent", "pool", "fund", "jurisdiction", "insurer")
