"""Finding vintages: listings with filters and keyset pages, and ids given by a prefix.

Scenario (issued in this order, so issuance order is A1, A2, B, C, D1, D2):

- A1, A2: icvcm-ccp, project "Mangrove A", 2025-01-01 and 2025-06-01, 80,000 / 20,000 each;
  ids ``aaaaaaaa-...-01`` and ``-02`` share a 9-character prefix (ambiguous); A2 carries
  the CCP-I label.
- B: car-forest, project "Forest B", 2026-03-01, 10,000 / 2,000; its liability is
  transferred to a jurisdiction (status ``transferred``).
- C: acr, project "Forest C", 2024-05-01, 1,000 / 300.
- D1, D2: car-forest, project "Forest B", 2026-06-01, 500 / 100 each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from permanence.cli.main import app as cli_app
from permanence.config import Settings
from permanence.http.app import create_app
from permanence.runtime import Runtime
from projections.listings import VintageFilters, list_pools, list_projects, list_vintages
from tests.support import running

A1 = "aaaaaaaa-0000-4000-8000-000000000001"
A2 = "aaaaaaaa-0000-4000-8000-000000000002"
ENV = {"PERMANENCE_TODAY": "2026-11-30"}


@dataclass
class Ledger:
    b: str
    c: str
    d1: str
    d2: str

    @property
    def order(self) -> list[str]:
        return [A1, A2, self.b, self.c, self.d1, self.d2]


def build(rt: Runtime) -> Ledger:
    app = rt.app
    app.issue(program="icvcm-ccp", project="Mangrove A", quantity=80_000, buffer=20_000,
              on=date(2025, 1, 1), vintage_year=2024, vintage_id=A1)
    app.issue(program="icvcm-ccp", project="Mangrove A", quantity=80_000, buffer=20_000,
              on=date(2025, 6, 1), vintage_year=2024, vintage_id=A2)
    app.label_sandbox(A2, "CCP-I", "biochar", date(2025, 7, 1))
    b = app.issue(program="car-forest", project="Forest B", quantity=10_000, buffer=2_000,
                  on=date(2026, 3, 1), vintage_year=2025)
    app.transfer_liability(b, "State of X", "jurisdiction", date(2026, 4, 1))
    c = app.issue(program="acr", project="Forest C", quantity=1_000, buffer=300,
                  on=date(2024, 5, 1))
    d1 = app.issue(program="car-forest", project="Forest B", quantity=500, buffer=100,
                   on=date(2026, 6, 1))
    d2 = app.issue(program="car-forest", project="Forest B", quantity=500, buffer=100,
                   on=date(2026, 6, 1))
    return Ledger(b, c, d1, d2)


@pytest.fixture
def ledger(runtime: Runtime) -> Ledger:
    return build(runtime)


def ids(page: dict[str, Any]) -> list[str]:
    return [v["vintage_id"] for v in page["vintages"]]


# ---------------------------------------------------------------------- the query


def test_filters(runtime: Runtime, ledger: Ledger) -> None:
    engine = runtime.engine
    assert ids(list_vintages(engine)) == ledger.order
    assert ids(list_vintages(engine, VintageFilters(program="icvcm-ccp"))) == [A1, A2]
    assert ids(list_vintages(engine, VintageFilters(pool="car-forest"))) == [
        ledger.b, ledger.d1, ledger.d2]
    assert ids(list_vintages(engine, VintageFilters(project="Forest C"))) == [ledger.c]
    assert ids(list_vintages(engine, VintageFilters(status="transferred"))) == [ledger.b]
    assert ids(list_vintages(engine, VintageFilters(status="monitored"))) == [
        A1, A2, ledger.c, ledger.d1, ledger.d2]
    assert ids(list_vintages(engine, VintageFilters(label="CCP-I"))) == [A2]
    assert ids(list_vintages(engine, VintageFilters(label="CCP"))) == []
    assert ids(list_vintages(engine, VintageFilters(as_of=date(2025, 1, 1)))) == [A1, ledger.c]
    assert ids(list_vintages(engine, VintageFilters(program="car-forest",
                                                    as_of=date(2026, 5, 31)))) == [ledger.b]
    row = list_vintages(engine, VintageFilters(label="CCP-I"))["vintages"][0]
    assert row == {
        "vintage_id": A2, "program": "icvcm-ccp", "pool": "icvcm-ccp", "project": "Mangrove A",
        "vintage_year": 2024, "quantity": 80_000, "buffer": 20_000, "issued_on": "2025-06-01",
        "period_end": row["period_end"], "status": "monitored", "reversible": True,
        "labels": ["CCP-I"],
    }
    assert list_projects(engine) == [
        {"project": "Forest B", "vintages": 3, "issued": 11_000},
        {"project": "Forest C", "vintages": 1, "issued": 1_000},
        {"project": "Mangrove A", "vintages": 2, "issued": 160_000},
    ]
    assert list_pools(engine) == [
        {"pool": "acr", "vintages": 1, "contributions": 300},
        {"pool": "car-forest", "vintages": 3, "contributions": 2_200},
        {"pool": "icvcm-ccp", "vintages": 2, "contributions": 40_000},
    ]


@pytest.mark.parametrize("limit", [1, 2, 4, 6, 7])
def test_pages_have_no_gaps_or_duplicates(runtime: Runtime, ledger: Ledger, limit: int) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = list_vintages(runtime.engine, limit=limit, cursor=cursor)
        assert len(page["vintages"]) <= limit
        seen += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # a vintage issued between pages comes last, never shifts what is still to come
        if pages == 1:
            late = runtime.app.issue(program="acr", project="Late", quantity=10, buffer=3,
                                     on=date(2026, 1, 1))
    assert seen == [*ledger.order, late] if limit < 6 else ledger.order
    assert pages == -(-len(seen) // limit)


# ---------------------------------------------------------------------- the CLI


def cli(db_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli_app, ["--db", db_url, *args], env=ENV)


def test_cli_lists_and_resolves_prefixes(db_url: str, runtime: Runtime, ledger: Ledger) -> None:
    table = cli(db_url, "vintages", "--pool", "car-forest")
    assert table.exit_code == 0, table.output
    header, rule, *lines = table.output.splitlines()
    assert header.split()[:3] == ["id", "program", "pool"]
    assert set(rule) == {"─"}  # the table's rule under its header
    assert [line.split()[0] for line in lines] == [ledger.b[:8], ledger.d1[:8], ledger.d2[:8]]
    assert "transferred" in lines[0] and "10,000" in lines[0]

    import json

    seen: list[str] = []
    cursor: list[str] = []
    while True:
        done = cli(db_url, "vintages", "--limit", "4", *cursor, "--json")
        assert done.exit_code == 0, done.output
        page = json.loads(done.output)
        seen += ids(page)
        if page["next_cursor"] is None:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert seen == ledger.order
    assert "more: --cursor" in cli(db_url, "vintages", "--limit", "2").output

    # a unique prefix works for reads and writes; the history names the full id
    short = ledger.c[:8]
    shown = cli(db_url, "show", short, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["vintage_id"] == ledger.c
    history = cli(db_url, "history", ledger.c[:13])
    assert history.exit_code == 0 and history.output.startswith(f"vintage {ledger.c}\n")
    retired = cli(db_url, "retire", "--vintage", short.upper(), "--quantity", "10",
                  "--on", "2026-01-01")
    assert retired.exit_code == 0, retired.output
    assert runtime.app.show(ledger.c, date(2026, 11, 30))["retired"] == 10

    ambiguous = cli(db_url, "show", "aaaaaaaa")
    assert ambiguous.exit_code == 1
    assert ambiguous.output.count("\n") == 1 and A1 in ambiguous.output and A2 in ambiguous.output
    assert "ambiguous" in ambiguous.output
    short_one = cli(db_url, "show", "aaaaaaa")
    assert short_one.exit_code == 1 and "too short" in short_one.output
    assert short_one.output.count("\n") == 1
    unknown = cli(db_url, "verify", "--vintage", "bbbbbbbb", "--on", "2026-01-01")
    assert unknown.exit_code == 1 and "no vintage id starts with bbbbbbbb" in unknown.output

    for args, field in ((["--status", "retired"], "status:"), (["--cursor", "x"], "cursor:"),
                        (["--limit", "0"], "limit:"), (["--as-of", "2026-13-01"], "as-of")):
        bad = cli(db_url, "vintages", *args)
        assert bad.exit_code == 2, (args, bad.output)
        assert field in bad.output and bad.output.count("\n") == 1, bad.output


# ---------------------------------------------------------------------- HTTP


@pytest.fixture
def client(db_url: str) -> Iterator[httpx.Client]:
    with running(create_app(Settings(db=db_url))) as c:
        yield c


@pytest.mark.slow
def test_http_lists_and_resolves_prefixes(client: httpx.Client, ledger: Ledger) -> None:
    def get(path: str, **params: Any) -> Any:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert ids(get("/vintages")) == ledger.order
    assert ids(get("/vintages", program="car-forest", as_of="2026-05-31")) == [ledger.b]
    assert ids(get("/vintages", status="transferred")) == [ledger.b]
    assert ids(get("/vintages", label="CCP-I")) == [A2]
    assert ids(get("/vintages", project="Forest B", pool="car-forest")) == [
        ledger.b, ledger.d1, ledger.d2]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = get("/vintages", **params)
        seen += ids(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ledger.order
    assert [p["project"] for p in get("/projects")] == ["Forest B", "Forest C", "Mangrove A"]
    assert get("/pools")[1] == {"pool": "car-forest", "vintages": 3, "contributions": 2_200}

    assert get(f"/vintages/{ledger.c[:8]}")["vintage_id"] == ledger.c
    assert get(f"/vintages/{ledger.c[:8]}/history")["vintage_id"] == ledger.c
    assert get(f"/vintages/{ledger.b[:12]}")["vintage_id"] == ledger.b

    ambiguous = client.get("/vintages/aaaaaaaa")
    assert ambiguous.status_code == 400
    assert A1 in ambiguous.json()["detail"] and A2 in ambiguous.json()["detail"]
    assert client.get("/vintages/aaaa/history").status_code == 404
    assert "too short" in client.get("/vintages/aaaa").json()["detail"]
    assert client.get("/vintages/bbbbbbbb").status_code == 404

    for params, field in (({"status": "retired"}, "status"), ({"cursor": "x"}, "cursor"),
                          ({"limit": 0}, "limit"), ({"as_of": "2026-13-01"}, "as_of"),
                          ({"state": "lapsed"}, "state")):
        bad = client.get("/vintages", params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert field in bad.text, bad.text
