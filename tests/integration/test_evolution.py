"""Stored events stay readable as event classes evolve (upcasting), and stay readable JSON."""

from __future__ import annotations

import json
from datetime import date
from uuid import uuid4

import orjson
from eventsourcing.persistence import StoredEvent

from ledger.events import Verified
from permanence.runtime import Runtime


def test_version_1_verified_event_is_upcast_on_read(runtime: Runtime) -> None:
    app = runtime.app
    vid = app.issue(program="icvcm-ccp", project="P", quantity=10, buffer=2, on=date(2025, 1, 1))
    # a Verified event as version 1 wrote it: no verifier field, no class_version marker
    v1_state = {"timestamp": "2026-01-01T00:00:00.000000Z", "recorded_by": "legacy",
                "on": "2028-03-01", "period_start": None, "period_end": None}
    legacy = StoredEvent(originator_id=app.vintage(vid).id, originator_version=2,
                         topic="ledger.events:Verified", state=orjson.dumps(v1_state))
    app.recorder.insert_events([legacy])
    events = app.stream(vid)
    assert isinstance(events[1], Verified)
    assert events[1].verifier is None and events[1].on == date(2028, 3, 1)
    assert app.show(vid, date(2028, 3, 1))["verification_due"] == "2033-03-01"


def test_events_are_stored_as_readable_json(runtime: Runtime) -> None:
    app = runtime.app
    vid = app.issue(program="acr", project="P", quantity=10, buffer=2, on=date(2025, 1, 1))
    app.verify(vid, date(2026, 1, 1), verifier="VB Inc")
    stored = app.recorder.select_events(app.vintage(vid).id)
    issued = json.loads(bytes(stored[0].state))
    assert issued["quantity"] == 10 and issued["rules"]["liability_basis"] == "all_issued"
    verified = json.loads(bytes(stored[1].state))
    assert verified["verifier"] == "VB Inc" and verified["class_version"] == 2


def test_fresh_ids_per_issue(runtime: Runtime) -> None:
    a = runtime.app.issue(program="acr", project="P", quantity=10, buffer=2, on=date(2025, 1, 1))
    b = runtime.app.issue(program="acr", project="P", quantity=10, buffer=2, on=date(2025, 1, 1))
    assert a != b and str(uuid4()) != a
