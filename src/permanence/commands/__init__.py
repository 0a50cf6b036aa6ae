"""CLI command groups beyond the ledger core; importing a module registers its commands."""

from __future__ import annotations

import importlib

#: Modules under ``permanence.commands`` whose commands join the ``permanence`` CLI.
MODULES: tuple[str, ...] = (
    "report", "audit", "scheduling", "risk", "imports", "tokens", "listings",
)


def register() -> None:
    for name in MODULES:
        importlib.import_module(f"permanence.commands.{name}")
