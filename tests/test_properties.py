"""Property: no sequence of commands, valid or not, ever breaks a vintage's invariants."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.profiles import ProfileCatalog
from ledger.vintage import Vintage

CATALOG = ProfileCatalog.load()
START = date(2025, 1, 1)

days = st.integers(min_value=-30, max_value=365 * 110).map(lambda n: START + timedelta(days=n))
amounts = st.integers(min_value=-5, max_value=150_000)
commands = st.one_of(
    st.tuples(st.just("verify"), days),
    st.tuples(st.just("reversal"), days, amounts, st.sampled_from(["wildfire", "harvest", "model-error", "storm"])),
    st.tuples(st.just("compensate"), days, amounts, st.sampled_from(["R1", "R2", "L1", "L2", "L3"]),
              st.sampled_from(["buffer", "proponent", "insurance", "deduction"])),
    st.tuples(st.just("retire"), days, amounts),
    st.tuples(st.just("cancel"), days, amounts),
    st.tuples(st.just("lapse"), days),
    st.tuples(st.just("default"), days, st.sampled_from(["R1", "R2", "L1", "L2"])),
    st.tuples(st.just("end"), days),
    st.tuples(st.just("transfer"), days),
)


def apply(v: Vintage, cmd: tuple) -> None:  # type: ignore[type-arg]
    kind, day, *rest = cmd
    if kind == "verify":
        v.verify(day)
    elif kind == "reversal":
        v.record_reversal(day, rest[0], rest[1])
    elif kind == "compensate":
        v.compensate(rest[1], rest[2], rest[0], day)
    elif kind == "retire":
        v.retire(rest[0], day)
    elif kind == "cancel":
        v.cancel(rest[0], day)
    elif kind == "lapse":
        v.record_lapse(day)
    elif kind == "default":
        v.record_default(rest[0], day)
    elif kind == "end":
        v.end_period(day)
    elif kind == "transfer":
        v.transfer_liability("Fund", "fund", day)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CATALOG.names()), st.lists(commands, max_size=25), days)
def test_random_commands_never_break_an_invariant(program: str, cmds: list, probe: date) -> None:  # type: ignore[type-arg]
    p = CATALOG.get(program)
    v = Vintage.issue(vintage_id=uuid4(), program=p.name, pool=p.pool_name, project="P",
                      quantity=100_000, buffer=25_000, on=START, rules=p.rules())
    for cmd in cmds:
        version = v.version
        try:
            apply(v, cmd)
            v.correct()  # as the application does after every command
        except LedgerError:
            assert v.version == version  # a rejected command raised no event
    issued = v.quantity + v.buffer
    assert 0 <= v.outstanding_credits <= v.quantity
    assert 0 <= v.on_hold <= v.buffer
    # carbon reversed never exceeds the credits exposed; a lapse is a liability, not carbon
    assert sum(r.quantity for r in v.reversals.values() if r.active and not r.lapse) <= v.quantity
    assert all(r.quantity <= issued for r in v.reversals.values() if r.lapse)
    assert sum(1 for r in v.reversals.values() if r.lapse and r.active and r.cured_on is None) <= 1
    for r in v.reversals.values():
        # a lapse revised down by a later-recorded cancellation may stand over-compensated
        assert 0 <= r.compensated and (r.lapse or r.compensated <= r.quantity)
        assert r.on >= v.issued_on
        assert all(d >= r.on for d, _, _ in r.compensations)
    assert 0 <= v.exposure_at(probe) <= v.quantity
    assert all(x >= 0 for x in v.due_at(probe).values())
    if probe >= v.period_end or probe < v.issued_on:
        assert v.exposure_at(probe) == 0
    # replaying the recorded events rebuilds the same state
    events = v.collect_events()
    replayed = events[0].mutate(None)
    for e in events[1:]:
        e.mutate(replayed)
    assert replayed.summary(probe) == v.summary(probe)
