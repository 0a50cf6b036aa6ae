"""``python -m permanence.cli``."""

from __future__ import annotations

from permanence.cli.main import main

main()
