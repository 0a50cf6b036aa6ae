"""The HTTP API's access control and request limits (see docs/security.md and
:mod:`permanence.tokens` for tokens and roles)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from permanence.http.errors import PROBLEM_MEDIA_TYPE, problem, problem_bytes
from permanence.tokens import ROLES, Principal, TokenStore


@dataclass(frozen=True)
class Access:
    """Which roles may call a router: ``read`` for GET/HEAD/OPTIONS, ``write`` otherwise.

    ``read=None`` means open to anyone (``/healthz``). ``always`` makes the router need a
    token even while auth is not enforced (the ledger's write endpoints).
    """

    read: frozenset[str] | None
    write: frozenset[str] = frozenset({"registry"})
    always: bool = False


EVERYONE = frozenset(ROLES)
READERS = frozenset({"registry", "verifier"})

OPEN = Access(read=None, write=frozenset())
"""No token needed (liveness)."""
TRUSTEE = Access(read=EVERYONE)
"""Aggregate figures: every role reads; writes (none today) are the registry's."""
STRESS = Access(read=EVERYONE, write=frozenset({"registry", "trustee"}))
"""Stress tests: every role runs them; trustees and registries record them."""
DETAIL = Access(read=READERS)
"""Vintage detail and audit trails: registry and verifier."""
WRITE = Access(read=frozenset({"registry"}), write=frozenset({"registry"}), always=True)
"""The ledger's write endpoints: registry tokens only, even before auth is enforced."""
DEFAULT = DETAIL
"""A router nobody classified: read by registry and verifier, written by registry."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False, description="An API token: `permanence token create`.")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def guard(access: Access) -> Callable[..., Coroutine[Any, Any, Principal | None]]:
    """A router dependency enforcing ``access``; sets ``request.state.principal``.

    Asynchronous, so that a remembered token is accepted without a hop to the threadpool;
    the database is asked (in the threadpool) only for a token not remembered, or when no
    token was sent and the answer depends on whether any token exists.
    """

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal | None:
        safe = request.method in SAFE_METHODS
        allowed = access.read if safe else access.write
        request.state.principal = None
        if allowed is None:
            return None
        store: TokenStore | None = getattr(request.app.state, "tokens", None)
        if store is None:
            raise RuntimeError("the token store is not open: serve the app with its lifespan")
        if credentials is None:
            # a write always names its token (the CLI is the local admin path); a read needs
            # one once auth is enforced
            if access.always or not safe or await run_in_threadpool(store.enforced):
                raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")
            return None
        token = credentials.credentials
        if safe:
            principal = store.remembered(token) or await run_in_threadpool(store.verify, token)
        else:  # a write is checked against the database every time: revocation is immediate
            principal = await run_in_threadpool(store.authenticate, token)
        if principal is None:
            raise _unauthorized("invalid or revoked token")
        if principal.role not in allowed:
            raise HTTPException(
                status_code=403,
                detail=f"role {principal.role!r} may not {request.method} {request.url.path}",
            )
        request.state.principal = principal
        return principal

    return check


def principal_of(request: Request) -> Principal:
    """The authenticated principal of a request that passed a guard needing a token."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # pragma: no cover - the router's guard runs first
        raise _unauthorized("authentication required")
    return principal


def dependencies_for(access: Access) -> list[Any]:
    """The router dependencies enforcing ``access`` (none for an open router)."""
    if access == OPEN:
        return []
    return [Depends(guard(access))]


# ---------------------------------------------------------------------- request limits

MAX_BODY = 1024 * 1024
"""JSON bodies: 1 MiB."""
MAX_IMPORT_BODY = 50 * 1024 * 1024
"""Uploaded registry exports (``/imports/...``): 50 MiB."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over the limit of {limit:,} bytes")


class RequestLimits:
    """ASGI middleware: 413 for bodies over the limit (declared or streamed), 422 for NULs.

    A declared ``Content-Length`` over the limit is refused before the body is read; a body
    streamed without one is counted as it arrives and refused once it passes the limit.
    NUL characters in the path or query are refused: PostgreSQL text cannot hold them, and
    no identifier the ledger knows contains one.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY,
        limits: Iterable[tuple[str, int]] = (("/imports/", MAX_IMPORT_BODY),),
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.limits = tuple(limits)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await _reply(send, 422, "path or query contains a NUL character", path)
            return
        limit = self.limit_for(path)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid Content-Length", path)
                    return
                if declared > limit:
                    await _reply(send, 413, BodyTooLarge(limit).detail, path)
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _reply(send, 413, str(exc.detail), path)


async def _reply(send: Send, status: int, detail: str, path: str | None = None) -> None:
    """Answer before the app runs, in the API's one error shape."""
    body = problem_bytes(problem(status, detail, path))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
