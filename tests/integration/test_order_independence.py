"""Order does not matter (domain.md s.4): the same facts, recorded in any order with sweeps
run on any days between them, give the figures they give recorded in date order with one
sweep at the end. On SQLite and PostgreSQL.

Hypothesis draws a few vintages across profiles with issuances, verifications, reversals,
compensations, cancellations, retirements, transfers and insurance that are valid together;
one ledger records them in date order and sweeps once, another records them shuffled (each
fact still after what it refers to) with sweeps at random business dates. Liabilities,
buffer, run-off and every vintage's ``show`` are compared on a grid of dates.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permanence.config import Settings
from permanence.runtime import Runtime
from projections.queries import Filters, buffer, liabilities
from projections.runoff import runoff
from scheduler.sweep import sweep
from tests.support import PG_BASE, pg_connect, require_postgres

TODAY = date(2026, 11, 30)
START = date(2000, 1, 1)


@dataclass
class Fact:
    """One thing to record: ``kind`` on ``on`` for vintage ``vid`` (``ref``: the reversal a
    compensation settles, by its index among the generated facts)."""

    kind: str
    on: date
    vid: str
    args: dict[str, Any] = field(default_factory=dict)
    ref: int | None = None


def _day(lo: date, hi: date) -> st.SearchStrategy[date]:
    return st.integers(0, max(0, (hi - lo).days)).map(lambda n: lo + timedelta(days=n))


@st.composite
def ledgers(draw: st.DrawFn) -> list[Fact]:
    facts: list[Fact] = []
    for n in range(draw(st.integers(1, 3))):
        vid = str(uuid.UUID(int=n + 1))
        program = draw(st.sampled_from(["icvcm-ccp", "verra-vcs", "acr", "car-forest"]))
        quantity = draw(st.integers(10, 40)) * 100
        on = draw(_day(START, date(2014, 12, 31)))
        facts.append(Fact("issue", on, vid, {"program": program, "quantity": quantity,
                                             "buffer": quantity // 5, "project": f"P{n % 2}"}))
        later = _day(on, TODAY)
        for _ in range(draw(st.integers(0, 4))):
            facts.append(Fact("verify", draw(later), vid))
        # small enough that every cap holds in every order
        for _ in range(draw(st.integers(0, 2))):
            facts.append(Fact("cancel", draw(later), vid, {"quantity": quantity // 10}))
        if draw(st.booleans()):
            facts.append(Fact("retire", draw(later), vid, {"quantity": quantity // 10}))
        transfer = draw(st.sampled_from([None, None, "plain", "monitoring"]))
        if transfer:
            facts.append(Fact("transfer", draw(later), vid, {"monitoring": transfer == "monitoring"}))
        insured = draw(st.booleans())
        if insured:
            start = draw(later)
            facts.append(Fact("insure", start, vid, {
                "until": start + timedelta(days=draw(st.integers(0, 20_000))),
                "limit": draw(st.integers(1, 3)) * 100}))
        for _ in range(draw(st.integers(0, 2))):
            cause = draw(st.sampled_from(["wildfire", "harvest", "model-error"]))
            day = draw(later)
            facts.append(Fact("reversal", day, vid, {"quantity": quantity // 20, "cause": cause}))
            index = len(facts) - 1
            # the buffer pays only what the pool owes: no transferee, no insurer
            pool_owes = cause == "wildfire" and not transfer and not insured
            routes = ["proponent"] + (["buffer"] if pool_owes else [])
            if draw(st.booleans()):
                facts.append(Fact("compensate", draw(_day(day, TODAY)), vid, {
                    "route": draw(st.sampled_from(routes)),
                    "quantity": draw(st.integers(1, quantity // 20))}, ref=index))
    return facts


def record(rt: Runtime, facts: list[Fact], order: list[int],
           sweeps: dict[int, date]) -> None:
    """Record ``facts`` in ``order``, sweeping after position i on ``sweeps[i]``."""
    ids: dict[int, str] = {}
    app = rt.app
    for position, i in enumerate(order):
        f = facts[i]
        a = f.args
        if f.kind == "issue":
            app.issue(vintage_id=f.vid, program=a["program"], project=a["project"],
                      quantity=a["quantity"], buffer=a["buffer"], on=f.on)
        elif f.kind == "verify":
            app.verify(f.vid, f.on)
        elif f.kind == "cancel":
            app.cancel(f.vid, a["quantity"], f.on)
        elif f.kind == "retire":
            app.retire(f.vid, a["quantity"], f.on)
        elif f.kind == "transfer":
            app.transfer_liability(f.vid, "Fund", "fund", f.on, monitoring=a["monitoring"])
        elif f.kind == "insure":
            app.insure([f.vid], "Re", f.on, a["until"], a["limit"])
        elif f.kind == "reversal":
            ids[i] = app.record_reversal(f.vid, f.on, a["quantity"], a["cause"])["reversal_id"]
        elif f.kind == "compensate":
            assert f.ref is not None
            app.compensate(f.vid, ids[f.ref], a["route"], a["quantity"], f.on)
        if position in sweeps:
            sweep(rt, sweeps[position])
    sweep(rt, TODAY)
    rt.refresh()


_KIND_ORDER = {"issue": 0, "reversal": 2, "compensate": 3}


def date_order(facts: list[Fact]) -> list[int]:
    return sorted(range(len(facts)), key=lambda i: (facts[i].on, _KIND_ORDER.get(facts[i].kind, 1), i))


def shuffled(facts: list[Fact], priority: list[int]) -> list[int]:
    """A random order in which each fact still follows its issuance and its reversal."""
    pending = sorted(range(len(facts)), key=lambda i: priority[i])
    done: set[int] = set()
    issued: set[str] = set()
    order: list[int] = []
    while pending:
        for i in pending:
            f = facts[i]
            if f.kind == "issue" or (f.vid in issued and (f.ref is None or f.ref in done)):
                break
        pending.remove(i)
        done.add(i)
        order.append(i)
        if facts[i].kind == "issue":
            issued.add(facts[i].vid)
    return order


def figures(rt: Runtime, facts: list[Fact]) -> dict[str, Any]:
    days = sorted({START, TODAY, date(2060, 1, 1), date(2080, 6, 1)}
                  | {f.on for f in facts} | {f.on + timedelta(days=1) for f in facts}
                  | {date(y, 1, 1) for y in range(2000, 2031, 3)})
    out: dict[str, Any] = {}
    for d in days:
        out[f"liabilities {d}"] = liabilities(rt.engine, d, Filters(), None, "pool")
        out[f"buffer {d}"] = buffer(rt.engine, d)
        for vid in sorted({f.vid for f in facts}):
            out[f"show {vid} {d}"] = _comparable(rt.app.show(vid, d))
    for d in (START, date(2010, 1, 1), TODAY):
        out[f"runoff {d}"] = runoff(rt.engine, d)
    return out


def _comparable(shown: dict[str, Any]) -> dict[str, Any]:
    """A vintage's figures, without what records differ in by their order (its version,
    the ids reversals got in recording order)."""
    shown = dict(shown)
    shown.pop("version", None)
    shown["reversals"] = sorted(
        ({k: v for k, v in r.items() if k != "reversal_id"} for r in shown.get("reversals", [])),
        key=lambda r: sorted((k, str(v)) for k, v in r.items()),
    )
    return shown


@contextmanager
def sqlite_ledger(folder: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(db=str(folder / f"{uuid.uuid4().hex}.db"), today=TODAY))
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def postgres_ledger() -> Iterator[Runtime]:
    schema = f"o_{uuid.uuid4().hex[:12]}"
    conn: Any = pg_connect()
    conn.execute(f"CREATE SCHEMA {schema}")
    rt = Runtime(Settings(db=f"{PG_BASE}?schema={schema}", today=TODAY))
    try:
        yield rt
    finally:
        rt.close()
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def check_same_figures(open_ledger: Callable[[], Any], facts: list[Fact], priority: list[int],
                       sweep_days: dict[int, date]) -> None:
    with open_ledger() as in_date_order:
        record(in_date_order, facts, date_order(facts), {})
        expected = figures(in_date_order, facts)
    with open_ledger() as shuffled_ledger:
        record(shuffled_ledger, facts, shuffled(facts, priority), sweep_days)
        got = figures(shuffled_ledger, facts)
    for key in expected:
        assert got[key] == expected[key], key


def _priorities(facts: list[Fact]) -> st.SearchStrategy[list[int]]:
    return st.permutations(list(range(len(facts))))


scenario = st.data()
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


@settings(max_examples=30, deadline=None, suppress_health_check=SLOW)
@given(facts=ledgers(), data=st.data())
def test_figures_do_not_depend_on_recording_order_sqlite(
    tmp_path: Path, facts: list[Fact], data: st.DataObject
) -> None:
    priority = data.draw(_priorities(facts))
    sweep_days = data.draw(st.dictionaries(st.integers(0, len(facts) - 1), _day(START, TODAY),
                                           max_size=4))
    check_same_figures(lambda: sqlite_ledger(tmp_path), facts, priority, sweep_days)


@settings(max_examples=8, deadline=None, suppress_health_check=SLOW)
@given(facts=ledgers(), data=st.data())
def test_figures_do_not_depend_on_recording_order_postgres(
    facts: list[Fact], data: st.DataObject
) -> None:
    require_postgres()
    priority = data.draw(_priorities(facts))
    sweep_days = data.draw(st.dictionaries(st.integers(0, len(facts) - 1), _day(START, TODAY),
                                           max_size=4))
    check_same_figures(postgres_ledger, facts, priority, sweep_days)
