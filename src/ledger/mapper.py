"""Maps pydantic events to stored records as readable JSON, upcasting older versions.

The recipe follows eventsourcing's ``examples/aggregate8`` (a pydantic mapper), with orjson
for speed: ``sqlite3`` and ``psql`` can read every stored event as plain JSON.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from ledger.events import DomainEvent


class JSONBytes(Transcoder):
    """Plain JSON in and out; pydantic already reduced the event to JSON types."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Stores ``model_dump(mode="json")`` and validates on the way back."""

    def __init__(self) -> None:
        super().__init__(transcoder=JSONBytes())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: DomainEvent = domain_event
        state = event.__dict__.copy()  # a C-level copy; the envelope is stored apart
        del state["originator_id"], state["originator_version"]
        class_version = getattr(type(event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=get_topic(type(event)),
            state=orjson.dumps(state, default=_nested),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        state = decode_state(cls, stored_event.state)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        return cls.model_validate(state)


def decode_state(cls: type, raw: bytes | str | memoryview) -> dict[str, Any]:
    """Decode a stored state and upcast it to the class's current version."""
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    state: dict[str, Any] = orjson.loads(raw)
    class_version = getattr(cls, "class_version", 1)
    from_version = state.pop("class_version", 1)
    while from_version < class_version:
        getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
        from_version += 1
    return state


_DUMPED: dict[int, tuple[BaseModel, orjson.Fragment]] = {}


def _nested(value: Any) -> Any:
    """Nested pydantic values (the rules snapshot); orjson handles dates, UUIDs, datetimes.

    New vintages share their profile's one frozen rules object, so its JSON is kept as a
    ready-made fragment: a bulk issuance writes the same bytes without serialising the
    rules once per event.
    """
    if isinstance(value, BaseModel):
        hit = _DUMPED.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        dumped = value.model_dump(mode="json")
        if value.model_config.get("frozen") and len(_DUMPED) < 256:
            fragment = orjson.Fragment(orjson.dumps(dumped))
            _DUMPED[id(value)] = (value, fragment)
            return fragment
        return dumped
    raise TypeError(f"cannot store {type(value).__name__} in an event")
