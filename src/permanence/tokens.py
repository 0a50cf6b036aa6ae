"""API tokens: their table, the commands that manage them, and the check of a presented
token (see docs/security.md). The HTTP guard that uses them is :mod:`permanence.http.access`.

Tokens
    ``permanence token create --role R --name N`` makes a random token (``pmt_`` + 32 random
    bytes, URL-safe base64), prints it once and stores only its SHA-256 in table
    ``auth_tokens`` of the ledger's own database. A request presents it as
    ``Authorization: Bearer <token>``; its hash is compared with each active token's hash
    by :func:`hmac.compare_digest`. Revoking keeps the row (``revoked_at`` set), so the name
    an event was ``recorded_by`` (``token:NAME``) stays meaningful and is never reused.

Roles
    ``registry``: every read, and the ledger's write endpoints.
    ``verifier``: every read, including audit trails (``/vintages/{id}/history``).
    ``trustee``: liabilities, buffer, run-off, pools, programs, profiles and stress tests.

When auth is enforced
    As soon as the database holds one active token, or ``Settings.require_auth`` (env
    ``PERMANENCE_REQUIRE_AUTH``) is set, every route but ``/healthz`` (and the OpenAPI
    document) needs a token whose role the route allows: 401 without a valid token, 403 for
    a role that may not. Whether auth is enforced is checked on every request, so the first
    ``token create`` protects a running server at once. Until then reads are open (a fresh,
    local install). Every write (any method but GET, HEAD and OPTIONS: the ledger's write
    endpoints, recording a stress test) always needs a token whose role may write there, so
    that every write records which token made it; until a token exists, HTTP writes are
    refused and the CLI is the local admin path.

Revocation
    A server remembers a token it has verified for :data:`TOKEN_RECHECK_SECONDS` (by its
    SHA-256, at most :data:`MAX_REMEMBERED_TOKENS` of them), then checks it against the
    database again, so ``token revoke`` takes effect on a running server within that time.
    Unknown and revoked tokens are never remembered: every attempt with one is checked
    against the database.

Request limits
    :class:`RequestLimits` refuses request bodies over a size (413) and NUL characters in
    the path or query (422) before any route runs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Engine, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from permanence.parsing import UsageError
from projections.storage.base import CODE_LENGTH, STAMP_LENGTH, metadata
from projections.storage.schema import ensure_durable

ROLES: tuple[str, ...] = ("registry", "verifier", "trustee")
TOKEN_PREFIX = "pmt_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKEN_RECHECK_SECONDS = 2.0
"""How long a server trusts a token it verified before asking the database again: the
longest a revoked token keeps working on a running server (docs/security.md)."""
MAX_REMEMBERED_TOKENS = 1024
"""Verified tokens a server remembers at most (least recently used out first)."""

HASH_LENGTH = 64  # SHA-256 hex

auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("name", String(CODE_LENGTH), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(HASH_LENGTH), nullable=False, unique=True),
    Column("created_at", String(STAMP_LENGTH), nullable=False),
    Column("revoked_at", String(STAMP_LENGTH)),
)
"""Never rebuilt (no event records a token): its shape changes only through a migration
(``projections/storage/migrations``)."""


class TokenError(Exception):
    """A token command was refused (duplicate name, unknown or already revoked token)."""


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role."""

    name: str
    role: str

    @property
    def actor(self) -> str:
        """What events record as ``recorded_by``."""
        return f"token:{self.name}"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "active": self.active}


# ---------------------------------------------------------------------- storage


