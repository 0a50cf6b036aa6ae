"""What an HTTP client of the ledger expects from its ecosystem, over a real server on SQLite
and PostgreSQL: validators and 304s, one error shape (RFC 9457) declared in the OpenAPI
document, ``Location`` on every 201, documentation pages that load nothing from elsewhere,
and request metrics on ``permanence serve``.

Expected figures come from the scenario in ``tests/integration/test_http.py`` (worked by hand there) and
from the writes made here.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from permanence import tokens as auth
from permanence.config import Settings
from permanence.http.app import create_app
from permanence.runtime import Runtime, open_runtime
from tests.support import STARTUP_DEADLINE, build_ledger, running

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[httpx.Client, Runtime, dict[str, str]]]:
    """A real server on a fresh ledger, and a token of each role (auth is then enforced)."""
    app = create_app(Settings(db=db_url))
    with running(app) as client:
        rt: Runtime = app.state.runtime
        tokens = {role: auth.create_token(rt.engine, f"{role}-1", role)[0] for role in auth.ROLES}
        yield client, rt, {role: f"Bearer {t}" for role, t in tokens.items()}


def as_(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": tokens[role]}


# ---------------------------------------------------------------------- ETag and 304


CACHED_ROUTES = ("/liabilities", "/buffer", "/runoff", "/pools", "/projects", "/programs",
                 "/vintages")


def test_trustee_answers_carry_a_validator_and_304_when_unchanged(
    served: tuple[httpx.Client, Runtime, dict[str, str]],
) -> None:
    client, rt, tokens = served
    ledger = build_ledger(rt)
    trustee = as_(tokens, "trustee")
    registry = as_(tokens, "registry")
    for path in CACHED_ROUTES:
        first = client.get(path, headers=registry)
        assert first.status_code == 200, (path, first.text)
        tag = first.headers["etag"]
        assert re.fullmatch(r'"[^"]+"', tag), tag  # a strong validator
        assert first.headers["cache-control"] == "private, no-cache"
        again = client.get(path, headers={**registry, "If-None-Match": tag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["etag"] == tag

    params = {"as_of": "2028-06-01"}
    before = client.get("/liabilities", params=params, headers=trustee)
    tag = before.headers["etag"]
    assert before.json()["due"]["proponent"] == 1_000  # the harvest reversal
    # the same tag among others, or weak, still names the current answer
    for header in (tag, f'"nope", {tag}', f"W/{tag}", "*"):
        not_modified = client.get("/liabilities", params=params,
                                  headers={**trustee, "If-None-Match": header})
        assert not_modified.status_code == 304, header
    stale = client.get("/liabilities", params=params,
                       headers={**trustee, "If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.json() == before.json()
    # another question has another answer, hence another tag
    other = client.get("/liabilities", params={"as_of": "2027-06-15"}, headers=trustee)
    assert other.headers["etag"] != tag

    # a write that changes the answer: the old tag no longer matches, the figures moved
    rt.app.record_reversal(ledger.a, date(2028, 3, 1), 250, "harvest")
    changed = client.get("/liabilities", params=params,
                         headers={**trustee, "If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.json()["due"]["proponent"] == 1_000 + 250
    assert changed.headers["etag"] != tag
    # a write that leaves this answer as it was (a retirement moves no liability)
    rt.app.retire(ledger.b, 10, date(2028, 4, 1))
    same = client.get("/liabilities", params=params,
                      headers={**trustee, "If-None-Match": changed.headers["etag"]})
    assert same.status_code == 304


# ---------------------------------------------------------------------- problems


def assert_problem(response: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["instance"] == path
    assert body["type"].startswith("urn:permanence:problem:")
    assert body["title"] and isinstance(body["detail"], str) and body["detail"]
    return body


def test_every_error_is_a_problem_declared_in_the_openapi_document(
    served: tuple[httpx.Client, Runtime, dict[str, str]],
) -> None:
    client, rt, tokens = served
    ledger = build_ledger(rt)
    registry, trustee = as_(tokens, "registry"), as_(tokens, "trustee")
    unknown = str(uuid.uuid4())
    seen: list[tuple[str, str, int]] = []  # (method, route template, status)

    def check(method: str, template: str, path: str, status: int, **kwargs: Any
              ) -> dict[str, Any]:
        body = assert_problem(client.request(method, path, **kwargs), status, path)
        seen.append((method.lower(), template, status))
        return body

    # 401: no token, a forged one; the challenge names the scheme
    no_token = client.get("/liabilities")
    assert no_token.headers["www-authenticate"] == "Bearer"
    check("GET", "/liabilities", "/liabilities", 401)
    check("GET", "/buffer", "/buffer", 401, headers={"Authorization": "Bearer forged"})
    # 403: a trustee reading an audit trail, or writing
    check("GET", "/vintages/{vintage_id}/history", f"/vintages/{ledger.a}/history", 403,
          headers=trustee)
    check("POST", "/vintages", "/vintages", 403, headers=trustee, json={})
    # 404: unknown vintage, reversal, profile
    assert unknown in check("GET", "/vintages/{vintage_id}", f"/vintages/{unknown}", 404,
                            headers=registry)["detail"]
    check("POST", "/vintages/{vintage_id}/compensations",
          f"/vintages/{ledger.a}/compensations", 404, headers=registry,
          json={"reversal_id": "R9", "route": "buffer", "quantity": 1, "on": "2028-03-01"})
    check("GET", "/profiles/{name}", "/profiles/no-such-program", 404, headers=trustee)
    # 422: a malformed query (named), a malformed body (each field listed)
    bad_day = check("GET", "/liabilities", "/liabilities", 422, headers=trustee,
                    params={"as_of": "2025-13-01"})
    assert bad_day["detail"].startswith("as_of:")
    assert [e["field"] for e in bad_day["errors"]] == ["as_of"]
    bad = check("POST", "/vintages", "/vintages", 422, headers=registry,
                json={"program": "icvcm-ccp", "project": "P", "quantity": -5, "on": "someday"})
    assert {e["field"] for e in bad["errors"]} == {"quantity", "on"}
    assert all(e["loc"][0] == "body" for e in bad["errors"])
    # 400: the ledger refuses (retiring more than is outstanding); nothing recorded
    events = len(rt.app.stream(ledger.b))
    check("POST", "/vintages/{vintage_id}/retirements", f"/vintages/{ledger.b}/retirements",
          400, headers=registry, json={"quantity": 10**9, "on": "2028-03-01"})
    assert len(rt.app.stream(ledger.b)) == events
    # 409: an id that exists already
    check("POST", "/vintages", "/vintages", 409, headers=registry,
          json={"program": "icvcm-ccp", "project": "P", "quantity": 5, "on": "2025-01-01",
                "vintage_id": ledger.a})
    # 413: a body over the limit, refused before it is read
    check("POST", "/vintages/{vintage_id}/reversals", f"/vintages/{ledger.a}/reversals", 413,
          headers={**registry, "Content-Type": "application/json"},
          content=b'{"note": "' + b"x" * (2 * 1024 * 1024) + b'"}')

    # beyond the routes: an unknown path, a method a route does not take
    assert_problem(client.get("/no-such-thing"), 404, "/no-such-thing")
    assert_problem(client.delete("/healthz"), 405, "/healthz")

    document = client.get("/openapi.json").json()
    problem_schema = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem_schema["required"])
    for method, template, status in seen:
        declared = document["paths"][template][method]["responses"]
        assert str(status) in declared, (method, template, status)
        assert declared[str(status)]["content"][PROBLEM]["schema"] == {
            "$ref": "#/components/schemas/Problem"}, (method, template, status)


def test_openapi_document_types_every_answer_and_declares_the_errors(
    served: tuple[httpx.Client, Runtime, dict[str, str]],
) -> None:
    client, _, _ = served
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # one error shape, not FastAPI's default
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == 1, (method, path, success)
            content = responses[success[0]]["content"]
            for media, body in content.items():
                schema = body["schema"]
                # a named model, a list of one, or text: never an untyped object
                named = "$ref" in schema or "$ref" in schema.get("items", {}) or (
                    schema.get("type") in {"string", "array"} and "additionalProperties"
                    not in schema)
                assert named, (method, path, media, schema)
            if path in {"/healthz", "/metrics"}:
                continue  # open to monitoring
            for status in ("401", "403", "422", "503"):
                assert PROBLEM in responses[status]["content"], (method, path, status)
    # the answers' models describe their fields
    assert {"exposure", "due", "due_total", "as_of"} <= set(schemas["Liabilities"]["properties"])
    assert "next_cursor" in schemas["VintagePage"]["properties"]


# ---------------------------------------------------------------------- Location on 201


def test_every_201_names_where_to_read_the_write_back(
    served: tuple[httpx.Client, Runtime, dict[str, str]],
) -> None:
    client, _, tokens = served
    registry = as_(tokens, "registry")

    def created(path: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        response = client.post(path, json=body, headers=registry)
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        assert urlsplit(location).netloc == ""  # on this server
        target = client.get(location, headers=registry)
        assert target.status_code == 200, (location, target.text)
        return response.json(), target.json()

    issued, vintage = created("/vintages", {"program": "car-forest", "project": "Forest L",
                                            "quantity": 4_000, "buffer": 800,
                                            "on": "2026-03-01"})
    vid = issued["vintage_id"]
    assert vintage["vintage_id"] == vid and vintage["quantity"] == 4_000

    def last_event(path: str, body: dict[str, Any]) -> dict[str, Any]:
        _, trail = created(path, body)
        assert trail["vintage_id"] == vid
        event: dict[str, Any] = trail["events"][-1]
        assert event["recorded_by"] == "token:registry-1"
        return event

    fire = last_event(f"/vintages/{vid}/reversals",
                      {"on": "2027-06-01", "quantity": 300, "cause": "wildfire"})
    assert (fire["event"], fire["data"]["quantity"]) == ("ReversalRecorded", 300)
    paid = last_event(f"/vintages/{vid}/compensations",
                      {"reversal_id": "R1", "route": "buffer", "quantity": 300,
                       "on": "2027-07-01"})
    assert paid["state"]["due"]["pool"] == 0
    assert last_event(f"/vintages/{vid}/verifications", {"on": "2028-01-01"})["on"] == (
        "2028-01-01")
    assert last_event(f"/vintages/{vid}/retirements",
                      {"quantity": 100, "on": "2028-02-01"})["data"]["quantity"] == 100
    cancelled = last_event(f"/vintages/{vid}/cancellations",
                           {"quantity": 50, "on": "2028-03-01"})
    assert cancelled["state"]["outstanding_credits"] == 4_000 - 100 - 50

    answer, listing = created("/projects/Forest L/verifications", {"on": "2029-01-01"})
    assert answer["verified"] == [vid]
    assert [v["vintage_id"] for v in listing["vintages"]] == [vid]


# ---------------------------------------------------------------------- offline docs

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
SPEC = re.compile(r"""(?:url:\s*|spec-url=)["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_documentation_pages_load_only_from_this_server(
    served: tuple[httpx.Client, Runtime, dict[str, str]], page: str,
) -> None:
    client, _, _ = served
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    base = str(client.base_url)
    here = urlsplit(base).netloc
    assets = ASSET.findall(html.text) + SPEC.findall(html.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html.text  # the page does reference its script
    for asset in assets:
        url = urljoin(base + page, asset)
        assert urlsplit(url).netloc == here, asset  # nothing from a CDN
        fetched = client.get(url)
        assert fetched.status_code == 200, (asset, fetched.status_code)
        assert len(fetched.content) > 0, asset
    assert not re.search(r"https?://", ASSET.sub("", html.text)), "an absolute URL in the page"
    if page == "/docs":
        assert '"validatorUrl": null' in html.text  # no badge fetched from elsewhere


# ---------------------------------------------------------------------- /metrics on serve


@contextmanager
def serve(db_url: str) -> Iterator[str]:
    """``permanence serve`` in a subprocess on a free port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from permanence.cli import main; main()",
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "PERMANENCE_DB": db_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if proc.poll() is not None:
                output, _ = proc.communicate()
                pytest.fail(f"permanence serve exited {proc.returncode}: {output}")
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("permanence serve did not start listening")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait()


def samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    """Values of one metric by (method, route, status)."""
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                labels = sample.labels
                found[(labels["method"], labels["route"], labels["status"])] = sample.value
    return found


def test_serve_exposes_request_metrics_by_route_template(db_url: str) -> None:
    with open_runtime(Settings(db=db_url)) as rt:
        ledger = build_ledger(rt)
    unknown = str(uuid.uuid4())
    with serve(db_url) as base:
        calls = [("/liabilities", 200), ("/liabilities", 200), (f"/vintages/{ledger.a}", 200),
                 (f"/vintages/{ledger.b}", 200), (f"/vintages/{unknown}", 404),
                 ("/buffer?as_of=2025-13-01", 422)]
        for path, status in calls:
            assert httpx.get(base + path).status_code == status, path
        text = httpx.get(f"{base}/metrics").text
    counts = samples(text, "permanence_http_requests_total")
    expected: dict[tuple[str, str, str], float] = {}
    for path, status in calls:
        route = "/vintages/{vintage_id}" if path.startswith("/vintages/") else path.split("?")[0]
        key = ("GET", route, str(status))
        expected[key] = expected.get(key, 0) + 1
    for key, n in expected.items():
        assert counts.get(key) == n, (key, counts)
    assert not any(ledger.a in route or unknown in route for _, route, _ in counts)
    latencies = samples(text, "permanence_http_request_duration_seconds_count")
    for key, n in expected.items():
        assert latencies.get(key) == n, key  # one latency observation per request
    buckets = [s for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "permanence_http_request_duration_seconds_bucket"
               and s.labels["route"] == "/liabilities" and s.labels["le"] == "+Inf"]
    assert [b.value for b in buckets] == [2.0]


# ---------------------------------------------------------------------- typed answers


def test_typed_vintage_answer_is_the_ledgers_own_summary(
    served: tuple[httpx.Client, Runtime, dict[str, str]],
) -> None:
    """The response model names the answer's fields; it must not drop, rename or add any
    (insurance's ``from``, a transfer, labels), nor fill in a vintage not yet issued."""
    client, rt, tokens = served
    ledger = build_ledger(rt)
    rt.app.insure([ledger.a], "Insurer I", date(2026, 1, 1), date(2030, 12, 31), 5_000)
    rt.app.transfer_liability(ledger.b, "Fund F", "fund", date(2027, 1, 1), term_years=30)
    rt.app.label_sandbox(ledger.a, "CCP-I", "innovation X", date(2026, 2, 1))
    reader = as_(tokens, "verifier")
    for vid in (ledger.a, ledger.b):
        for day in (date(2024, 6, 1), date(2028, 6, 1)):
            got = client.get(f"/vintages/{vid}", params={"as_of": day.isoformat()},
                             headers=reader)
            assert got.status_code == 200, got.text
            assert got.json() == rt.app.show(vid, day)
    assert client.get(f"/vintages/{ledger.a}", params={"as_of": "2024-06-01"},
                      headers=reader).json()["status"] == "not-issued"
    insured = client.get(f"/vintages/{ledger.a}", params={"as_of": "2028-06-01"},
                         headers=reader).json()
    assert insured["insurance"] == [{"insurer": "Insurer I", "from": "2026-01-01",
                                     "until": "2030-12-31", "limit": 5_000}]


def test_metrics_under_the_daemon_show_its_figures_beside_the_requests(sqlite_url: str) -> None:
    """``daemon --http`` mounts its metrics on the app: one ``/metrics`` shows both."""
    from scheduler.metrics import Metrics

    app = create_app(Settings(db=sqlite_url))
    daemon = Metrics()
    daemon.mount(app)
    daemon.observe_projection(7, 3)
    with running(app) as client:
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
              if not s.labels}
    assert (values["permanence_projection_position"], values["permanence_projection_lag"]) == (
        7, 3)
    assert samples(text, "permanence_http_requests_total")[("GET", "/healthz", "200")] == 1
