"""Access control and the write API, on SQLite and PostgreSQL (docs/security.md).

- ``permanence token create`` prints the token once and stores only its SHA-256; ``revoke``
  takes effect on a running server within ``auth.TOKEN_RECHECK_SECONDS``.
- Reads are open until the first active token exists (or ``require_auth``), then every route
  but ``/healthz`` needs a token whose role the route allows; writes always need a
  ``registry`` token. Refused requests (401/403) and malformed ones (422) write nothing.
- Every write records its token (``recorded_by`` = ``token:NAME``) in the audit trail.
- Bodies are size-limited: 413 over 1 MiB of JSON or 50 MiB of CSV, declared or streamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence import tokens as auth
from permanence.config import Settings
from permanence.http import access
from permanence.http.app import create_app
from permanence.runtime import Runtime
from tests.support import FIXTURES, write_acr_file

CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]


def cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PERMANENCE_DB": db})


@dataclass
class Api:
    client: TestClient
    rt: Runtime
    tokens: dict[str, str]

    def events(self) -> int:
        return len(self.rt.app.recorder.select_notifications(start=1, limit=1_000_000))

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    """The app on a fresh ledger, with one token of each role and one revoked."""
    app = create_app(Settings(db=db_url))
    with TestClient(app) as client:
        rt: Runtime = app.state.runtime
        tokens = {role: auth.create_token(rt.engine, f"{role}-1", role)[0] for role in auth.ROLES}
        tokens["revoked"] = auth.create_token(rt.engine, "old-registry", "registry")[0]
        auth.revoke_token(rt.engine, "old-registry")
        tokens["forged"] = auth.new_token()
        yield Api(client, rt, tokens)


def seed(rt: Runtime) -> dict[str, str]:
    """Two vintages of project P1; ``a`` has reversal R1 (wildfire, 100) to compensate."""
    a = rt.app.issue(program="icvcm-ccp", project="P1", quantity=10_000, buffer=2_000,
                     on=date(2025, 1, 1), vintage_year=2024)
    b = rt.app.issue(program="icvcm-ccp", project="P1", quantity=5_000, buffer=1_000,
                     on=date(2025, 6, 1), vintage_year=2024)
    rt.app.record_reversal(a, date(2026, 1, 1), 100, "wildfire")
    return {"a": a, "b": b}


ISSUE = {"program": "icvcm-ccp", "project": "P1", "quantity": 1_000, "buffer": 100,
         "on": "2025-03-01"}


def writes(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    a = ids["a"]
    return [
        ("/vintages", ISSUE),
        (f"/vintages/{a}/verifications", {"on": "2027-01-01", "verifier": "VVB"}),
        ("/projects/P1/verifications", {"on": "2027-02-01"}),
        (f"/vintages/{a}/reversals", {"on": "2027-03-01", "quantity": 10, "cause": "storm"}),
        (f"/vintages/{a}/compensations", {"reversal_id": "R1", "route": "buffer",
                                          "quantity": 100, "on": "2027-04-01"}),
        (f"/vintages/{a}/retirements", {"quantity": 500, "on": "2027-05-01",
                                        "beneficiary": "Acme"}),
        (f"/vintages/{a}/cancellations", {"quantity": 50, "on": "2027-06-01"}),
    ]


# ---------------------------------------------------------------------- tokens


def test_token_cli_prints_once_and_stores_only_the_hash(db_url: str) -> None:
    Runtime(Settings(db=db_url)).close()  # token commands manage an existing ledger's tokens
    made = cli(db_url, "token", "create", "--role", "verifier", "--name", "vvb-1", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    token = data["token"]
    assert token.startswith("pmt_") and len(token) >= 40
    assert (data["name"], data["role"], data["active"]) == ("vvb-1", "verifier", True)
    plain = cli(db_url, "token", "create", "--role", "trustee", "--name", "trust-1")
    assert plain.returncode == 0, plain.stderr
    trustee_token = plain.stdout.splitlines()[0]
    assert trustee_token.startswith("pmt_")

    rt = Runtime(Settings(db=db_url))
    try:
        with rt.engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(select(auth.auth_tokens))}
        assert rows["vvb-1"].token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert all(token not in str(v) for v in rows["vvb-1"])  # the token itself is not stored
    finally:
        rt.close()

    listed = cli(db_url, "token", "list", "--json")
    assert listed.returncode == 0
    assert token not in listed.stdout and rows["vvb-1"].token_hash not in listed.stdout
    assert [(t["name"], t["role"], t["active"]) for t in json.loads(listed.stdout)] == [
        ("vvb-1", "verifier", True), ("trust-1", "trustee", True)]

    # Refusals: exit 2 for malformed input, 1 for a refused command; one line each.
    for args, code in (
        (("create", "--role", "admin", "--name", "x"), 2),
        (("create", "--role", "registry", "--name", "bad name;--"), 2),
        (("create", "--role", "registry", "--name", "vvb-1"), 1),
        (("revoke", "nobody"), 1),
    ):
        refused = cli(db_url, "token", *args)
        assert refused.returncode == code, (args, refused.stderr)
        assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1

    app = create_app(Settings(db=db_url))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/liabilities", headers=headers).status_code == 200
        assert cli(db_url, "token", "revoke", "vvb-1").returncode == 0
        revoked = time.monotonic()  # refused within the time a server trusts a verified token
        while client.get("/liabilities", headers=headers).status_code != 401:
            assert time.monotonic() - revoked < auth.TOKEN_RECHECK_SECONDS + 1
            time.sleep(0.05)
        assert cli(db_url, "token", "revoke", "vvb-1").returncode == 1  # already revoked
        # a revoked name is never reused, so recorded_by stays unambiguous
        assert cli(db_url, "token", "create", "--role", "verifier", "--name", "vvb-1").returncode == 1
        assert client.get("/buffer", headers={"Authorization": f"Bearer {trustee_token}"}).status_code == 200


def test_tokens_are_compared_in_constant_time(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        token, _ = auth.create_token(rt.engine, "reg", "registry")
        auth.create_token(rt.engine, "other", "trustee")
        calls: list[tuple[str, str]] = []
        real = auth.hmac.compare_digest

        def spy(a: str, b: str) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", spy)
        store = auth.TokenStore(rt.engine)
        assert store.authenticate(token) == auth.Principal("reg", "registry")
        assert len(calls) == 2  # every active token compared, the match does not stop early
        assert store.authenticate(token + "x") is None
        assert store.authenticate("") is None
    finally:
        rt.close()


# ---------------------------------------------------------------------- when auth applies


def test_reads_open_until_the_first_token_and_writes_always_need_one(db_url: str) -> None:
    app = create_app(Settings(db=db_url))
    with TestClient(app) as client:
        rt: Runtime = app.state.runtime
        assert client.get("/liabilities").status_code == 200  # a fresh local install
        refused = client.post("/vintages", json=ISSUE)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert rt.app.recorder.max_notification_id() in (None, 0)

        auth.create_token(rt.engine, "first", "trustee")  # as `token create` would, meanwhile
        assert client.get("/liabilities").status_code == 401
        assert client.get("/healthz").status_code == 200  # liveness stays open
        assert client.get("/openapi.json").status_code == 200
        auth.revoke_token(rt.engine, "first")
        assert client.get("/liabilities").status_code == 200  # no active token: open again


def test_require_auth_applies_without_any_token(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class StrictSettings(Settings):
        require_auth: bool = True

    for settings in (StrictSettings(db=sqlite_url), None):
        if settings is None:
            monkeypatch.setenv("PERMANENCE_REQUIRE_AUTH", "1")
            settings = Settings(db=sqlite_url)
        with TestClient(create_app(settings)) as client:
            assert client.get("/liabilities").status_code == 401
            assert client.get("/healthz").status_code == 200


# ---------------------------------------------------------------------- roles


def test_each_role_reaches_exactly_its_routes(api: Api) -> None:
    ids = seed(api.rt)
    a = ids["a"]
    reads = {
        "/liabilities?by=program": "all", "/buffer": "all", "/runoff": "all", "/pools": "all",
        "/programs": "all", "/profiles": "all", "/profiles/icvcm-ccp": "all",
        "/pools/icvcm-ccp/stress-tests": "all", "/projects": "all",
        "/vintages": "detail", f"/vintages/{a[:8]}": "detail",
        f"/vintages/{a}": "detail", f"/vintages/{a}/history": "detail",
        "/healthz": "open",
    }
    allowed = {"all": set(auth.ROLES), "detail": {"registry", "verifier"}, "open": None}
    for path, kind in reads.items():
        for who in (*auth.ROLES, "revoked", "forged", "nobody"):
            got = api.client.get(path, headers=api.as_(who)).status_code
            roles = allowed[kind]
            if roles is None or who in roles:
                want = 200
            elif who in auth.ROLES:
                want = 403
            else:
                want = 401
            assert got == want, (path, who, got)
    malformed = api.client.get("/buffer", headers={"Authorization": f"Basic {api.tokens['registry']}"})
    assert malformed.status_code == 401

    # Stress tests: every role runs one; trustee and registry may record one.
    stylised = {"model": "stylised", "pool_size": 1_000, "event_loss": 100,
                "annual_probability": 0.01, "scenarios": 200, "horizon": 20}
    for who, want in (("trustee", 200), ("registry", 200), ("verifier", 403), ("nobody", 401)):
        got = api.client.post("/stress-test", json=stylised, headers=api.as_(who))
        assert got.status_code == want, (who, got.text)


def test_refused_writes_write_nothing(api: Api) -> None:
    ids = seed(api.rt)
    csv_body = (FIXTURES / "imports" / "acr_issuances.csv").read_bytes()
    before = api.events()
    for who, want in (("nobody", 401), ("forged", 401), ("revoked", 401),
                      ("trustee", 403), ("verifier", 403)):
        for path, body in writes(ids):
            got = api.client.post(path, json=body, headers=api.as_(who))
            assert got.status_code == want, (who, path, got.text)
        got = api.client.post("/imports/acr", content=csv_body, headers=api.as_(who))
        assert got.status_code == want, (who, got.text)
    assert api.events() == before

    # The same requests with a registry token succeed, each recorded as the token.
    for path, body in writes(ids):
        got = api.client.post(path, json=body, headers=api.as_("registry"))
        assert got.status_code == 201, (path, got.text)
        assert got.json()["recorded_by"] == "token:registry-1"
    # issue 1, verify 1, verify-project 3 (P1's two vintages and the new one), reversal,
    # compensation, retirement, cancellation 1 each
    assert api.events() == before + 9
    trail = api.client.get(f"/vintages/{ids['a']}/history", headers=api.as_("verifier")).json()
    events = trail["events"]
    assert [e["event"] for e in events] == [
        "Issued", "ReversalRecorded", "Verified", "Verified", "ReversalRecorded", "Compensated",
        "Retired", "Cancelled"]
    assert [e["recorded_by"] for e in events[2:]] == ["token:registry-1"] * 6
    assert events[0]["recorded_by"] != "token:registry-1"
    shown = api.client.get(f"/vintages/{ids['a']}", params={"as_of": "2027-07-01"},
                           headers=api.as_("registry")).json()
    assert (shown["retired"], shown["due"]) == (500, {"proponent": 0, "pool": 10, "fund": 0, "jurisdiction": 0, "insurer": 0})
    # reads see the writes at once
    by_project = api.client.get("/liabilities", params={"as_of": "2027-07-01", "by": "project"},
                                headers=api.as_("trustee")).json()
    assert by_project["groups"]["P1"]["exposure"] == 10_000 + 5_000 + 1_000 - 50


def test_writes_answer_what_the_cli_answers(api: Api) -> None:
    ids = seed(api.rt)
    reg = api.as_("registry")
    rev = api.client.post(f"/vintages/{ids['b']}/reversals", headers=reg, json={
        "on": "2026-02-01", "quantity": 300, "cause": "harvest", "note": "logging"})
    assert rev.status_code == 201
    assert (rev.json()["reversal_id"], rev.json()["classification"]) == ("R1", "avoidable")
    comp = api.client.post(f"/vintages/{ids['b']}/compensations", headers=reg, json={
        "reversal_id": "R1", "route": "proponent", "quantity": 300, "on": "2026-03-01",
        "reference": "serials 1-300"})
    assert comp.json()["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    # Rejected by the ledger: 400/404 naming the problem, and nothing written.
    before = api.events()
    over = api.client.post(f"/vintages/{ids['b']}/compensations", headers=reg, json={
        "reversal_id": "R1", "route": "proponent", "quantity": 1, "on": "2026-04-01"})
    assert over.status_code == 400
    missing = api.client.post(f"/vintages/{ids['b']}/compensations", headers=reg, json={
        "reversal_id": "R9", "route": "buffer", "quantity": 1, "on": "2026-04-01"})
    assert missing.status_code == 404 and "R9" in missing.json()["detail"]
    unknown = api.client.post("/vintages/00000000-0000-0000-0000-000000000000/retirements",
                              headers=reg, json={"quantity": 1, "on": "2026-01-01"})
    assert unknown.status_code == 404
    no_project = api.client.post("/projects/nowhere/verifications", headers=reg,
                                 json={"on": "2026-01-01"})
    assert no_project.status_code == 404
    early = api.client.post(f"/vintages/{ids['a']}/verifications", headers=reg,
                            json={"on": "2024-01-01"})
    assert early.status_code == 400
    program = api.client.post("/vintages", headers=reg, json={**ISSUE, "program": "nope"})
    assert program.status_code == 404 and "nope" in program.json()["detail"]
    assert api.events() == before


def test_caller_chosen_vintage_id_makes_issuing_repeatable(api: Api) -> None:
    reg = api.as_("registry")
    vid = "7f0c1d52-6f4e-4d0e-9a53-6a3f1b0b1c2d"
    first = api.client.post("/vintages", headers=reg, json={**ISSUE, "vintage_id": vid})
    assert first.status_code == 201 and first.json()["vintage_id"] == vid
    before = api.events()
    again = api.client.post("/vintages", headers=reg, json={**ISSUE, "vintage_id": vid})
    assert again.status_code == 409
    assert api.events() == before


# ---------------------------------------------------------------------- validation


BAD_ISSUES: list[tuple[dict[str, Any], str]] = [
    ({"quantity": 1.5}, "quantity"),
    ({"quantity": -3}, "quantity"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": 10**30}, "quantity"),
    ({"quantity": "100"}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"buffer": -1}, "buffer"),
    ({"buffer": 10**30}, "buffer"),
    ({"on": "2025-13-01"}, "on"),
    ({"on": "01/02/2030"}, "on"),
    ({"on": 20250101}, "on"),
    ({"on": "2025-02-30"}, "on"),
    ({"vintage_year": 10**30}, "vintage_year"),
    ({"project": ""}, "project"),
    ({"project": "a\x00b"}, "project"),
    ({"project": "x" * 201}, "project"),
    ({"pool": "p" * 65}, "pool"),
    ({"serial_first": "100"}, "body"),
    ({"colour": "red"}, "colour"),
    ({"vintage_id": "not-a-uuid"}, "vintage_id"),
]


def test_malformed_bodies_are_422_naming_the_field(api: Api) -> None:
    ids = seed(api.rt)
    reg = api.as_("registry")
    before = api.events()
    for change, field in BAD_ISSUES:
        got = api.client.post("/vintages", headers=reg, json={**ISSUE, **change})
        assert got.status_code == 422, (change, got.text)
        locs = [e["loc"] for e in got.json()["errors"]]
        assert any(loc[-1] == field or (field == "body" and loc == ["body"]) for loc in locs), (
            change, locs)
    missing = api.client.post("/vintages", headers=reg, json={"project": "P"})
    assert {e["loc"][-1] for e in missing.json()["errors"]} >= {"program", "quantity", "on"}
    a = ids["a"]
    for path, body, field in (
        (f"/vintages/{a}/reversals", {"on": "2026-01-01", "quantity": 10**30, "cause": "storm"},
         "quantity"),
        (f"/vintages/{a}/reversals", {"on": "2026-01-01", "quantity": 1, "cause": "meteor"},
         "cause"),
        (f"/vintages/{a}/compensations", {"reversal_id": "R1", "route": "magic", "quantity": 1,
                                          "on": "2026-01-01"}, "route"),
        (f"/vintages/{a}/retirements", {"quantity": 1.5, "on": "2026-01-01"}, "quantity"),
        (f"/vintages/{a}/cancellations", {"quantity": 1, "on": "2026-13-01"}, "on"),
        (f"/vintages/{a}/verifications", {"on": "yesterday"}, "on"),
        ("/projects/P1/verifications", {"on": "2026-01-01", "verifier": "v\x07"}, "verifier"),
    ):
        got = api.client.post(path, headers=reg, json=body)
        assert got.status_code == 422, (path, body, got.text)
        assert any(e["loc"][-1] == field for e in got.json()["errors"]), got.text
    not_json = api.client.post("/vintages", headers={**reg, "content-type": "application/json"},
                               content=b"{not json")
    assert not_json.status_code == 422
    assert api.events() == before


# ---------------------------------------------------------------------- body limits


def test_bodies_over_the_limit_are_413_and_write_nothing(api: Api) -> None:
    reg = api.as_("registry")
    before = api.events()
    padded = json.dumps({**ISSUE, "pad": "x" * (access.MAX_BODY + 1)}).encode()
    declared = api.client.post("/vintages", headers={**reg, "content-type": "application/json"},
                               content=padded)
    assert declared.status_code == 413
    chunks = (padded[i : i + 65_536] for i in range(0, len(padded), 65_536))
    streamed = api.client.post("/vintages", headers={**reg, "content-type": "application/json"},
                               content=chunks)  # no Content-Length: counted as it arrives
    assert streamed.status_code == 413
    big_csv = (b"x" * 1_048_576 for _ in range(access.MAX_IMPORT_BODY // 1_048_576 + 1))
    too_big = api.client.post("/imports/acr", headers=reg, content=big_csv)
    assert too_big.status_code == 413
    assert api.events() == before


def test_import_endpoint_loads_a_large_export_once(api: Api, tmp_path: Path) -> None:
    reg = api.as_("registry")
    ids = write_acr_file(tmp_path / "acr.csv", 6_000)
    body = (tmp_path / "acr.csv").read_bytes()
    assert len(body) > access.MAX_BODY  # over the JSON limit, within the import limit
    first = api.client.post("/imports/acr", headers={**reg, "content-type": "text/csv"},
                            params={"filename": "acr.csv", "batch": 1_000}, content=body)
    assert first.status_code == 200, first.text
    summary = first.json()
    assert (summary["imported"], summary["duplicates"], summary["rejected"]) == (6_000, 0, 0)
    assert summary["file"] == "acr.csv" and summary["recorded_by"] == "token:registry-1"
    again = api.client.post("/imports/acr", headers=reg, content=body).json()
    assert (again["imported"], again["duplicates"]) == (0, 6_000)
    assert api.events() == 6_000
    trail = api.client.get(f"/vintages/{ids[-1]}/history", headers=reg).json()["events"]
    assert trail[0]["recorded_by"] == "token:registry-1"
    programs = api.client.get("/liabilities", params={"by": "program", "as_of": "2026-01-01"},
                              headers=reg).json()
    assert programs["groups"]["acr"]["exposure"] == sum(1_000 + (i * 37) % 9_000 for i in range(6_000))

    # A fixture with bad rows: the good ones go in, the bad are listed with their lines.
    fixture = (FIXTURES / "imports" / "acr_issuances.csv").read_bytes()
    mixed = api.client.post("/imports/acr", headers=reg, content=fixture).json()
    assert mixed["rejected"] == len(mixed["rejects"]) > 0
    assert all(r["reason"].startswith(f"line {r['line']}:") for r in mixed["rejects"])

    before = api.events()
    unknown = api.client.post("/imports/nope", headers=reg, content=body)
    assert unknown.status_code == 404 and "acr" in unknown.json()["detail"]
    wrong = api.client.post("/imports/verra", headers=reg, content=body)
    assert wrong.status_code == 422 and "missing column" in wrong.json()["detail"]
    garbage = api.client.post("/imports/acr", headers=reg, content=b"\xff\xfe\x00garbage")
    assert garbage.status_code == 422
    assert api.events() == before


def test_openapi_declares_bearer_auth_and_the_write_endpoints(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    for path in ("/vintages", "/vintages/{vintage_id}/verifications",
                 "/projects/{project}/verifications", "/vintages/{vintage_id}/reversals",
                 "/vintages/{vintage_id}/compensations", "/vintages/{vintage_id}/retirements",
                 "/vintages/{vintage_id}/cancellations", "/imports/{fmt}"):
        assert "post" in spec["paths"][path], path
    assert "text/csv" in spec["paths"]["/imports/{fmt}"]["post"]["requestBody"]["content"]
