"""Operations commands: rebuild and inspect the read models, serve the HTTP API."""

from __future__ import annotations

import sys
from typing import Any

import typer

from permanence.cli.app import JSON, app, projections_app, runtime, settings
from permanence.cli.errors import EXIT_REFUSED, exits
from permanence.cli.options import QUIET
from permanence.cli.output import Human, emit, progress_bar, table


@projections_app.command("rebuild")
@exits
def projections_rebuild(quiet: bool = QUIET, as_json: bool = JSON) -> None:
    """Rebuild the read models from the event log, in one transaction.

    Until it commits, readers see the old figures (SQLite) or wait (PostgreSQL); if it
    fails, the old ones stay. On a terminal a progress bar with the time left is drawn
    on stderr (``--quiet`` turns it off); the result line is printed at the end.
    """
    show = not (quiet or as_json) and sys.stderr.isatty()
    with runtime() as rt, progress_bar(show, "rebuilding read models") as bar:
        n = rt.projector.rebuild(progress=bar.update)
    emit({"events_processed": n}, as_json, lambda d: f"rebuilt from {n:,} events")


@projections_app.command("status")
@exits
def projections_status(as_json: bool = JSON) -> None:
    """Projected position, lag behind the event log, and events the read models could not
    take (exit 1 when there are any)."""
    from permanence.runtime import Runtime

    rt = Runtime(settings(), catch_up_on_write=False, create=False)
    try:
        data = {"position": rt.projector.position(), "lag": rt.projector.lag(),
                "failures": rt.projector.failures()}
    finally:
        rt.close()
    emit(data, as_json, _status_text)
    if data["failures"]:
        raise typer.Exit(EXIT_REFUSED)


def _status_text(d: dict[str, Any]) -> Human:
    head = f"read models at event {d['position']:,}, {d['lag']:,} behind the event log"
    if not d["failures"]:
        return f"{head}; no event failed to project"
    rows = [[f.get(k) for k in ("nid", "vintage_id", "topic", "error")]
            if isinstance(f, dict) else [f, None, None, None] for f in d["failures"]]
    return [f"{head}; {len(rows):,} event(s) could not be projected:",
            table([("event", "right"), ("vintage", "left"), ("topic", "left"),
                   ("error", "left")], rows)]


@app.command()
@exits
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from permanence.http.app import create_app
    from permanence.runtime import Runtime

    rt = Runtime(settings())  # opened first: an unreachable store is one line, not a trace
    try:
        uvicorn.run(create_app(rt.settings, rt), host=host, port=port, log_level="info")
    finally:
        rt.close()
