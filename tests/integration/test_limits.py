"""One set of limits, in the domain: whatever the ledger accepts, its read models can hold.

Hypothesis throws text of every length and character (NUL, terminal escapes, non-BMP
characters), years and quantities at the commands; any event the ledger accepts must then
project on SQLite and PostgreSQL alike (PostgreSQL refuses NUL and over-long strings that
SQLite keeps), and every refusal is one ``LedgerError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from permanence.config import Settings
from permanence.runtime import Runtime
from projections.queries import liabilities

texts = st.one_of(
    st.text(max_size=260),
    st.text(st.characters(codec="utf-8"), min_size=195, max_size=205),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=60,
            max_size=420),
    st.sampled_from([63, 64, 65, 99, 100, 101, 199, 200, 201, 399, 400, 401, 2_000, 2_001]).map(
        lambda n: "é" * n),
    st.sampled_from(["\x00", "a\x1b[31mred", "tab\there", "line\nbreak", "ok", " ", "é" * 64]),
)
years = st.one_of(st.none(), st.integers(-10, 10**31), st.integers(1890, 2210))


@pytest.fixture
def ledger(db_url: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(db=db_url, today=date(2026, 11, 30)))
    try:
        yield rt
    finally:
        rt.close()


def attempt(action: Any) -> None:
    try:
        action()
    except LedgerError:
        pass


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(project=texts, pool=texts, serial=texts, risk_class=texts, year=years, to=texts,
       label=texts, note=texts, quantity=st.integers(-1, 10**13))
def test_anything_accepted_projects(
    ledger: Runtime, project: str, pool: str, serial: str, risk_class: str, year: int | None,
    to: str, label: str, note: str, quantity: int,
) -> None:
    app = ledger.app
    vid: list[str] = []
    attempt(lambda: vid.append(app.issue(
        program="icvcm-ccp", project=project, pool=pool, serial_first=serial, serial_last=serial,
        risk_class=risk_class, vintage_year=year, quantity=quantity, buffer=0,
        on=date(2020, 1, 1))))
    if not vid:
        vid.append(app.issue(program="icvcm-ccp", project="P", quantity=100, buffer=25,
                             on=date(2020, 1, 1)))
    v = vid[0]
    attempt(lambda: app.transfer_liability(v, to, "fund", date(2021, 1, 1)))
    attempt(lambda: app.insure([v], to, date(2021, 1, 1), date(2030, 1, 1), 10))
    attempt(lambda: app.label_sandbox(v, label, note, date(2021, 1, 1)))
    attempt(lambda: app.note(v, note, date(2021, 1, 1)))
    attempt(lambda: app.cancel(v, 1, date(2021, 1, 2), note))
    ledger.refresh()  # raises if a row does not fit
    assert ledger.projector.lag() == 0
    assert liabilities(ledger.engine, date(2022, 1, 1))["as_of"] == "2022-01-01"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("project", "x" * 201, "project: 201 characters, more than 200"),
    ("project", "bad\x00name", "control character"),
    ("pool", "p" * 65, "pool: 65 characters, more than 64"),
    ("risk_class", "\x1b[2J", "control character"),
    ("vintage_year", 10**30, "outside the years 1900-2200"),
])
def test_limits_name_the_field(ledger: Runtime, field: str, value: Any, message: str) -> None:
    spec: dict[str, Any] = {"program": "icvcm-ccp", "project": "P", "quantity": 100, "buffer": 25,
                            "on": date(2020, 1, 1), field: value}
    with pytest.raises(LedgerError, match=message):
        ledger.app.issue(**spec)
    assert (ledger.app.recorder.max_notification_id() or 0) == 0


FIELDS = [  # (command, field, the domain's limit)
    ("issue", "project", 200), ("issue", "pool", 64), ("issue", "serial_first", 200),
    ("issue", "risk_class", 64), ("issue", "source_key", 400), ("issue", "project_type", 200),
    ("issue", "corresponding_adjustment", 100), ("transfer", "to", 200),
    ("insure", "insurer", 200), ("label", "label", 64), ("note", "text", 2_000),
]


def _record(rt: Runtime, command: str, field: str, value: str) -> None:
    app = rt.app
    if command == "issue":
        spec: dict[str, Any] = {"program": "icvcm-ccp", "project": "P", "quantity": 100,
                                "buffer": 25, "on": date(2020, 1, 1), field: value}
        app.issue(**spec)
        return
    vid = app.issue(program="icvcm-ccp", project="P", quantity=100, buffer=25, on=date(2020, 1, 1))
    if command == "transfer":
        app.transfer_liability(vid, value, "jurisdiction", date(2021, 1, 1))
    elif command == "insure":
        app.insure([vid], value, date(2021, 1, 1), date(2030, 1, 1), 10)
    elif command == "label":
        app.label_sandbox(vid, value, "an innovation", date(2021, 1, 1))
    else:
        app.note(vid, value, date(2021, 1, 1))


@pytest.mark.parametrize(("command", "field", "limit"), FIELDS)
def test_the_longest_accepted_text_fits_every_store(
    ledger: Runtime, command: str, field: str, limit: int
) -> None:
    _record(ledger, command, field, "é" * limit)  # projects (after_save) without error
    assert ledger.projector.lag() == 0
    with pytest.raises(LedgerError, match=f"{field}: {limit + 1:,} characters"):
        _record(ledger, command, field, "é" * (limit + 1))
