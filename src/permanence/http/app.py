"""The HTTP API's app factory: one router per audience, each behind its token guard.

One :class:`Runtime` per app, opened in the lifespan and closed at shutdown. The routers:

- :mod:`~permanence.http.trustee`: liabilities, buffer, run-off, pools, projects, programs and
  profiles (every role reads them);
- :mod:`~permanence.http.verifier`: the vintage listing, one vintage, its audit trail
  (registry and verifier);
- :mod:`~permanence.http.registry`: the registries' writes (registry tokens, always);
- :mod:`~permanence.http.stress`: stress tests;
- :mod:`~permanence.http.operations`: ``/healthz`` and ``/metrics`` (open).

Access: once the database holds an active API token, every route but the operator's needs
one (:mod:`permanence.http.access`); request bodies are size-limited (413). Reads never show
figures older than the events recorded before they arrived
(:mod:`permanence.http.freshness`); trustee answers are cached per read-model position with
an ``ETag`` (:mod:`permanence.http.answers`). Every error is a problem document, its status
chosen in :mod:`permanence.http.errors`. ``/docs`` and ``/redoc`` load their scripts from this
server (the package ``fastapi-offline``), never from a CDN: registries run air-gapped.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from permanence import tokens
from permanence.config import Settings, parse_store
from permanence.http import access as acl
from permanence.http import errors
from permanence.http.answers import AnswerCache
from permanence.http.dependencies import known_query_only
from permanence.http.freshness import Freshness
from permanence.http.metrics import HttpMetrics, RequestMetrics
from permanence.http.operations import router as operations
from permanence.http.registry import router as registry
from permanence.http.stress import router as stress
from permanence.http.trustee import router as trustee
from permanence.http.verifier import router as verifier
from permanence.runtime import Runtime

DOCS_ASSETS = "/docs-assets"
"""Where the documentation pages' scripts, styles and icon are served from."""

ACCESS: tuple[tuple[APIRouter, acl.Access], ...] = (
    (trustee, acl.TRUSTEE),
    (verifier, acl.DETAIL),
    (stress, acl.STRESS),
    (registry, acl.WRITE),
    (operations, acl.OPEN),
)
"""Each router and which token roles may call it once auth is enforced (docs/security.md)."""

ROUTERS: tuple[APIRouter, ...] = tuple(router for router, _ in ACCESS)

def access_for(router: APIRouter) -> acl.Access:
    """The router's access policy (an unlisted router gets the cautious default)."""
    return next((access for r, access in ACCESS if r is router), acl.DEFAULT)


def _declared(router: APIRouter, access: acl.Access) -> dict[int | str, dict[str, Any]]:
    """The errors every route of a router may answer (a route adds its own)."""
    if access == acl.OPEN:
        return {}
    # 422: any unknown query parameter; 503: a store that cannot answer
    return errors.problems(401, 403, 422, 503)


def create_app(settings: Settings, runtime: Runtime | None = None, *,
               answers: AnswerCache | None = None) -> FastAPI:
    """Build the API on ``settings``' store, or on a caller's open ``runtime``.

    A runtime passed in stays the caller's to close; one opened here is closed at shutdown.
    The store URL is checked now, so ``permanence serve`` fails fast with a clear message.
    ``answers`` is the trustee endpoints' answer cache (default: a new one of the default
    size; its counters are reported by ``/healthz``).
    """
    if runtime is None:
        parse_store(settings.db, settings.lock_timeout_seconds)
    cache = answers if answers is not None else AnswerCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime if runtime is not None else Runtime(settings)
        app.state.runtime = rt
        app.state.tokens = tokens.TokenStore(rt.engine, tokens.require_auth_setting(settings))
        app.state.freshness = Freshness(rt, app.state.refresh_lock, on_regress=cache.clear)
        try:
            yield
        finally:
            app.state.runtime = None
            if runtime is None:
                rt.close()

    app = FastAPIOffline(
        title="permanence",
        summary="The permanence ledger over HTTP: trustees' figures, verifiers' audit trails, "
        "registries' writes.",
        version="0.1.0",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        # no badge fetched from validator.swagger.io: the page must work air-gapped
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.refresh_lock = threading.Lock()
    app.state.answers = cache
    app.state.metrics = metrics = HttpMetrics()
    for router, access in ACCESS:
        app.include_router(router, responses=_declared(router, access), dependencies=[
            Depends(known_query_only), *acl.dependencies_for(access)])
    app.add_middleware(acl.RequestLimits)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=lambda: app.router.routes)
    errors.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The document FastAPI builds, plus the problem schema the error responses refer to."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, summary=app.summary,
                               routes=app.routes)
        app.openapi_schema = errors.add_schemas(document)
    return app.openapi_schema


