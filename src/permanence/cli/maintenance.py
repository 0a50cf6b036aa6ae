"""Operations commands: rebuild and inspect the read models, serve the HTTP API."""

from __future__ import annotations

import typer

from permanence.cli.app import JSON, app, emit, guarded, projections_app, runtime, settings
from permanence.runtime import Runtime


@projections_app.command("rebuild")
def projections_rebuild(as_json: bool = JSON) -> None:
    """Rebuild the read models from the event log, in one transaction.

    Until it commits, readers see the old figures (SQLite) or wait (PostgreSQL); if it
    fails, the old ones stay.
    """

    def body() -> None:
        with runtime() as rt:
            n = rt.projector.rebuild()
        emit({"events_processed": n}, as_json, lambda d: f"rebuilt from {n:,} events")

    guarded(body)


@projections_app.command("status")
def projections_status(as_json: bool = JSON) -> None:
    """Projected position, lag behind the event log, and events the read models could not
    take (exit 1 when there are any)."""

    def body() -> None:
        rt = Runtime(settings(), catch_up_on_write=False, create=False)
        try:
            data = {"position": rt.projector.position(), "lag": rt.projector.lag(),
                    "failures": rt.projector.failures()}
        finally:
            rt.close()
        emit(data, as_json)
        if data["failures"]:
            raise typer.Exit(1)

    guarded(body)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from permanence.http.app import create_app

    def body() -> None:
        rt = Runtime(settings())  # opened first: an unreachable store is one line, not a trace
        try:
            uvicorn.run(create_app(rt.settings, rt), host=host, port=port, log_level="info")
        finally:
            rt.close()

    guarded(body)
