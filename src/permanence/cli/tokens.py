"""``permanence token create|revoke|list``: the HTTP API's tokens (see docs/security.md).

``create`` prints the token once; only its SHA-256 is stored, so a lost token cannot be
shown again: revoke it and create another. Exit codes as elsewhere: 2 for malformed input
(an unknown role, a bad name), 1 when refused (a name in use, an unknown or revoked token).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy import Engine

from permanence import tokens as auth
from permanence.cli.app import JSON, app, emit, fail, guarded, settings
from permanence.config import parse_store
from permanence.runtime import make_engine

token_app = typer.Typer(help="API tokens for the HTTP API (registry, verifier, trustee).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@contextmanager
def _engine() -> Iterator[Engine]:
    """An engine on the ledger's database: tokens need no event store or read models."""
    s = settings()
    engine = make_engine(parse_store(s.db, s.lock_timeout_seconds), s.lock_timeout_seconds)
    try:
        yield engine
    finally:
        engine.dispose()


def _refused(e: auth.TokenError) -> None:
    fail(str(e), 1)


@token_app.command("create")
def create(
    role: str = typer.Option(..., help="registry | verifier | trustee."),
    name: str = typer.Option(..., help="A unique name; events record it as token:NAME."),
    as_json: bool = JSON,
) -> None:
    """Create a token and print it once (only its hash is stored)."""

    def body() -> None:
        auth.check_role(role)
        auth.check_name(name)
        with _engine() as engine:
            try:
                token, info = auth.create_token(engine, name, role)
            except auth.TokenError as e:
                _refused(e)
                return
        data = {**info.as_dict(), "token": token}
        emit(data, as_json, lambda d: (
            f"{d['token']}\n"
            f"token {d['name']!r} (role {d['role']}) created; it is shown only now: store it "
            "in a secret manager. Send it as 'Authorization: Bearer <token>'."
        ))

    guarded(body)


@token_app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The token's name."),
    as_json: bool = JSON,
) -> None:
    """Revoke a token: the next request that presents it is refused (401)."""

    def body() -> None:
        with _engine() as engine:
            try:
                info = auth.revoke_token(engine, name)
            except auth.TokenError as e:
                _refused(e)
                return
        emit(info.as_dict(), as_json, lambda d: f"token {d['name']!r} revoked at {d['revoked_at']}")

    guarded(body)


@token_app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List tokens: name, role, created, revoked (never the tokens or their hashes)."""

    def body() -> None:
        with _engine() as engine:
            data: list[dict[str, Any]] = [t.as_dict() for t in auth.list_tokens(engine)]
        emit(data, as_json, lambda d: "\n".join(
            f"{t['name']:<24} {t['role']:<9} created {t['created_at']}  "
            + (f"revoked {t['revoked_at']}" if t["revoked_at"] else "active")
            for t in d) or "no tokens")

    guarded(body)


__all__ = ["token_app"]
