"""Vintage identifiers: deterministic ids for imports, and ids or unique prefixes users type.

One resolution here serves every face (the CLI, HTTP, the importer) and the application.
"""

from __future__ import annotations

from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.errors import AmbiguousVintage, UnknownVintage

_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://permanence.example/vintage")


class VintageIndex(Protocol):
    """Finds vintages by project or id prefix (the read side provides it; the ledger only
    asks)."""

    def vintage_ids_of_project(self, project: str) -> list[str]: ...

    def vintage_ids_with_prefix(self, prefix: str, limit: int) -> list[str]: ...


MIN_PREFIX = 8
"""Hex characters a vintage id prefix needs: fewer would match too much to be useful."""
CANDIDATES_SHOWN = 5
"""Vintages an ambiguous prefix's message names."""
_PREFIX_CHARS = frozenset("0123456789abcdef-")


def vintage_id_for(program: str, source_key: str) -> str:
    """Deterministic id from the program and the source's own issuance key (imports)."""
    return str(uuid5(_ID_NAMESPACE, f"{program}\x1f{source_key}"))


def serials_key(first: str | None, last: str | None) -> str | None:
    """A serial range as one text (``FIRST-LAST``, or the one serial): with the program it
    names an issuance, so the same range always gets the same vintage id."""
    parts = [str(s).strip() for s in (first, last) if s is not None and str(s).strip()]
    return "-".join(parts) or None


def resolve_vintage_id(value: str | UUID, index: VintageIndex | None) -> str:
    """The full id of a vintage given by its id or a unique prefix of 8+ hex characters.

    Users copy the short ids listings print; one resolution here serves every face. A
    full UUID is taken as is (it need not have reached the read models yet).
    """
    if isinstance(value, UUID):
        return str(value)
    text = str(value).strip().lower()
    try:
        return str(UUID(text))
    except ValueError:
        pass
    if not text or not set(text) <= _PREFIX_CHARS:
        raise UnknownVintage(f"vintage: {value!r} is not a vintage id or an id prefix")
    if sum(ch != "-" for ch in text) < MIN_PREFIX:
        raise UnknownVintage(
            f"vintage: {value!r} is too short; give {MIN_PREFIX} or more hex characters of the id")
    if index is None:
        raise UnknownVintage(f"vintage: {value!r} is not a full id (prefixes need the read models)")
    found = index.vintage_ids_with_prefix(text, CANDIDATES_SHOWN + 1)
    if not found:
        raise UnknownVintage(f"vintage: no vintage id starts with {text}")
    if len(found) > 1:
        more = ", ..." if len(found) > CANDIDATES_SHOWN else ""
        raise AmbiguousVintage(
            f"vintage: {text} is ambiguous; it matches "
            f"{'more than ' if more else ''}{min(len(found), CANDIDATES_SHOWN)} vintages: "
            + ", ".join(found[:CANDIDATES_SHOWN]) + more)
    return found[0]


def parse_vintage_id(value: str | UUID) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise UnknownVintage(f"vintage: {value!r} is not a vintage id") from None
