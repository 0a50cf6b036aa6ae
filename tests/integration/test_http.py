"""The trustee HTTP API over a real server, on SQLite and PostgreSQL.

Scenario (expected figures worked by hand from domain.md section 4):

- A: icvcm-ccp (pool icvcm-ccp, issuance clock, 40 years), project "Mangrove A", issued
  2025-01-01, Q = 80,000, B = 20,000: exposure 80,000 from 2025-01-01 to 2064-12-31, 0 from
  2065-01-01. Retires 30,000 on 2026-01-01 (no change to exposure). An avoidable reversal
  (harvest) of 1,000 on 2028-02-01 is owed by the proponent and never compensated.
- B: car-forest (pool car-forest, 100 years), project "Forest B", issued 2026-03-01,
  Q = 10,000, B = 2,000: period ends 2126-03-01. A wildfire reversal of 1,500 on 2027-06-01
  is unavoidable (owed by the pool) and compensated from the buffer on 2027-07-01.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from permanence.config import Settings
from permanence.http.app import create_app
from permanence.runtime import Runtime, open_runtime
from tests.support import STARTUP_DEADLINE, build_ledger, get, running

pytestmark = pytest.mark.slow


@pytest.fixture
def server(db_url: str) -> Iterator[httpx.Client]:
    """A real uvicorn server on a free loopback port, in a background thread."""
    with running(create_app(Settings(db=db_url))) as client:
        yield client


def test_trustee_queries_over_http(server: httpx.Client, runtime: Runtime) -> None:
    # Written after the server opened its own runtime: reads must see them.
    ledger = build_ledger(runtime)
    client = server

    # Liabilities: exposure is Q while the period runs, whatever was retired.
    assert get(client, "/liabilities", as_of="2024-12-31")["exposure"] == 0
    assert get(client, "/liabilities", as_of="2025-01-01")["exposure"] == 80_000
    during_fire = get(client, "/liabilities", as_of="2027-06-15")
    assert during_fire["exposure"] == 90_000
    assert during_fire["due"] == {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert during_fire["due_total"] == 1_500
    now = get(client, "/liabilities", as_of="2028-06-01")
    assert (now["exposure"], now["due"], now["due_total"]) == (
        90_000, {"proponent": 1_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 1_000)
    assert now["transferred"] == {}
    assert get(client, "/liabilities", as_of="2064-12-31")["exposure"] == 90_000
    assert get(client, "/liabilities", as_of="2065-01-01")["exposure"] == 10_000

    by_program = get(client, "/liabilities", as_of="2028-06-01", by="program")
    assert by_program["by"] == "program"
    groups = by_program["groups"]
    assert groups["icvcm-ccp"]["exposure"] == 80_000
    assert groups["icvcm-ccp"]["due"] == {"proponent": 1_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert groups["car-forest"]["exposure"] == 10_000
    assert groups["car-forest"]["due_total"] == 0
    only_b = get(client, "/liabilities", as_of="2027-06-15", program="car-forest")
    assert (only_b["exposure"], only_b["due_total"]) == (10_000, 1_500)
    assert get(client, "/liabilities", as_of="2028-06-01", project="Mangrove A")["exposure"] == 80_000
    assert get(client, "/liabilities", as_of="2028-06-01", pool="car-forest")["exposure"] == 10_000

    # known_at: as recorded right after A's issuance, B and the harvest did not exist yet.
    then = get(client, "/liabilities", as_of="2028-06-01", known_at=ledger.known_after_a)
    assert (then["exposure"], then["due_total"]) == (80_000, 0)

    # Buffer: 20,000 + 2,000 contributed, 1,500 cancelled for the fire from 2027-07-01.
    before_comp = get(client, "/buffer", as_of="2027-06-15")
    assert (before_comp["contributions"], before_comp["cancelled"], before_comp["balance"]) == (
        22_000, 0, 22_000)
    buf = get(client, "/buffer", as_of="2028-06-01")
    assert (buf["contributions"], buf["cancelled"], buf["on_hold"], buf["balance"]) == (
        22_000, 1_500, 0, 20_500)
    assert buf["exposure"] == 90_000
    assert buf["coverage_ratio"] == round(20_500 / 90_000, 6)
    pools = {p["pool"]: p for p in buf["pools"]}
    assert pools["car-forest"] == {
        "pool": "car-forest", "contributions": 2_000, "drawn": 1_500, "cancelled": 1_500,
        "on_hold": 0, "balance": 500, "shortfall": 0, "due": 0, "owed": 0, "exposure": 10_000,
        "coverage_ratio": 0.05,
    }
    assert pools["icvcm-ccp"]["balance"] == 20_000
    assert pools["icvcm-ccp"]["coverage_ratio"] == 0.25
    one_pool = get(client, "/buffer", as_of="2028-06-01", pool="icvcm-ccp")
    assert (one_pool["balance"], one_pool["exposure"], one_pool["coverage_ratio"]) == (
        20_000, 80_000, 0.25)
    assert get(client, "/buffer", as_of="2026-01-01", known_at=ledger.known_after_a)[
        "contributions"] == 20_000

    # Run-off: A's 80,000 ends in 2065, B's 10,000 in 2126.
    ladder = get(client, "/runoff", as_of="2028-06-01")
    assert ladder["years"] == [
        {"year": 2065, "exposure_ending": 80_000, "by_bearer": {"icvcm-ccp": 80_000}},
        {"year": 2126, "exposure_ending": 10_000, "by_bearer": {"car-forest": 10_000}}]
    assert ladder["total"] == 90_000
    assert get(client, "/runoff", as_of="2028-06-01", pool="car-forest")["total"] == 10_000
    assert get(client, "/runoff", as_of="2065-01-01")["years"] == [
        {"year": 2126, "exposure_ending": 10_000, "by_bearer": {"car-forest": 10_000}}]

    # One vintage, and its audit trail.
    b = get(client, f"/vintages/{ledger.b}", as_of="2027-06-15")
    assert (b["program"], b["pool"], b["project"]) == ("car-forest", "car-forest", "Forest B")
    assert (b["period_end"], b["exposure"], b["due"]) == (
        "2126-03-01", 10_000, {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0})
    assert [r["classification"] for r in b["reversals"]] == ["unavoidable"]
    a = get(client, f"/vintages/{ledger.a}", as_of="2028-06-01")
    assert (a["period_end"], a["exposure"], a["retired"], a["due"]) == (
        "2065-01-01", 80_000, 30_000, {"proponent": 1_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0})

    trail = get(client, f"/vintages/{ledger.b}/history")
    assert [e["event"] for e in trail["events"]] == ["Issued", "ReversalRecorded", "Compensated"]
    assert trail["events"][-1]["state"]["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    early = get(client, f"/vintages/{ledger.b}/history", as_of="2027-06-15")
    assert [e["event"] for e in early["events"]] == ["Issued", "ReversalRecorded"]
    assert early["events"][-1]["state"]["due"] == {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}
    unknown_then = get(client, f"/vintages/{ledger.b}/history", known_at=ledger.known_after_a)
    assert unknown_then["events"] == []

    # Reference lists.
    assert get(client, "/pools") == [
        {"pool": "car-forest", "vintages": 1, "contributions": 2_000},
        {"pool": "icvcm-ccp", "vintages": 1, "contributions": 20_000},
    ]
    assert get(client, "/projects") == [
        {"project": "Forest B", "vintages": 1, "issued": 10_000},
        {"project": "Mangrove A", "vintages": 1, "issued": 80_000},
    ]
    assert get(client, "/programs") == ["car-forest", "icvcm-ccp"]
    profiles = {p["name"]: p for p in get(client, "/profiles")}
    assert profiles["icvcm-ccp"]["pool"] == "icvcm-ccp"
    assert profiles["icvcm-ccp"]["ccp_aligned"] is True
    assert get(client, "/profiles/icvcm-ccp")["period_years"]["value"] == 40
    health = get(client, "/healthz")
    assert health["status"] == "ok"
    assert health["projection_lag"] == 0


def test_bad_requests_name_the_problem(server: httpx.Client, runtime: Runtime) -> None:
    ledger = build_ledger(runtime)
    client = server

    bad_date = client.get("/liabilities", params={"as_of": "2025-13-01"})
    assert bad_date.status_code == 422
    assert bad_date.json()["detail"].startswith("as_of:")
    assert "2025-13-01" in bad_date.json()["detail"]
    for path in ("/buffer", "/runoff", f"/vintages/{ledger.a}", f"/vintages/{ledger.a}/history"):
        response = client.get(path, params={"as_of": "01/02/2030"})
        assert response.status_code == 422, path
        assert response.json()["detail"].startswith("as_of:"), path

    bad_by = client.get("/liabilities", params={"by": "colour"})
    assert bad_by.status_code == 422
    assert bad_by.json()["detail"].startswith("by:")
    assert "program" in bad_by.json()["detail"]
    bad_known = client.get("/buffer", params={"known_at": "yesterday"})
    assert bad_known.status_code == 422
    assert bad_known.json()["detail"].startswith("known_at:")

    missing = str(uuid.uuid4())
    for path in (f"/vintages/{missing}", f"/vintages/{missing}/history", "/vintages/not-an-id"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "vintage" in response.json()["detail"]
    unknown_profile = client.get("/profiles/no-such-program")
    assert unknown_profile.status_code == 404
    assert "no-such-program" in unknown_profile.json()["detail"]

    # A rejected query writes nothing: the figures are those of the ledger alone.
    assert get(client, "/liabilities", as_of="2028-06-01")["exposure"] == 90_000


def test_docs_and_openapi(server: httpx.Client) -> None:
    docs = server.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = get(server, "/openapi.json")
    for path in ("/liabilities", "/buffer", "/runoff", "/vintages/{vintage_id}",
                 "/vintages/{vintage_id}/history", "/pools", "/programs", "/profiles", "/healthz",
                 "/vintages", "/projects"):
        assert path in spec["paths"], path
    by = next(p for p in spec["paths"]["/liabilities"]["get"]["parameters"] if p["name"] == "by")
    assert by["schema"]["enum"] == ["program", "project", "pool", "vintage-year", "bearer"]
    # An empty ledger answers with zeros, not errors.
    assert get(server, "/liabilities", as_of="2030-01-01")["exposure"] == 0
    assert get(server, "/buffer", as_of="2030-01-01")["coverage_ratio"] is None
    assert get(server, "/pools") == []
    assert get(server, "/projects") == []
    assert get(server, "/vintages") == {"vintages": [], "next_cursor": None}


def test_serve_command_answers(db_url: str) -> None:
    """``permanence serve --port N`` with PERMANENCE_DB set: the CLI path a registry runs."""
    with open_runtime(Settings(db=db_url)) as rt:
        build_ledger(rt)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PERMANENCE_DB": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from permanence.cli import main; main()",
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if proc.poll() is not None:
                output, _ = proc.communicate()
                pytest.fail(f"permanence serve exited {proc.returncode}: {output}")
            try:
                health = httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("permanence serve did not start listening")
                time.sleep(0.1)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        buf = httpx.get(f"{base}/buffer", params={"as_of": "2028-06-01"}).json()
        assert (buf["balance"], buf["exposure"]) == (20_500, 90_000)
    finally:
        proc.terminate()
        proc.wait()
