"""Pure domain tests: the Vintage aggregate, the calendar, classification, profiles.

No database: these run in milliseconds and pin the brief's reference semantics.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from uuid import uuid4

import pytest

from ledger.calendar import add_years
from ledger.classification import classify
from ledger.errors import (
    InvalidCommand,
    NothingToDo,
    ProfileRejected,
    UnknownProgram,
    UnknownReversal,
)
from ledger.profiles import ProfileCatalog, parse_profile
from ledger.vintage import Vintage

CATALOG = ProfileCatalog.load()


def issue(program: str = "icvcm-ccp", quantity: int = 80_000, buffer: int = 20_000,
          on: date = date(2025, 1, 1), **kw: object) -> Vintage:
    p = CATALOG.get(program)
    return Vintage.issue(vintage_id=uuid4(), program=p.name, pool=p.pool_name, project="P1",
                         quantity=quantity, buffer=buffer, on=on, rules=p.rules(), **kw)  # type: ignore[arg-type]


def test_calendar_addition_leap_day() -> None:
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert add_years(date(2025, 1, 1), 40) == date(2065, 1, 1)


def test_worked_example_to_the_tonne_and_the_day() -> None:
    v = issue()
    v.verify(date(2029, 6, 30))
    assert v.verification_due == date(2034, 6, 30)
    assert v.period_end == date(2065, 1, 1)
    assert not v.is_lapsing(date(2034, 6, 30))
    assert v.is_lapsing(date(2034, 7, 1))
    with pytest.raises(NothingToDo):
        v.record_lapse(date(2034, 6, 30))
    # the sweep may run any day from 2034-07-01; the lapse is dated the day it arose
    rid = v.record_lapse(date(2036, 3, 3))
    lapse = v.reversals[rid]
    assert (lapse.on, lapse.quantity, lapse.classification, lapse.obligor) == (
        date(2034, 7, 1), 20_000, "avoidable", "proponent")
    with pytest.raises(NothingToDo):
        v.record_lapse(date(2036, 3, 4))  # once
    assert v.exposure_at(date(2024, 12, 31)) == 0
    assert v.exposure_at(date(2025, 1, 1)) == 80_000
    assert v.exposure_at(date(2064, 12, 31)) == 80_000
    assert v.exposure_at(date(2065, 1, 1)) == 0
    assert v.due_at(date(2034, 6, 30)) == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert v.due_at(date(2034, 7, 1)) == {"proponent": 20_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_all_issued_basis_sizes_lapse_at_q_plus_b() -> None:
    v = issue("acr", quantity=1_000, buffer=200)  # acr: all_issued, 5-year interval
    rid = v.record_lapse(date(2031, 1, 1))
    assert v.reversals[rid].quantity == 1_200
    assert v.reversals[rid].on == date(2030, 1, 2)


def test_lapse_cure_only_where_profile_allows() -> None:
    cured = issue("verra-vcs", quantity=1_000, buffer=300)
    rid = cured.record_lapse(date(2031, 1, 1))
    assert cured.on_hold_at(date(2030, 1, 2)) == 300  # verra holds buffer credits on lapse
    cured.verify(date(2031, 2, 1))
    assert cured.reversals[rid].cured_on == date(2031, 2, 1)
    assert cured.on_hold_at(date(2031, 1, 31)) == 300
    assert cured.on_hold_at(date(2031, 2, 1)) == 0
    assert cured.due_at(date(2031, 2, 1)) == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert cured.due_at(date(2030, 6, 1)) == {"proponent": 300, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    strict = issue("icvcm-ccp")
    rid = strict.record_lapse(date(2031, 1, 1))
    strict.verify(date(2031, 2, 1))
    assert strict.reversals[rid].cured_on is None
    assert strict.due_at(date(2031, 2, 1)) == {"proponent": 0, "pool": 20_000, "fund": 0, "jurisdiction": 0, "insurer": 0}  # past deadline


def test_retirement_does_not_reduce_exposure_cancellation_does() -> None:
    v = issue()
    v.retire(30_000, date(2026, 1, 1))
    assert v.exposure_at(date(2026, 1, 1)) == 80_000
    v.cancel(10_000, date(2027, 1, 1))
    assert v.exposure_at(date(2026, 12, 31)) == 80_000
    assert v.exposure_at(date(2027, 1, 1)) == 70_000
    with pytest.raises(InvalidCommand, match="only 40000 credits are outstanding"):
        v.retire(40_001, date(2028, 1, 1))


def test_unavoidable_reversal_owed_by_pool_and_buffer_compensation() -> None:
    v = issue()
    result = v.record_reversal(date(2030, 8, 1), 5_000, "wildfire")
    assert result == ("R1", "unavoidable")
    assert v.due_at(date(2030, 8, 1)) == {"proponent": 0, "pool": 5_000, "fund": 0, "jurisdiction": 0, "insurer": 0}
    v.compensate("R1", "buffer", 2_000, date(2030, 9, 1))
    assert v.due_at(date(2030, 9, 1)) == {"proponent": 0, "pool": 3_000, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert v.buffer_cancelled_at(date(2030, 9, 1)) == 2_000
    with pytest.raises(InvalidCommand, match="exceeds the 3,000 still due"):
        v.compensate("R1", "buffer", 3_001, date(2030, 9, 2))
    with pytest.raises(UnknownReversal):
        v.compensate("R9", "buffer", 1, date(2030, 9, 2))


def test_proponent_default_moves_avoidable_reversal_to_pool_after_deadline() -> None:
    v = issue()  # icvcm-ccp: 365-day surrender deadline
    v.record_reversal(date(2030, 1, 1), 1_000, "harvest")
    v.compensate("R1", "proponent", 400, date(2030, 6, 1))
    assert v.due_at(date(2031, 1, 1)) == {"proponent": 600, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert v.due_at(date(2031, 1, 2)) == {"proponent": 0, "pool": 600, "fund": 0, "jurisdiction": 0, "insurer": 0}
    with pytest.raises(NothingToDo):
        v.record_default("R1", date(2031, 1, 1))
    v.record_default("R1", date(2031, 5, 5))
    assert v.reversals["R1"].defaulted_on == date(2031, 1, 2)


@pytest.mark.parametrize(
    ("cause", "flags", "expected"),
    [
        ("wildfire", {}, "unavoidable"),
        ("wildfire", {"negligence": True}, "avoidable"),
        ("storm", {"wilful": True}, "avoidable"),
        ("harvest", {}, "avoidable"),
        ("cessation", {}, "avoidable"),
        ("model-error", {}, "computational"),
        ("pest", {"within_control": True}, "avoidable"),
    ],
)
def test_classification(cause: str, flags: dict[str, bool], expected: str) -> None:
    assert classify(cause, **flags) == expected


def test_override_can_never_make_proponent_cause_unavoidable() -> None:
    assert classify("harvest", overrides={"harvest": "unavoidable"}) == "avoidable"
    assert classify("drought", overrides={"drought": "avoidable"}) == "avoidable"


def test_invariants_rejected_before_any_event() -> None:
    v = issue()
    v.collect_events()
    with pytest.raises(InvalidCommand, match="before the issuance date"):
        v.verify(date(2024, 12, 31))
    with pytest.raises(InvalidCommand, match="exceeds the 80,000 t still exposed"):
        v.record_reversal(date(2030, 1, 1), 100_001, "storm")
    with pytest.raises(InvalidCommand, match="whole number"):
        v.retire(1.5, date(2030, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidCommand, match="positive"):
        v.retire(-3, date(2030, 1, 1))
    with pytest.raises(InvalidCommand, match="cause"):
        v.record_reversal(date(2030, 1, 1), 1, "aliens")
    with pytest.raises(InvalidCommand, match="only audit facts"):
        v.record_reversal(date(2065, 1, 1), 1, "storm")
    assert v.collect_events() == []


def test_nothing_but_audit_facts_after_period_end() -> None:
    v = issue()
    v.record_reversal(date(2064, 1, 1), 100, "harvest")
    v.end_period(date(2065, 1, 1))
    assert v.status_at(date(2065, 1, 1)) == "ended"
    with pytest.raises(InvalidCommand, match="only audit facts"):
        v.retire(1, date(2065, 6, 1))
    v.retire(1, date(2064, 6, 1))  # dated within the period: the recorded end changes nothing
    v.compensate("R1", "proponent", 100, date(2065, 3, 1))  # settling is an audit fact
    v.verify(date(2065, 2, 1))
    assert v.due_at(date(2065, 3, 1)) == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_crediting_period_clock_whichever_later() -> None:
    v = issue("verra-vcs", crediting_start=date(2020, 1, 1), crediting_end=date(2070, 1, 1))
    assert v.clock_start == date(2020, 1, 1)
    assert v.period_end == date(2070, 1, 1)  # later than 2060-01-01
    assert v.exposure_at(date(2024, 6, 1)) == 0  # not yet issued


def test_transfer_moves_exposure_off_the_pool() -> None:
    v = issue()
    v.transfer_liability("State Permanence Fund", "fund", date(2040, 1, 1))
    assert v.exposure_at(date(2039, 12, 31)) == 80_000
    assert v.exposure_at(date(2040, 1, 1)) == 0
    assert v.transferred_at(date(2040, 1, 1)) == 80_000
    assert v.bearer_at(date(2040, 1, 1)) == "State Permanence Fund"


def test_sandbox_label() -> None:
    v = issue()
    v.label_sandbox("CCP-I", "novel soil-carbon model", date(2025, 2, 1))
    assert v.summary(date(2025, 2, 1))["labels"] == [
        {"label": "CCP-I", "innovation": "novel soil-carbon model"}]


def test_unknown_program() -> None:
    with pytest.raises(UnknownProgram, match="unknown program 'nope'"):
        CATALOG.get("nope")


def _profile_data(**changes: object) -> dict[str, object]:
    data = CATALOG.get("icvcm-ccp").model_dump(mode="json")
    data.update(name="my-registry", **changes)
    return data


def test_profile_below_ccp_floor_rejected_naming_rule() -> None:
    data = _profile_data()
    data["period_years"] = {"value": 30, "source": "x", "confidence": "V"}
    with pytest.raises(ProfileRejected, match="period_years 30 is under 40"):
        parse_profile(data, "mine.json")
    data = _profile_data()
    data["liability_basis"] = {"value": "none", "source": "x", "confidence": "V"}
    with pytest.raises(ProfileRejected, match="weaker than 'buffer_contribution'"):
        parse_profile(data, "mine.json")
    data = _profile_data(ccp_aligned=False)
    data["classification_overrides"] = {"value": {"harvest": "unavoidable"}, "source": "x",
                                        "confidence": "V"}
    with pytest.raises(ProfileRejected, match="'harvest' cannot be unavoidable"):
        parse_profile(data, "mine.json")


def test_registry_profile_file_joins_catalog_and_shares_a_pool(tmp_path: Path) -> None:
    data = _profile_data(pool="industry-pool", ccp_aligned=False)
    path = tmp_path / "my-registry.json"
    path.write_text(json.dumps(data))
    catalog = ProfileCatalog.load([path])
    assert catalog.get("my-registry").pool_name == "industry-pool"
    assert "icvcm-ccp" in catalog.names()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileRejected, match="bad.json: not JSON"):
        ProfileCatalog.load([bad])


def test_every_shipped_profile_cites_sources() -> None:
    names = set(CATALOG.names())
    assert {"icvcm-ccp", "verra-vcs", "acr", "car-forest", "carb-forest", "gold-standard",
            "puro"} <= names
    for profile in CATALOG:
        for rule, _value, confidence, source in profile.rule_table():
            assert confidence in "VSM" and source, (profile.name, rule)


def test_streams_stored_under_the_published_topics_still_load() -> None:
    """Stored events name their classes by topic: a database written before the vintage's
    code was split across modules names ``ledger.vintage:Vintage`` and ``ledger.events:*``."""
    from eventsourcing.persistence import StoredEvent

    from ledger.mapper import PydanticMapper

    mapper = PydanticMapper()
    v = issue()
    v.verify(date(2026, 6, 1))
    v.retire(1_000, date(2026, 7, 1))
    written = [mapper.to_stored_event(e) for e in v.collect_events()]
    assert [s.topic for s in written] == [
        "ledger.events:Issued", "ledger.events:Verified", "ledger.events:Retired"]
    assert json.loads(written[0].state)["originator_topic"] == "ledger.vintage:Vintage"
    # rows as an older database holds them: the topics spelled out, not computed
    rows = [StoredEvent(s.originator_id, s.originator_version, f"ledger.events:{name}", s.state)
            for s, name in zip(written, ("Issued", "Verified", "Retired"), strict=True)]
    loaded = None
    for row in rows:
        loaded = mapper.to_domain_event(row).mutate(loaded)
    assert isinstance(loaded, Vintage)
    assert loaded.verifications == [date(2026, 6, 1)]
    assert loaded.outstanding_credits == 80_000 - 1_000
    assert loaded.summary(date(2027, 1, 1)) == v.summary(date(2027, 1, 1))
