"""Replay a vintage's events as they stood at a business date and a record time.

Used by the audit trail (``history``) and by offline verification of an export: the state
after each event is recomputed from the events alone, so a verifier needs no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from ledger.events import VintageEvent
from ledger.vintage import Vintage

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "recorded_by", "on", "rules",
             "originator_topic"}


def visible(event: VintageEvent, as_of: date | None, known_at: datetime | None) -> bool:
    """An event counts if it happened by ``as_of`` and had been recorded by ``known_at``."""
    if as_of is not None and event.on > as_of:
        return False
    return not (known_at is not None and event.timestamp > known_at)


def replay(
    events: Iterable[VintageEvent],
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> tuple[Vintage | None, list[dict[str, Any]]]:
    """Apply the visible events in stream order; return the vintage and one entry per event."""
    vintage: Vintage | None = None
    trail: list[dict[str, Any]] = []
    for event in events:
        if not visible(event, as_of, known_at):
            continue
        if vintage is None:
            vintage = event.mutate(None)  # type: ignore[assignment]
        else:
            vintage.when(event)
        assert vintage is not None
        at = event.on if as_of is None else max(event.on, min(as_of, event.on))
        trail.append(
            {
                "version": event.originator_version,
                "event": type(event).__name__,
                "on": event.on.isoformat(),
                "recorded_at": event.timestamp.isoformat(),
                "recorded_by": event.recorded_by,
                "data": event.model_dump(mode="json", exclude=_ENVELOPE),
                "state": _state(vintage, at),
            }
        )
    return vintage, trail


def _state(v: Vintage, at: date) -> dict[str, Any]:
    return {
        "status": v.status_at(at),
        "exposure": v.exposure_at(at),
        "due": v.due_at(at),
        "outstanding_credits": v.outstanding_credits,
        "on_hold": v.on_hold_at(at),
        "verification_due": _iso(v.verification_due_at(at)),
        "period_end": v.period_end.isoformat(),
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None
