"""The ``permanence`` command line: one module per command group (see :mod:`permanence.cli.main`)."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point; the command modules load only when a command runs."""
    from permanence.cli.main import main as run

    run()
