"""Property: no sequence of commands, valid or not, ever breaks a vintage's invariants."""

from __future__ import annotations

import contextlib
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


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CATALOG.names()),
    st.lists(st.integers(min_value=1, max_value=40 * 365), max_size=12),
    st.lists(st.integers(min_value=1, max_value=40 * 365), max_size=40),
    st.integers(min_value=0, max_value=3),
)
def test_decisive_verifications_imply_what_all_of_them_do(
    program: str, recorded: list[int], implied: list[int], retire_share: int
) -> None:
    """Recording only the decisive implied verifications leaves the lapses (day, amount,
    missed due date), their cures, and every figure as of the last verification and later
    as recording all of them (issue 17: the importer's implied verification history)."""
    from ledger.errors import NothingToDo
    from ledger.lapses import cure_date, decisive_verifications

    profile = CATALOG.get(program)
    start = date(2001, 3, 1)
    vid = uuid4()

    def fresh() -> Vintage:
        v = Vintage.issue(vintage_id=vid, program=profile.name, pool=profile.pool_name,
                          project="P", quantity=40_000, buffer=10_000, on=start,
                          rules=profile.rules(), enforce_minimum_buffer=False)
        if retire_share:  # exposure changes within the period: lapse amounts scale with it
            v.cancel(10_000 * retire_share, start + timedelta(days=3000))
        for n in sorted(set(recorded)):
            v.verify(start + timedelta(days=n))
        return v

    every, fewer = fresh(), fresh()
    candidates = sorted({start + timedelta(days=n) for n in implied})
    candidates = [d for d in candidates if d < every.period_end]
    for d in candidates:
        if d not in every.verifications:
            every.verify(d)
    chosen = decisive_verifications(
        issued_on=fewer.issued_on, period_end=fewer.period_end,
        recorded=frozenset(fewer.verifications), candidates=candidates,
        interval_years=fewer.rules.verification_interval_years, grace_days=fewer.rules.grace_days)
    assert set(chosen) <= set(candidates) - set(fewer.verifications)
    for d in chosen:
        fewer.verify(d)
    for v in (every, fewer):  # the sweep records what each says arose
        with contextlib.suppress(NothingToDo):
            v.record_lapses(date(2199, 12, 31))
    assert fewer.expected_lapses() == every.expected_lapses()
    for lapse in every.expected_lapses():
        assert cure_date(lapse.on, fewer.verifications) == cure_date(lapse.on, every.verifications)
    assert fewer.last_verified == every.last_verified
    last = every.last_verified or start
    for t in (last, last + timedelta(days=400), every.period_end, date(2199, 12, 31)):
        mine, theirs = fewer.summary(t), every.summary(t)
        mine.pop("version"), theirs.pop("version")
        assert mine == theirs
