"""The console script: the Typer app with every command group, imported explicitly.

Importing a command module declares its commands and nothing more: what a command needs
(the store, the queries, rich, numpy, the HTTP app, the importers) it imports when it runs.
"""

from __future__ import annotations

import os
import sys

# isort: off
# Importing a command module registers its commands; this order is the order of `--help`.
from permanence.cli import writes, queries, maintenance  # noqa: F401
from permanence.cli import report, audit, scheduling, risk, imports, tokens  # noqa: F401
from permanence.cli import listings  # noqa: F401
# isort: on
from permanence.cli.app import app
from permanence.cli.errors import exit_for, say_error
from permanence.parsing import check_arguments


def main() -> None:
    """Console-script entry point.

    Files and folders the ledger creates are its owner's only (umask 077: the SQLite file
    and its -wal/-shm, exports, reports); an argument carrying a control character or a
    terminal escape is refused before any command runs.
    """
    os.umask(0o077)
    try:
        check_arguments(sys.argv[1:])
        app()
    except Exception as e:  # what no command mapped (bad arguments)
        mapped = exit_for(e)
        if mapped is None:
            raise
        say_error(mapped[1])
        sys.exit(mapped[0])
