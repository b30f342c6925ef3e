"""Pure business steps of the events service: payload hashes, deduplication plans, status order."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.fastjson import canonical_json
from schemas.events import CloudEvent
from schemas.notifications import Status
from services.events.errors import PayloadConflict

EventKey = tuple[str, str]
"""(source, id): what makes an event unique."""

AGENCY_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")

# Later stages of a notification's life outrank earlier ones, so a late `sent` never
# replaces `delivered`; within a rank the later `at` wins (e.g. deferred → queued again).
_RANK: dict[Status, int] = {
    Status.SCHEDULED: 0,
    Status.QUEUED: 1,
    Status.DEFERRED: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.FAILED: 3,
    Status.SUPPRESSED: 3,
    Status.CANCELLED: 3,
}


def key_of(event: CloudEvent) -> EventKey:
    return (event.source, event.id)


def payload_hash(event: CloudEvent) -> str:
    """SHA-256 of the event as the agency sent it (before `time` is defaulted), canonical JSON."""
    return hashlib.sha256(canonical_json(event.to_wire())).hexdigest()


@dataclass(frozen=True, slots=True)
class Incoming:
    """A validated event ready to be stored: wire form (time defaulted) and its payload hash."""

    event: CloudEvent
    payload_hash: str
    wire: dict[str, Any] | None = None  # `event.to_wire()`, when already computed
    value: bytes | None = None  # its canonical JSON, when already computed
    key: EventKey = field(init=False)  # read several times a claim: built once

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", key_of(self.event))


@dataclass(frozen=True, slots=True)
class Stored:
    """What the database already knows about one (source, id)."""

    payload_hash: str
    state: str


@dataclass(slots=True)
class Plan:
    """What to do with a request: publish the new events, count the duplicates."""

    new: list[Incoming] = field(default_factory=list)
    duplicates: int = 0
    waiting: list[EventKey] = field(default_factory=list)


def plan(incoming: Sequence[Incoming], stored: Mapping[EventKey, Stored]) -> Plan:
    """Split a request into new events and duplicates; raise PayloadConflict on a reused id.

    Keys still `pending` in another request are listed in `waiting`: the caller waits for them
    to settle and plans again. A repeat inside the same request counts as a duplicate.
    """
    result = Plan()
    seen: dict[EventKey, str] = {}
    for item in incoming:
        key = item.key
        known = stored.get(key)
        earlier = seen.get(key) or (known.payload_hash if known else None)
        if earlier is not None and earlier != item.payload_hash:
            raise PayloadConflict(key)
        if key in seen or (known is not None and known.state != "pending"):
            result.duplicates += 1
        elif known is not None:
            result.waiting.append(key)
        else:
            result.new.append(item)
        seen[key] = item.payload_hash
    return result


def supersedes(new: Status, new_at: datetime, current: Status, current_at: datetime) -> bool:
    """Whether a status change replaces the current status (tolerates out-of-order arrival)."""
    if _RANK[new] != _RANK[current]:
        return _RANK[new] > _RANK[current]
    return new_at >= current_at


ENVELOPE = ("specversion", "id", "source", "type", "subject", "time")


def envelope_only(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of an event after its content is purged: the envelope, without `data`."""
    return {name: payload[name] for name in ENVELOPE if name in payload}


def nul_paths(node: Any, path: tuple[int | str, ...] = ()) -> Iterator[tuple[int | str, ...]]:
    """Where a JSON value holds a NUL character (U+0000), which no database text can store."""
    if isinstance(node, str):
        if "\x00" in node:
            yield path
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if "\x00" in str(key):
                yield (*path, key)
            yield from nul_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from nul_paths(value, (*path, index))
