"""The one fold from events to a vintage, and replays of a vintage as it stood.

Every path that turns events into a vintage goes through :func:`fold`, which applies an
event the way the aggregate's repository does (the event's own ``mutate``): the projector
following the log and rebuilding the read models, the export and its offline verifier,
the consistency check, the audit trail and ``show``. :class:`Record` is an event as the
log lists it, before decoding.

:func:`replay` recomputes the state after each event from the events alone (so a verifier
needs no database), as they stood at a business date and a record time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, NamedTuple

from ledger.events import VintageEvent
from ledger.vintage import Vintage

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "recorded_by", "on", "rules",
             "originator_topic"}


class Record(NamedTuple):
    """A stored event as the notification log lists it, not yet decoded."""

    nid: int  # notification id: its place in the log
    originator_id: str  # the canonical (hyphenated) id of its aggregate
    originator_version: int
    topic: str  # ``module:Class`` of the event
    state: Any  # the stored state (JSON bytes)


def fold(vintage: Vintage | None, event: VintageEvent, *, gaps: bool = False) -> Vintage:
    """The vintage after ``event``: its issuance constructs it (``vintage`` is None), every
    later event changes it in place through the aggregate's own ``mutate``, which checks
    the event is the next of its stream.

    With ``gaps``, events may be left out of the sequence (a replay as of a date leaves out
    those dated or recorded later): an event is then applied and the vintage takes its
    version, as ``mutate`` would have done.
    """
    if vintage is None or not gaps or event.originator_version == vintage.version + 1:
        folded = event.mutate(vintage)
        assert isinstance(folded, Vintage)
        return folded
    event.apply(vintage)
    vintage.version = event.originator_version
    vintage.modified_on = event.timestamp
    return vintage


def fold_stream(events: Iterable[VintageEvent]) -> Vintage | None:
    """A vintage from its whole stream in order (None for an empty one)."""
    vintage: Vintage | None = None
    for event in events:
        vintage = fold(vintage, event)
    return vintage


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
        vintage = fold(vintage, event, gaps=True)
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
