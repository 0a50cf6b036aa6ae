"""Options several commands share, declared once so that they read the same everywhere."""

from __future__ import annotations

import typer

JSON = typer.Option(False, "--json", help="Print JSON (for programs) instead of text.")
AS_OF = typer.Option(None, "--as-of", metavar="DATE", help="Business date YYYY-MM-DD (default today).")
PLOT = typer.Option(None, "--plot", metavar="FILE.png", help="Also write the run-off ladder as PNG.")
KNOWN_AT = typer.Option(
    None, "--known-at", metavar="TIME",
    help="Only what had been recorded by this time (ISO timestamp; a date means its end).",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar (one is drawn on a terminal).")