def create_table(engine: Engine) -> None:
    """Make sure ``auth_tokens`` exists and is migrated (under the schema lock, so two
    processes starting at once do not race; cheap after the first call per engine)."""
    ensure_durable(engine)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise UsageError(
            f"name: {name!r} must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    return name


def create_token(engine: Engine, name: str, role: str) -> tuple[str, TokenInfo]:
    """Store a new token's hash under ``name``; returns the token (shown once) and its info."""
    check_name(name)
    check_role(role)
    create_table(engine)
    token = new_token()
    info = TokenInfo(name, role, _now(), None)
    try:
        with engine.begin() as conn:
            conn.execute(insert(auth_tokens).values(
                name=name, role=role, token_hash=hash_token(token), created_at=info.created_at,
                revoked_at=None,
            ))
    except IntegrityError:
        raise TokenError(
            f"name: a token named {name!r} exists (names of revoked tokens are not reused)"
        ) from None
    return token, info


def revoke_token(engine: Engine, name: str) -> TokenInfo:
    create_table(engine)
    when = _now()
    with engine.begin() as conn:
        row = conn.execute(select(auth_tokens).where(auth_tokens.c.name == name)).first()
        if row is None:
            raise TokenError(f"name: no token named {name!r}")
        if row.revoked_at is not None:
            raise TokenError(f"name: token {name!r} was already revoked at {row.revoked_at}")
        conn.execute(update(auth_tokens).where(auth_tokens.c.name == name).values(revoked_at=when))
    return TokenInfo(row.name, row.role, row.created_at, when)


def list_tokens(engine: Engine) -> list[TokenInfo]:
    create_table(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(auth_tokens).order_by(auth_tokens.c.created_at,
                                                         auth_tokens.c.name)).all()
    return [TokenInfo(r.name, r.role, r.created_at, r.revoked_at) for r in rows]


class TokenStore:
    """Checks presented tokens against the active ones.

    A token verified against the database is remembered for ``recheck_seconds`` (keyed by
    its SHA-256), so a client's requests do not each cost a query of ``auth_tokens``;
    revocation therefore takes effect within ``recheck_seconds``. Failures are never
    remembered.
    """

    def __init__(self, engine: Engine, require_auth: bool = False,
                 recheck_seconds: float = TOKEN_RECHECK_SECONDS,
                 max_remembered: int = MAX_REMEMBERED_TOKENS) -> None:
        self.engine = engine
        self.require_auth = require_auth
        self.recheck_seconds = recheck_seconds
        self.max_remembered = max_remembered
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_lock = threading.Lock()
        create_table(engine)

    def _active(self) -> list[tuple[str, str, str]]:
        stmt = select(auth_tokens.c.name, auth_tokens.c.role, auth_tokens.c.token_hash).where(
            auth_tokens.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]

    def enforced(self) -> bool:
        """Whether requests need a token: ``require_auth``, or any active token exists."""
        if self.require_auth:
            return True
        stmt = select(auth_tokens.c.name).where(auth_tokens.c.revoked_at.is_(None)).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def authenticate(self, token: str) -> Principal | None:
        """The active token's principal, or None. Every active hash is compared in full."""
        presented = hash_token(token)
        found: Principal | None = None
        for name, role, stored in self._active():
            if hmac.compare_digest(presented, stored):
                found = Principal(name, role)
        return found

    def remembered(self, token: str) -> Principal | None:
        """The principal of ``token`` if it was verified less than ``recheck_seconds`` ago."""
        presented = hash_token(token)
        with self._verified_lock:
            entry = self._verified.get(presented)
            if entry is None:
                return None
            principal, verified_at = entry
            if time.monotonic() - verified_at >= self.recheck_seconds:
                del self._verified[presented]
                return None
            self._verified.move_to_end(presented)
            return principal

    def verify(self, token: str) -> Principal | None:
        """:meth:`remembered`, else :meth:`authenticate` (and remember a success)."""
        principal = self.remembered(token)
        if principal is not None:
            return principal
        verified_at = time.monotonic()  # before the query: never trusted past its bound
        principal = self.authenticate(token)
        if principal is not None and self.recheck_seconds > 0:
            with self._verified_lock:
                self._verified[hash_token(token)] = (principal, verified_at)
                while len(self._verified) > self.max_remembered:
                    self._verified.popitem(last=False)
        return principal

    def forget(self) -> None:
        """Check every token against the database again on its next use."""
        with self._verified_lock:
            self._verified.clear()


def require_auth_setting(settings: Any) -> bool:
    """``Settings.require_auth`` when the field exists, else env ``PERMANENCE_REQUIRE_AUTH``."""
    value = getattr(settings, "require_auth", None)
    if value is None:
        value = os.environ.get("PERMANENCE_REQUIRE_AUTH", "").strip().lower() in (
            "1", "true", "yes", "on")
    return bool(value)
