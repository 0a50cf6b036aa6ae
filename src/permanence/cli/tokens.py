"""``permanence token create|revoke|list``: the HTTP API's tokens (see docs/security.md).

``create`` prints the token once; only its SHA-256 is stored, so a lost token cannot be
shown again: revoke it and create another. Exit codes as elsewhere: 2 for malformed input
(an unknown role, a bad name), 1 when refused (a name in use, an unknown or revoked token,
a ledger that is not there: token commands never create one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from permanence.cli.app import JSON, app, settings
from permanence.cli.choices import Role
from permanence.cli.errors import exits
from permanence.cli.output import Human, emit, table

if TYPE_CHECKING:
    from sqlalchemy import Engine

token_app = typer.Typer(help="API tokens for the HTTP API (registry, verifier, trustee).",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(token_app, name="token")

ROLE = typer.Option(..., help="What the token may do.")


@contextmanager
def _engine() -> Iterator[Engine]:
    """An engine on the ledger's database: tokens need no event store or read models.

    A SQLite file that does not exist is refused, not created (SQLite would create it on
    connecting): a mistyped ``--db`` must not leave an empty ledger behind."""
    from permanence.config import parse_store
    from permanence.runtime import CREATE_HINT, LedgerNotFound, make_engine

    s = settings()
    store = parse_store(s.db, s.lock_timeout_seconds)
    if store.sqlite_path is not None and not store.sqlite_path.is_file():
        raise LedgerNotFound(f"no ledger at {store.sqlite_path}; {CREATE_HINT}")
    engine = make_engine(store, s.lock_timeout_seconds)
    try:
        yield engine
    finally:
        engine.dispose()


@token_app.command("create")
@exits
def create(
    role: Role = ROLE,
    name: str = typer.Option(..., help="A unique name; events record it as token:NAME."),
    as_json: bool = JSON,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from permanence import tokens as auth

    auth.check_name(name)
    with _engine() as engine:
        token, info = auth.create_token(engine, name, role.value)
    data = {**info.as_dict(), "token": token}
    emit(data, as_json, lambda d: (
        f"{d['token']}\n"
        f"token {d['name']} (role {d['role']}) created; it is shown only now: store it "
        "in a secret manager. Send it as 'Authorization: Bearer <token>'."
    ))


@token_app.command("revoke")
@exits
def revoke(
    name: str = typer.Argument(..., help="The token's name."),
    as_json: bool = JSON,
) -> None:
    """Revoke a token: the next request that presents it is refused (401)."""
    from permanence import tokens as auth

    with _engine() as engine:
        info = auth.revoke_token(engine, name)
    emit(info.as_dict(), as_json, lambda d: f"token {d['name']} revoked at {d['revoked_at']}")


@token_app.command("list")
@exits
def list_(as_json: bool = JSON) -> None:
    """List tokens: name, role, created, revoked (never the tokens or their hashes)."""
    from permanence import tokens as auth

    with _engine() as engine:
        data: list[dict[str, Any]] = [t.as_dict() for t in auth.list_tokens(engine)]
    emit(data, as_json, _tokens_text)


def _tokens_text(rows: list[dict[str, Any]]) -> Human:
    if not rows:
        return "no tokens"
    return table([("name", "left"), ("role", "left"), ("created", "left"), ("revoked", "left")],
                 ([t["name"], t["role"], t["created_at"], t["revoked_at"] or "active"]
                  for t in rows))


__all__ = ["token_app"]
